package wire

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	modulev1 "github.com/execmod/execmod/proto/module/v1"
)

// rawModule is a module written against the protocol directly, as a
// non-Go module would be; it can misbehave in ways the SDK prevents.
type rawModule struct {
	modulev1.UnimplementedModuleServer
	serve func(modulev1.Module_ServeHTTPServer) error
}

func (m *rawModule) Init(context.Context, *modulev1.InitRequest) (*modulev1.InitResponse, error) {
	return Manifest{ID: "raw", Routes: []Route{{Method: "GET", Path: "/x"}}}.toProto(), nil
}

func (m *rawModule) ServeHTTP(s modulev1.Module_ServeHTTPServer) error {
	if _, err := s.Recv(); err != nil {
		return err
	}
	return m.serve(s)
}

// serveRaw serves m in-process over real gRPC and returns the host's
// handler for it.
func serveRaw(t *testing.T, m *rawModule) http.Handler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rcCh := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake, VersionedPlugins: pluginSets(m), Logger: hclog.NewNullLogger(),
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(o, grpc.ForceServerCodecV2(newCodec()))...)
		},
		Test: &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: rcCh, CloseCh: closed},
	})
	p, err := Reattach(<-rcCh, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(); cancel(); <-closed })
	man, err := p.Init(t.Context(), InitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if err := Mount(mux, man, func() (*Process, error) { return p, nil }, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	return mux
}

func TestMisbehavingModules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serve  func(modulev1.Module_ServeHTTPServer) error
		status int
		body   string
	}{
		{"status above 999", func(s modulev1.Module_ServeHTTPServer) error {
			return s.Send(&modulev1.HTTPResponsePart{Head: &modulev1.ResponseHead{Status: 1000}})
		}, 502, "invalid status 1000"},
		{"negative status", func(s modulev1.Module_ServeHTTPServer) error {
			return s.Send(&modulev1.HTTPResponsePart{Head: &modulev1.ResponseHead{Status: -5}})
		}, 502, "invalid status -5"},
		{"informational status as final", func(s modulev1.Module_ServeHTTPServer) error {
			return s.Send(&modulev1.HTTPResponsePart{Head: &modulev1.ResponseHead{Status: 100}})
		}, 502, "invalid status 100"},
		{"no head", func(s modulev1.Module_ServeHTTPServer) error {
			return s.Send(&modulev1.HTTPResponsePart{Body: []byte("x")})
		}, 502, "invalid status 0"},
		{"no answer at all", func(s modulev1.Module_ServeHTTPServer) error { return nil }, 502, "failed"},
		{"error before answering", func(s modulev1.Module_ServeHTTPServer) error { return io.ErrUnexpectedEOF }, 502, "unexpected EOF"},
		{"status 999 is valid", func(s modulev1.Module_ServeHTTPServer) error {
			return s.Send(&modulev1.HTTPResponsePart{Head: &modulev1.ResponseHead{Status: 999}, Body: []byte("odd")})
		}, 999, "odd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(serveRaw(t, &rawModule{serve: tc.serve}))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/raw/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
				t.Errorf("= %d %q, want %d containing %q", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}

func TestFailureMidResponseAbortsTheConnection(t *testing.T) {
	srv := httptest.NewServer(serveRaw(t, &rawModule{serve: func(s modulev1.Module_ServeHTTPServer) error {
		if err := s.Send(&modulev1.HTTPResponsePart{Head: &modulev1.ResponseHead{Status: 200}, Body: []byte("partial"), Flush: true}); err != nil {
			return err
		}
		return io.ErrUnexpectedEOF
	}}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/raw/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("a cut response read as complete: %q", body)
	}
}

func TestCodec(t *testing.T) {
	c := newCodec()
	in := &modulev1.HTTPRequestPart{Head: &modulev1.RequestHead{Method: "GET", Path: "/x"}, Body: []byte("abc"), Eof: true}
	data, err := c.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out modulev1.HTTPRequestPart
	if err := c.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.Head.Path != "/x" || string(out.Body) != "abc" || !out.Eof {
		t.Errorf("round trip = %+v", out)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0xff})}, &out); err == nil {
		t.Error("garbage decoded without error")
	}

	// What the codec is for: mesos-go's proto2 types with non-nullable
	// repeated messages, on which grpc's stock codec panics in its
	// required-field check.
	shell := false
	cmd := &mesos.CommandInfo{Value: proto.String("/bin/echo"), Shell: &shell, Arguments: []string{"echo", "hi"},
		URIs: []mesos.CommandInfo_URI{{Value: "http://example.invalid/artifact.tgz"}}}
	data, err = c.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var back mesos.CommandInfo
	if err := c.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Equal(cmd) {
		t.Errorf("CommandInfo round trip = %v, want %v", back.String(), cmd.String())
	}
}

func TestCheckManifest(t *testing.T) {
	for _, tc := range []struct {
		m    Manifest
		want string
	}{
		{Manifest{ID: "ok", Routes: []Route{{Path: "/"}}}, ""},
		{Manifest{ID: "Bad", Routes: []Route{{Path: "/"}}}, "not valid"},
		{Manifest{ID: "", Routes: []Route{{Path: "/"}}}, "not valid"},
		{Manifest{ID: "x"}, "no routes"},
		{Manifest{ID: "x", Routes: []Route{{Path: "rel"}}}, "must start with '/'"},
		{Manifest{ID: "x", Routes: []Route{{Path: "/", Realm: 9}}}, "unknown realm"},
	} {
		err := CheckManifest(tc.m)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckManifest(%+v) = %v, want %q", tc.m, err, tc.want)
		}
	}
}

