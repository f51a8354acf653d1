package wire

// Fuzz targets for what crosses the bridge from the other side: the
// request frames a module receives from its host, the response frames and
// the manifest a host receives from its module (which may be any program
// speaking the protocol, or a buggy one), an InitRequest, and the
// --reattach line. Frames are given as protobuf bytes, so the codec's
// decoding is fuzzed with them.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	modulev1 "github.com/execmod/execmod/proto/module/v1"
)

// fuzzFrames splits b into at most 16 length-prefixed (uvarint) frames.
func fuzzFrames(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 && len(out) < 16 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return append(out, b)
		}
		b = b[k:]
		if n > uint64(len(b)) {
			n = uint64(len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// joinFrames is the inverse of fuzzFrames, for seeds.
func joinFrames(msgs ...gogoMessage) []byte {
	var b []byte
	for _, m := range msgs {
		p, err := m.Marshal()
		if err != nil {
			panic(err)
		}
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// decodeFrame decodes one frame as gRPC would hand it to the receiver: a
// frame the codec rejects is a stream error.
func decodeFrame(frame []byte, m gogoMessage) error {
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(frame)}, m); err != nil {
		return status.Error(codes.Internal, "grpc: failed to unmarshal the received message: "+err.Error())
	}
	return nil
}

// fuzzServerStream is the module's end of one ServeHTTP stream, fed from
// frames.
type fuzzServerStream struct {
	grpc.ServerStream // nil: only Context, Recv and Send are used
	ctx               context.Context
	mu                sync.Mutex
	frames            [][]byte
	sent              []*modulev1.HTTPResponsePart
}

func (s *fuzzServerStream) Context() context.Context { return s.ctx }

func (s *fuzzServerStream) Recv() (*modulev1.HTTPRequestPart, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.frames) == 0 {
		return nil, io.EOF
	}
	f := s.frames[0]
	s.frames = s.frames[1:]
	m := &modulev1.HTTPRequestPart{}
	if err := decodeFrame(f, m); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *fuzzServerStream) Send(m *modulev1.HTTPResponsePart) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	return nil
}

func (s *fuzzServerStream) SetHeader(metadata.MD) error  { return nil }
func (s *fuzzServerStream) SendHeader(metadata.MD) error { return nil }
func (s *fuzzServerStream) SetTrailer(metadata.MD)       {}

// seen is what the module's handler saw of a request.
type seen struct {
	called            bool
	principal         string
	principalValues   int
	body              []byte
	bodyErr           error
	method, path, raw string
}

