// Package sdktest runs a module inside a test, in the spirit of
// net/http/httptest: NewServer serves the module through the real plugin
// protocol (gRPC, the HTTP bridge, the host's route mounting) on a loopback
// HTTP server and gives the test its URL and client.
//
//	srv := sdktest.NewServer(t, "hello", &hello{}, sdktest.Params("greeting", "hi"))
//	resp, err := srv.Client.Get(srv.URL + "/hello/world")
package sdktest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/execmod/execmod/sdk"
)

// Server is a module served for a test.
type Server struct {
	// URL is the host's base URL, e.g. http://127.0.0.1:40123; the module's
	// routes are under URL + "/<id>/".
	URL string
	// Client talks to URL.
	Client *http.Client
	// WorkDir, SandboxDir and DataDir are the directories the module was
	// given (temporary unless set with Flags).
	WorkDir, SandboxDir, DataDir string
}

// Option configures NewServer.
type Option func(*sdk.InProcess)

// Params sets modules.json parameters, as key, value pairs.
func Params(kv ...string) Option {
	return func(o *sdk.InProcess) { setPairs(&o.Params, kv) }
}

// Flags sets agent flags, as name, value pairs.
func Flags(kv ...string) Option {
	return func(o *sdk.InProcess) { setPairs(&o.Flags, kv) }
}

// Principal authenticates every request as name.
func Principal(name string) Option {
	return func(o *sdk.InProcess) { o.Principal = func(*http.Request) string { return name } }
}

// DataDir gives the module dir as its data directory instead of a fresh
// temporary one: a test can stop one server and Provision another on the
// same state.
func DataDir(dir string) Option {
	return func(o *sdk.InProcess) { o.DataDir = dir }
}

// MaxBody limits request bodies as the host's --max_request_body does.
func MaxBody(n int64) Option {
	return func(o *sdk.InProcess) { o.MaxBody = n }
}

// LogLevel sets the module's log level (default DEBUG in tests).
func LogLevel(level string) Option {
	return func(o *sdk.InProcess) { o.LogLevel = level }
}

func setPairs(m *map[string]string, kv []string) {
	if len(kv)%2 != 0 {
		panic("sdktest: odd number of arguments: want key, value pairs")
	}
	if *m == nil {
		*m = map[string]string{}
	}
	for i := 0; i < len(kv); i += 2 {
		(*m)[kv[i]] = kv[i+1]
	}
}

// NewServer provisions m as module id and serves it until the test ends.
// The module's logs go to t.Log. It fails the test if the module does not
// start, and at cleanup if the module's io.Closer fails.
func NewServer(t testing.TB, id string, m sdk.Module, opts ...Option) *Server {
	t.Helper()
	o := sdk.InProcess{LogLevel: "DEBUG"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Flags == nil {
		o.Flags = map[string]string{}
	}
	if o.Flags["work_dir"] == "" {
		o.Flags["work_dir"] = t.TempDir()
	}
	if o.Flags["sandbox_directory"] == "" {
		o.Flags["sandbox_directory"] = t.TempDir()
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	logs := &testLog{t: t}
	o.Log = logs

	ctx, cancel := context.WithCancel(context.Background())
	h, stopped, err := sdk.ServeInProcess(ctx, id, m, o)
	if err != nil {
		cancel()
		t.Fatalf("sdktest: module %q did not start: %v", id, err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("sdktest: module %q: close: %v", id, err)
		}
		logs.stop()
	})
	return &Server{
		URL: hs.URL, Client: hs.Client(),
		WorkDir: o.Flags["work_dir"], SandboxDir: o.Flags["sandbox_directory"], DataDir: o.DataDir,
	}
}

// testLog sends whole log lines to t.Log until the test's cleanup.
type testLog struct {
	t       testing.TB
	mu      sync.Mutex
	buf     []byte
	stopped bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.t.Log(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *testLog) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}