func TestMountReportsConflictsAsErrors(t *testing.T) {
	mux := http.NewServeMux()
	man := Manifest{ID: "x", Routes: []Route{{Method: "GET", Path: "/a"}, {Method: "GET", Path: "/a"}, {Method: "GET", Path: "/{bad"}}}
	err := Mount(mux, man, func() (*Process, error) { return nil, nil }, MountOptions{})
	if err == nil || !strings.Contains(err.Error(), "conflicts") || !strings.Contains(err.Error(), "/{bad") {
		t.Errorf("Mount = %v", err)
	}
}

func TestDownModuleIs503(t *testing.T) {
	mux := http.NewServeMux()
	if err := Mount(mux, Manifest{ID: "x", Routes: []Route{{Path: "/"}}}, func() (*Process, error) { return nil, nil }, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/x/", nil))
	if rec.Code != 503 || rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("= %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
}

// handlerModule is a Module of the SDK's kind: an http.Handler behind the
// protocol, served with ServeInProcess.
type handlerModule struct{ h http.Handler }

func (m handlerModule) Init(context.Context, InitRequest) (Manifest, http.Handler, error) {
	return Manifest{ID: "sdk", Routes: []Route{{Method: "GET", Path: "/x"}, {Method: "GET", Path: "/none"}}}, m.h, nil
}

func (handlerModule) Metrics(context.Context) map[string]float64 { return nil }

// A response's last part ends it at once, with a Content-Length when the
// whole body came in that part; a response never marked last (a module
// written against the protocol by hand, or before the flag) ends with the
// stream.
func TestResponseEnd(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	head := func(status int32) *modulev1.ResponseHead { return &modulev1.ResponseHead{Status: status} }
	for _, tc := range []struct {
		name   string
		method string
		serve  func(modulev1.Module_ServeHTTPServer) error
		status int
		length int64 // resp.ContentLength: -1 when it was not sent
		body   string
	}{
		{"one last part, and the stream kept open", "GET", func(s modulev1.Module_ServeHTTPServer) error {
			if err := s.Send(&modulev1.HTTPResponsePart{Head: head(200), Body: []byte("hello"), Last: true}); err != nil {
				return err
			}
			<-release // the host must not wait for the stream's status
			return nil
		}, 200, 5, "hello"},
		{"last after a flushed part", "GET", func(s modulev1.Module_ServeHTTPServer) error {
			if err := s.Send(&modulev1.HTTPResponsePart{Head: head(200), Body: []byte("a"), Flush: true}); err != nil {
				return err
			}
			return s.Send(&modulev1.HTTPResponsePart{Body: []byte("b"), Last: true})
		}, 200, -1, "ab"},
		{"never marked last", "GET", func(s modulev1.Module_ServeHTTPServer) error {
			return s.Send(&modulev1.HTTPResponsePart{Head: head(200), Body: []byte("old")})
		}, 200, 3, "old"}, // net/http measures a small body itself once the handler returns
		{"204 has no length", "GET", func(s modulev1.Module_ServeHTTPServer) error {
			return s.Send(&modulev1.HTTPResponsePart{Head: head(204), Last: true})
		}, 204, 0, ""},
		{"HEAD has no length", "HEAD", func(s modulev1.Module_ServeHTTPServer) error {
			return s.Send(&modulev1.HTTPResponsePart{Head: head(200), Last: true})
		}, 200, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(serveRaw(t, &rawModule{serve: tc.serve}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // a guard against a hang
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tc.method, srv.URL+"/raw/x", nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tc.status || resp.ContentLength != tc.length || string(body) != tc.body {
				t.Errorf("= %d length %d %q (%v), want %d length %d %q", resp.StatusCode, resp.ContentLength, body, err, tc.status, tc.length, tc.body)
			}
		})
	}

	// The SDK side marks its responses last: a handler's whole answer
	// arrives with its length, and one that flushed is chunked.
	p, closed, err := ServeInProcess(t.Context(), handlerModule{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/none" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(w, "from a handler")
		if r.URL.Query().Has("flush") {
			w.(http.Flusher).Flush()
		}
	})}, ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(); <-closed })
	man, err := p.Init(t.Context(), InitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if err := Mount(mux, man, func() (*Process, error) { return p, nil }, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]int64{"/sdk/x": 14, "/sdk/x?flush": -1, "/sdk/none": 0} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ContentLength != want {
			t.Errorf("GET %s: length %d, want %d", path, resp.ContentLength, want)
		}
	}
}

// What the mux answers itself is JSON, Allow kept; what a route answers
// is the route's.
func TestJSONErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /m/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "item "+r.PathValue("id")+" not here", http.StatusNotFound) // the route's own 404
	})
	mux.HandleFunc("DELETE /m/items/{id}", func(w http.ResponseWriter, r *http.Request) {})
	srv := httptest.NewServer(JSONErrors(mux))
	defer srv.Close()
	for _, c := range []struct {
		method, path, allow, ctype, body string
		status                           int
	}{
		{"POST", "/m/items/7", "DELETE, GET, HEAD", "application/json",
			`{"error":"method POST is not allowed on /m/items/7 (allowed: DELETE, GET, HEAD)"}` + "\n", 405},
		{"GET", "/m/nothing", "", "application/json", `{"error":"no route for GET /m/nothing (GET /help lists them)"}` + "\n", 404},
		{"GET", "/m/items/7", "", "text/plain; charset=utf-8", "item 7 not here\n", 404},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Allow") != c.allow || resp.Header.Get("Content-Type") != c.ctype || string(b) != c.body {
			t.Errorf("%s %s = %d Allow %q %q %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), b)
		}
	}
	// A path in need of cleaning is still redirected.
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(srv.URL + "/m//items/7")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/m/items/7" {
		t.Errorf("an unclean path = %d to %q, want a redirect to /m/items/7", resp.StatusCode, resp.Header.Get("Location"))
	}
}