// FuzzModuleRequestFrames: whatever request frames a module receives, it
// does not crash, answers with one well-formed head, hands its handler
// the body the frames carried, and the principal its handler sees is the
// head's, never a header's.
func FuzzModuleRequestFrames(f *testing.F) {
	head := func(h *modulev1.RequestHead) *modulev1.HTTPRequestPart { return &modulev1.HTTPRequestPart{Head: h} }
	get := &modulev1.RequestHead{Method: "GET", Path: "/items/7", RawQuery: "a=1", Proto: "HTTP/1.1", ContentLength: 0,
		Headers: []*modulev1.Header{{Name: "Accept", Values: []string{"*/*"}}}}
	forged := &modulev1.RequestHead{Method: "POST", Path: "/x", Principal: "alice", ContentLength: -1, Proto: "HTTP/2.0",
		Headers: []*modulev1.Header{{Name: PrincipalHeader, Values: []string{"root"}}, {Name: "Content-Type", Values: []string{"text/plain"}}}}
	f.Add(joinFrames(&modulev1.HTTPRequestPart{Head: get, Eof: true}))
	f.Add(joinFrames(&modulev1.HTTPRequestPart{Head: forged, Body: []byte("ab")}, &modulev1.HTTPRequestPart{Body: []byte("cd")},
		&modulev1.HTTPRequestPart{Eof: true}))
	f.Add(joinFrames(head(forged), &modulev1.HTTPRequestPart{Body: []byte("x"), Eof: true}, &modulev1.HTTPRequestPart{Body: []byte("ignored")}))
	f.Add(joinFrames(&modulev1.HTTPRequestPart{Body: []byte("no head")}))
	f.Add(joinFrames(head(&modulev1.RequestHead{Method: "GET", Path: "relative"})))
	f.Add(joinFrames(head(&modulev1.RequestHead{Method: "GET", Path: "/%zz"})))
	f.Add(joinFrames(head(&modulev1.RequestHead{Method: "G\x00T", Path: "//a/../b", Proto: "HTTP/9.9"})))
	f.Add(append(joinFrames(head(get)), 3, 0xff, 0xff, 0xff))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		frames := fuzzFrames(b)
		var saw seen
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			saw.called = true
			saw.principal = r.Header.Get(PrincipalHeader)
			for k, v := range r.Header {
				if strings.EqualFold(k, PrincipalHeader) {
					saw.principalValues += len(v)
				}
			}
			saw.method, saw.path, saw.raw = r.Method, r.URL.Path, r.URL.RawQuery
			saw.body, saw.bodyErr = io.ReadAll(r.Body)
			w.Header().Set("X-Seen", strconv.Itoa(len(saw.body)))
			_, _ = w.Write(saw.body)
		})
		srv := &server{logger: hclog.NewNullLogger(), handler: h}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream := &fuzzServerStream{ctx: ctx, frames: frames}
		err := srv.ServeHTTP(stream)

		// What the frames say.
		var first modulev1.HTTPRequestPart
		firstErr := errors.New("no frame")
		if len(frames) > 0 {
			firstErr = decodeFrame(frames[0], &first)
		}
		if firstErr != nil || first.Head == nil {
			if saw.called {
				t.Fatalf("handler called without a request head (%v)", firstErr)
			}
			if err == nil {
				t.Fatal("no head, yet ServeHTTP succeeded")
			}
			return
		}
		if !saw.called {
			if err == nil || status.Code(err) != codes.InvalidArgument {
				t.Fatalf("handler not called for head %+v; ServeHTTP: %v", first.Head, err)
			}
			return
		}
		if want := first.Head.Principal; saw.principal != want {
			t.Fatalf("handler saw principal %q, the head says %q (headers %v)", saw.principal, want, first.Head.Headers)
		}
		if want := 0; first.Head.Principal != "" {
			want = 1
			if saw.principalValues != want {
				t.Fatalf("handler saw %d principal header values, want %d", saw.principalValues, want)
			}
		} else if saw.principalValues != want {
			t.Fatalf("handler saw a principal header (%d values) but the head names none", saw.principalValues)
		}
		// The body: every frame's body up to the first with eof. A stream
		// that ends (io.EOF) ends the body too; a frame that does not
		// decode ends it with an error, after a prefix.
		want := append([]byte(nil), first.Body...)
		complete, broken := first.Eof, false
		for _, fr := range frames[1:] {
			if complete {
				break
			}
			var p modulev1.HTTPRequestPart
			if decodeFrame(fr, &p) != nil {
				broken = true
				break
			}
			want = append(want, p.Body...)
			complete = p.Eof
		}
		switch {
		case !broken && (saw.bodyErr != nil || !bytes.Equal(saw.body, want)):
			t.Fatalf("handler read %q (%v), the frames carried %q", trim(saw.body), saw.bodyErr, trim(want))
		case broken && (saw.bodyErr == nil || !bytes.HasPrefix(want, saw.body)):
			t.Fatalf("a frame that does not decode: handler read %q (%v) of %q", trim(saw.body), saw.bodyErr, trim(want))
		}
		if err != nil {
			return
		}
		if len(stream.sent) == 0 || stream.sent[0].Head == nil {
			t.Fatalf("ServeHTTP succeeded without sending a head: %v", stream.sent)
		}
		if st := stream.sent[0].Head.Status; st < 100 || st > 999 {
			t.Fatalf("status %d sent", st)
		}
		var body []byte
		for i, p := range stream.sent {
			if i > 0 && p.Head != nil {
				t.Fatalf("part %d carries a second head", i)
			}
			body = append(body, p.Body...)
		}
		if stream.sent[0].Head.Status == 200 && !bytes.Equal(body, saw.body) {
			t.Fatalf("module sent %q, its handler wrote %q", body, saw.body)
		}
	})
}

