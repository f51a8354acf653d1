package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	modulev1 "github.com/execmod/execmod/proto/module/v1"
)

// Module is what a module process serves; the SDK implements it.
type Module interface {
	// Init configures the module and returns its manifest and the handler
	// for its routes (paths relative to the mount point).
	Init(ctx context.Context, req InitRequest) (Manifest, http.Handler, error)
	// Metrics returns the module's metrics (may be nil).
	Metrics(ctx context.Context) map[string]float64
}

// ServeOptions configure Serve.
type ServeOptions struct {
	Logger hclog.Logger // the module's logger (JSON on stderr in production)
	// MaxMessage is the largest message the module accepts; 0 means 16 MiB.
	MaxMessage int
}

// Serve serves m to the host that started this process and returns when
// the host tells it to stop or goes away. It must be the first thing that
// writes to stdout: go-plugin's handshake line goes there.
func Serve(m Module, opts ServeOptions) {
	plugin.Serve(serveConfig(m, opts))
}

// ServeInProcess serves m inside this process, as go-plugin's test mode
// does, and connects to it as a host would. The module stops when ctx is
// done; the returned channel is closed once it has.
func ServeInProcess(ctx context.Context, m Module, opts ServeOptions) (*Process, <-chan struct{}, error) {
	rc, closed, err := serveTest(ctx, m, opts)
	if err != nil {
		return nil, nil, err
	}
	p, err := Reattach(rc, opts.Logger)
	if err != nil {
		return nil, nil, err
	}
	return p, closed, nil
}

// ServeDebug serves m inside this process, without a host having started
// it, and returns the reattach information a host accepts
// (modhost --reattach ...). It stops when ctx is done.
func ServeDebug(ctx context.Context, m Module, opts ServeOptions) (ReattachInfo, <-chan struct{}, error) {
	rc, closed, err := serveTest(ctx, m, opts)
	if err != nil {
		return ReattachInfo{}, nil, err
	}
	return reattachInfo(rc), closed, nil
}

func serveTest(ctx context.Context, m Module, opts ServeOptions) (*plugin.ReattachConfig, <-chan struct{}, error) {
	cfg := serveConfig(m, opts)
	cfg.Logger = quietStop{cfg.Logger}
	rcCh := make(chan *plugin.ReattachConfig, 1)
	closeCh := make(chan struct{})
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: rcCh, CloseCh: closeCh}
	go plugin.Serve(cfg)
	select {
	case rc := <-rcCh:
		return rc, closeCh, nil
	case <-closeCh:
		return nil, nil, errors.New("wire: module stopped before serving")
	case <-ctx.Done():
		return nil, nil, context.Cause(ctx)
	}
}

func serveConfig(m Module, opts ServeOptions) *plugin.ServeConfig {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.MaxMessage == 0 {
		opts.MaxMessage = 16 << 20
	}
	srv := &server{module: m, logger: opts.Logger}
	return &plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(srv),
		Logger:           opts.Logger,
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			o = append(o, grpc.ForceServerCodecV2(newCodec()), grpc.MaxRecvMsgSize(opts.MaxMessage),
				grpc.InitialWindowSize(windowSize), grpc.InitialConnWindowSize(windowSize))
			return grpc.NewServer(o...)
		},
	}
}

// quietStop drops the error go-plugin logs when its gRPC server's listener
// is closed: in test and debug mode that is how every clean stop happens,
// and an "error" line in a passing test's log misleads.
type quietStop struct{ hclog.Logger }

