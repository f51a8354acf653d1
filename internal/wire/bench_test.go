package wire

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// BenchmarkHop is the bridge's own cost: one GET forwarded to a module
// (Forward, the SDK side, a handler writing a short body) against the
// floor of a bare gRPC unary call (go-plugin's health check) on the same
// connection, the module served in this process over its unix socket.
// "http" adds the host's net/http server in front, as the bench's
// forwarding figure has it. Compare ns/op of the sub-benchmarks, e.g.
// go test -run='^$' -bench=Hop -count=5 ./internal/wire
func BenchmarkHop(b *testing.B) {
	p, closed, err := ServeInProcess(b.Context(), handlerModule{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello, bench!\n")
	})}, ServeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Stop(); <-closed })
	man, err := p.Init(b.Context(), InitRequest{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("unary", func(b *testing.B) {
		hc := healthpb.NewHealthClient(p.conn)
		for b.Loop() {
			if _, err := hc.Check(b.Context(), &healthpb.HealthCheckRequest{Service: "plugin"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("forward", func(b *testing.B) {
		opts := ForwardOptions{Module: "sdk", Mount: "/sdk"}
		for b.Loop() {
			w := httptest.NewRecorder()
			p.Forward(w, httptest.NewRequest("GET", "/sdk/x", nil), opts)
			if w.Code != 200 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
	mux := http.NewServeMux()
	if err := Mount(mux, man, func() (*Process, error) { return p, nil }, MountOptions{}); err != nil {
		b.Fatal(err)
	}
	mux.HandleFunc("GET /health", func(http.ResponseWriter, *http.Request) {})
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	get := func(b *testing.B, path string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	b.Run("http-floor", func(b *testing.B) {
		for b.Loop() {
			get(b, "/health")
		}
	})
	b.Run("http", func(b *testing.B) {
		for b.Loop() {
			get(b, "/sdk/x")
		}
	})
}