// fuzzClientStream is the host's end of one ServeHTTP stream: the module
// answers with frames.
type fuzzClientStream struct {
	grpc.ClientStream // nil: only Send, CloseSend, Recv and Context are used
	ctx               context.Context
	mu                sync.Mutex
	frames            [][]byte
}

func (s *fuzzClientStream) Context() context.Context             { return s.ctx }
func (s *fuzzClientStream) Send(*modulev1.HTTPRequestPart) error { return nil }
func (s *fuzzClientStream) CloseSend() error                     { return nil }
func (s *fuzzClientStream) Header() (metadata.MD, error)         { return nil, nil }
func (s *fuzzClientStream) Trailer() metadata.MD                 { return nil }

func (s *fuzzClientStream) Recv() (*modulev1.HTTPResponsePart, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.frames) == 0 {
		return nil, io.EOF
	}
	f := s.frames[0]
	s.frames = s.frames[1:]
	m := &modulev1.HTTPResponsePart{}
	if err := decodeFrame(f, m); err != nil {
		return nil, err
	}
	return m, nil
}

// fuzzModuleClient is a module answering every ServeHTTP with the frames
// the request names.
type fuzzModuleClient struct {
	modulev1.ModuleClient           // nil: only ServeHTTP is used
	frames                *sync.Map // X-Fuzz-Id -> [][]byte
	id                    string
}

func (c fuzzModuleClient) ServeHTTP(ctx context.Context, _ ...grpc.CallOption) (modulev1.Module_ServeHTTPClient, error) {
	v, _ := c.frames.Load(c.id)
	frames, _ := v.([][]byte)
	return &fuzzClientStream{ctx: ctx, frames: frames}, nil
}