func (l quietStop) Error(msg string, args ...any) {
	if msg == "grpc server" {
		for _, a := range args {
			if err, ok := a.(error); ok && errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
	l.Logger.Error(msg, args...)
}

// server implements the Module gRPC service on top of a Module.
type server struct {
	modulev1.UnimplementedModuleServer
	module Module
	logger hclog.Logger

	mu      sync.RWMutex
	handler http.Handler
}

func (s *server) Init(ctx context.Context, req *modulev1.InitRequest) (*modulev1.InitResponse, error) {
	man, h, err := s.module.Init(ctx, initRequestFromProto(req))
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
	return man.toProto(), nil
}

func (s *server) Metrics(ctx context.Context, _ *modulev1.MetricsRequest) (*modulev1.MetricsResponse, error) {
	return &modulev1.MetricsResponse{Metrics: s.module.Metrics(ctx)}, nil
}

func (s *server) ServeHTTP(stream modulev1.Module_ServeHTTPServer) error {
	s.mu.RLock()
	h := s.handler
	s.mu.RUnlock()
	if h == nil {
		return status.Error(codes.FailedPrecondition, "module is not initialised")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	req, body, err := newRequest(stream, first)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	defer body.CloseWithError(errHandlerDone)

	rw := &responseWriter{stream: stream, header: http.Header{}}
	if aborted := s.call(h, rw, req); aborted {
		return status.Error(codes.Aborted, "handler aborted the response")
	}
	return rw.finish()
}

var errHandlerDone = errors.New("wire: handler returned")

// call runs the handler, turning a panic into a 500 (or, once the head is
// out, into an aborted stream) so one bad request never kills the module.
func (s *server) call(h http.Handler, rw *responseWriter, req *http.Request) (aborted bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v != http.ErrAbortHandler {
			s.logger.Error("handler panic", "method", req.Method, "path", req.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		if rw.headSent || v == http.ErrAbortHandler {
			aborted = true
			return
		}
		rw.reset()
		rw.header.Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(rw, `{"error":"internal error in module handler"}`+"\n")
	}()
	h.ServeHTTP(rw, req)
	return false
}

// newRequest builds the handler's request from the first part; the rest of
// the body arrives through the returned pipe, fed by a goroutine that ends
// with the body or with the stream.
func newRequest(stream modulev1.Module_ServeHTTPServer, first *modulev1.HTTPRequestPart) (*http.Request, *io.PipeReader, error) {
	head := first.GetHead()
	if head == nil {
		return nil, nil, errors.New("first request part has no head")
	}
	u, err := url.ParseRequestURI(head.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("request path: %w", err)
	}
	u.RawQuery = head.RawQuery
	hdr := make(http.Header, len(head.Headers))
	for _, h := range head.Headers {
		// Canonical names, as net/http gives a handler; and so that no
		// spelling of the principal header can slip past the Del below.
		name := textproto.CanonicalMIMEHeaderKey(h.Name)
		hdr[name] = append(hdr[name], h.Values...)
	}
	hdr.Del(PrincipalHeader)
	if head.Principal != "" {
		hdr.Set(PrincipalHeader, head.Principal)
	}
	major, minor, ok := http.ParseHTTPVersion(head.Proto)
	if !ok {
		major, minor = 1, 1
	}
	pr, pw := io.Pipe()
	var body io.ReadCloser = pr
	switch {
	case first.Eof && len(first.Body) == 0:
		body = http.NoBody
		pw.Close()
	case first.Eof:
		body = io.NopCloser(bytes.NewReader(first.Body))
		pw.Close()
	default:
		go pumpBody(stream, first.Body, pw)
	}
	req := &http.Request{
		Method: head.Method, URL: u, Proto: head.Proto, ProtoMajor: major, ProtoMinor: minor,
		Header: hdr, Body: body, ContentLength: head.ContentLength, Host: head.Host,
		RemoteAddr: head.RemoteAddr, RequestURI: head.RequestUri,
	}
	return req.WithContext(stream.Context()), pr, nil
}

func pumpBody(stream modulev1.Module_ServeHTTPServer, first []byte, pw *io.PipeWriter) {
	if _, err := pw.Write(first); err != nil {
		return
	}
	for {
		part, err := stream.Recv()
		if err == io.EOF {
			pw.Close()
			return
		}
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		if _, err := pw.Write(part.Body); err != nil {
			return
		}
		if part.Eof {
			pw.Close()
			return
		}
	}
}

// responseWriter is the module's http.ResponseWriter: it holds the status
// and headers until the first send, sends whenever ChunkSize bytes are
// buffered, and sends at once on Flush.
type responseWriter struct {
	stream      modulev1.Module_ServeHTTPServer
	header      http.Header
	sentHeader  http.Header // snapshot taken by WriteHeader
	status      int
	wroteHeader bool
	headSent    bool
	buf         []byte
	err         error
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http does
	}
	if w.wroteHeader || (code < 200 && code != http.StatusSwitchingProtocols) {
		return // informational responses are not forwarded
	}
	w.status, w.wroteHeader = code, true
	w.sentHeader = w.header.Clone()
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	for len(w.buf)+len(p) >= ChunkSize {
		take := ChunkSize - len(w.buf)
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if err := w.send(false, false); err != nil {
			return n - len(p) - take, err
		}
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// Flush sends what is buffered now and has the host flush it to the client.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	return w.send(true, false)
}

// send sends what is buffered (the head too, the first time); last marks
// the end of the response.
func (w *responseWriter) send(flush, last bool) error {
	part := &modulev1.HTTPResponsePart{Body: w.buf, Flush: flush, Last: last}
	if !w.headSent {
		part.Head = &modulev1.ResponseHead{Status: int32(w.status), Headers: headersToProto(w.sentHeader)}
	}
	if err := w.stream.Send(part); err != nil {
		w.err = err
		return err
	}
	w.headSent = true
	w.buf = w.buf[:0]
	return nil
}

func (w *responseWriter) reset() {
	w.header = http.Header{}
	w.wroteHeader = false
	w.buf = nil
}

// finish sends the rest of the response, marked last so that the host
// ends it without waiting for the stream's status.
func (w *responseWriter) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	return w.send(false, true)
}
