package wire

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-plugin"
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
		HandshakeConfig: Handshake, VersionedPlugins: pluginSets(m),
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