// FuzzHostResponseFrames: whatever response frames a module sends, the
// host does not crash, and the client gets a valid HTTP answer: the
// module's status (or 502), no header the module did not send, no
// hop-by-hop header, and the body the frames carried, or a visibly cut
// connection.
func FuzzHostResponseFrames(f *testing.F) {
	h := func(code int32, kv ...string) *modulev1.ResponseHead {
		rh := &modulev1.ResponseHead{Status: code}
		for i := 0; i+1 < len(kv); i += 2 {
			rh.Headers = append(rh.Headers, &modulev1.Header{Name: kv[i], Values: []string{kv[i+1]}})
		}
		return rh
	}
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(200, "Content-Type", "text/plain"), Body: []byte("hello"), Last: true}), false)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(201), Body: []byte("a"), Flush: true}, &modulev1.HTTPResponsePart{Body: []byte("b")}), false)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(204), Body: []byte("not allowed")}), true)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(200, "Connection", "close", "Transfer-Encoding", "chunked", "Upgrade", "h2c", "X-A\r\nX-Injected", "1")}), false)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(200, "X-Ok", "a\r\nX-Injected: 1")}), false)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(99)}), false)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(1000)}), false)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Body: []byte("no head")}), false)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(200), Body: []byte("x")}, &modulev1.HTTPResponsePart{Head: h(500), Body: []byte("y")}), false)
	f.Add(append(joinFrames(&modulev1.HTTPResponsePart{Head: h(200), Body: []byte("cut")}), 5, 0xff, 0xff), false)
	f.Add(joinFrames(&modulev1.HTTPResponsePart{Head: h(200, "Content-Length", "3"), Body: []byte("toolong"), Last: true}), false)
	f.Add([]byte{}, false)

	var frames sync.Map
	var next atomic.Int64
	var panics sync.Map // id -> panic value other than ErrAbortHandler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Fuzz-Id")
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					panics.Store(id, fmt.Sprint(v))
				}
				panic(http.ErrAbortHandler)
			}
		}()
		p := &Process{rpc: fuzzModuleClient{frames: &frames, id: id}}
		p.Forward(w, r, ForwardOptions{Module: "fuzz", Mount: "/fuzz"})
	}))
	srv.Config.ErrorLog = nil
	f.Cleanup(srv.Close)
	hc := srv.Client()

	hopByHopNames := []string{"Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Te", "Trailer", "Upgrade"}
	f.Fuzz(func(t *testing.T, b []byte, head bool) {
		fr := fuzzFrames(b)
		id := strconv.FormatInt(next.Add(1), 10)
		frames.Store(id, fr)
		defer frames.Delete(id)
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		req, _ := http.NewRequest(method, srv.URL+"/fuzz/x", nil)
		req.Header.Set("X-Fuzz-Id", id)
		resp, err := hc.Do(req)
		var body []byte
		var bodyErr error
		if err == nil {
			body, bodyErr = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if v, ok := panics.Load(id); ok {
			t.Fatalf("Forward panicked: %v", v)
		}

		// What the frames say.
		var parts []*modulev1.HTTPResponsePart
		clean := true // every frame decodes
		for _, x := range fr {
			p := &modulev1.HTTPResponsePart{}
			if decodeFrame(x, p) != nil {
				clean = false
				break
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 || parts[0].Head == nil || parts[0].Head.Status < 200 || parts[0].Head.Status > 999 {
			if err != nil {
				t.Fatalf("no valid first part, and no answer: %v", err)
			}
			if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("no valid first part, answered %d", resp.StatusCode)
			}
			return
		}
		first := parts[0].Head
		sentCL := false
		sent := map[string]bool{}
		for _, hd := range first.Headers {
			name := http.CanonicalHeaderKey(hd.Name)
			sent[name] = true
			sentCL = sentCL || name == "Content-Length"
		}
		var want []byte
		ended := false // the frames end the response themselves (last) or with the stream
		for _, p := range parts {
			want = append(want, p.Body...)
			if p.Last {
				ended = true
				break
			}
		}
		ended = ended || clean
		if err != nil || bodyErr != nil {
			// A cut connection is allowed only when the response was cut
			// (a bad frame) or the module's own length disagrees.
			if ended && !sentCL {
				t.Fatalf("connection cut (%v, %v) although the module's response was whole", err, bodyErr)
			}
			return
		}
		if resp.StatusCode != int(first.Status) {
			t.Fatalf("client got %d, the module sent %d", resp.StatusCode, first.Status)
		}
		for name := range resp.Header {
			switch name {
			case "Date", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection":
				continue
			}
			if !sent[name] {
				t.Fatalf("header %q in the answer, not sent by the module (%v)", name, first.Headers)
			}
		}
		for _, name := range hopByHopNames {
			if _, ok := resp.Header[name]; ok {
				t.Fatalf("hop-by-hop header %q forwarded", name)
			}
		}
		if !bodyAllowed(method, int(first.Status)) || sentCL || !ended {
			return
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("client got %d bytes %q, the module sent %q", len(body), trim(body), trim(want))
		}
	})
}

func trim(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// FuzzManifest: whatever InitResponse a module sends, the host's checks
// and Mount never panic, and a manifest it mounts serves only under the
// module's own /<id>/: the agent's endpoints still go to the agent.
func FuzzManifest(f *testing.F) {
	m := func(id string, routes ...*modulev1.Route) []byte {
		b, err := (&modulev1.InitResponse{Id: id, Version: "1", Routes: routes}).Marshal()
		if err != nil {
			panic(err)
		}
		return b
	}
	f.Add(m("remote", &modulev1.Route{Method: "GET", Path: "/status", Realm: 1}, &modulev1.Route{Method: "POST", Path: "/tasks", Realm: 2}))
	f.Add(m("hello", &modulev1.Route{Path: "/{name}"}))
	f.Add(m("help", &modulev1.Route{Path: "/"}))
	f.Add(m("x", &modulev1.Route{Method: "GET /health", Path: "/"}))
	f.Add(m("x", &modulev1.Route{Method: "GET example.com/health", Path: "/"}))
	f.Add(m("x", &modulev1.Route{Method: "GET\t", Path: "/{a}/{a}"}))
	f.Add(m("x", &modulev1.Route{Method: "", Path: "/../../health"}))
	f.Add(m("x", &modulev1.Route{Method: "GET", Path: "/a", Realm: 7}))
	f.Add(m("X Y", &modulev1.Route{Path: "x"}))
	f.Add([]byte("\x0a\xff"))

	agent := []string{"GET /health", "GET /state", "GET /flags", "GET /metrics/snapshot", "/api/v1", "/help", "/help/"}
	probes := []struct{ method, path string }{
		{"GET", "/health"}, {"GET", "/state"}, {"GET", "/flags"}, {"GET", "/metrics/snapshot"},
		{"POST", "/api/v1"}, {"GET", "/help"}, {"GET", "/help/remote"},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var resp modulev1.InitResponse
		if decodeFrame(b, &resp) != nil {
			return
		}
		man := manifestFromProto(&resp)
		checkErr := CheckManifest(man)
		mux := http.NewServeMux()
		for _, p := range agent {
			mux.Handle(p, http.NotFoundHandler())
		}
		backend := func() (*Process, error) { return nil, errors.New("down") }
		err := Mount(mux, man, backend, MountOptions{})
		if checkErr != nil && err == nil {
			t.Fatalf("Mount accepted a manifest CheckManifest rejects: %v", checkErr)
		}
		for _, p := range probes {
			if strings.HasPrefix(p.path[1:]+"/", man.ID+"/") {
				continue // the host reserves the ids of its own path roots
			}
			r := httptest.NewRequest(p.method, p.path, nil)
			_, pattern := mux.Handler(r)
			found := false
			for _, a := range agent {
				found = found || pattern == a
			}
			if !found {
				t.Fatalf("module %q (routes %+v) took %s %s: pattern %q", man.ID, man.Routes, p.method, p.path, pattern)
			}
		}
		if err != nil {
			return
		}
		// Every route the module got is under its mount.
		for _, rt := range man.Routes {
			if !strings.HasPrefix(rt.Path, "/") {
				t.Fatalf("mounted a route without a leading slash: %+v", rt)
			}
		}
	})
}

// FuzzInitRequest: whatever a module is told at Init decodes without a
// panic, and what it decodes re-encodes to the same message.
func FuzzInitRequest(f *testing.F) {
	b, _ := InitRequest{Name: "org_x", Flags: []Flag{{"work_dir", "/w"}}, Params: []Param{{"k", "v"}}, LogLevel: "INFO",
		DataDir: "/w/modules/org_x", HostVersion: "1"}.toProto().Marshal()
	f.Add(b)
	f.Add([]byte("\x12\x00\x12\x02\x0a\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p modulev1.InitRequest
		if decodeFrame(b, &p) != nil {
			return
		}
		q := initRequestFromProto(&p)
		again, err := q.toProto().Marshal()
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		var p2 modulev1.InitRequest
		if err := p2.Unmarshal(again); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		q2 := initRequestFromProto(&p2)
		if fmt.Sprint(q) != fmt.Sprint(q2) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", q, q2)
		}
	})
}

// FuzzParseReattach: the --reattach line never panics the host, and what
// it accepts names a gRPC module on a unix or tcp address.
func FuzzParseReattach(f *testing.F) {
	f.Add(`{"protocol":"grpc","protocol_version":1,"network":"unix","addr":"/tmp/plugin123","pid":42}`)
	f.Add(`{"protocol":"grpc","protocol_version":1,"network":"tcp","addr":"127.0.0.1:1234","pid":42}`)
	f.Add(`{"protocol":"netrpc","network":"udp","addr":"x"}`)
	f.Add(`{"protocol":"grpc","network":"tcp","addr":"[::1"}`)
	f.Add(`{`)
	f.Fuzz(func(t *testing.T, s string) {
		rc, err := ParseReattach(s)
		if err != nil {
			if rc != nil {
				t.Fatalf("error %v with a config", err)
			}
			return
		}
		if rc.Addr == nil || (rc.Addr.Network() != "unix" && rc.Addr.Network() != "tcp") {
			t.Fatalf("accepted %q with address %v", s, rc.Addr)
		}
		if rc.Protocol != "grpc" {
			t.Fatalf("accepted protocol %q", rc.Protocol)
		}
	})
}
