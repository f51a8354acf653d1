package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/execmod/execmod/host/internal/supervisor"
	"github.com/execmod/execmod/internal/wire"
)

// metered is a mounted module with metrics: metrics answers for it.
type metered struct {
	id      string
	state   supervisor.State
	restart int
	metrics func(ctx context.Context) (map[string]float64, error)
}

func (m metered) Manifest() wire.Manifest {
	return wire.Manifest{ID: m.id, Routes: []wire.Route{{Method: "GET", Path: "/"}}}
}
func (m metered) Backend() (*wire.Process, error) { return nil, errors.New("no process") }
func (m metered) Status() supervisor.Status {
	return supervisor.Status{Name: "org_" + m.id, ID: m.id, Path: "/bin/" + m.id, State: m.state, Restarts: m.restart}
}
func (m metered) Metrics(ctx context.Context) (map[string]float64, error) { return m.metrics(ctx) }

func fixedMetrics(m map[string]float64) func(context.Context) (map[string]float64, error) {
	return func(context.Context) (map[string]float64, error) { return m, nil }
}

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", path, nil))
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func snapshotOf(t *testing.T, srv *Server) map[string]float64 {
	t.Helper()
	resp, body := get(t, srv.Handler(), "/metrics/snapshot")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/metrics/snapshot = %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var snap map[string]float64
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatalf("/metrics/snapshot: %v\n%s", err, body)
	}
	return snap
}

func TestSnapshot(t *testing.T) {
	srv, err := New(Info{StartTime: time.Now().Add(-time.Minute)}, []Module{
		metered{id: "counter", state: supervisor.Running, restart: 2, metrics: fixedMetrics(map[string]float64{"hits": 3, "bytes/in": 1.5})},
		metered{id: "down", state: supervisor.Restarting, restart: 1, metrics: func(context.Context) (map[string]float64, error) {
			return nil, fmt.Errorf("%w: restarting", wire.ErrModuleDown)
		}},
		metered{id: "broken", state: supervisor.Failed, restart: 5, metrics: func(context.Context) (map[string]float64, error) {
			return map[string]float64{"partial": 1}, errors.New("failed")
		}},
		metered{id: "odd", state: supervisor.Running, metrics: fixedMetrics(map[string]float64{"nan": math.NaN(), "inf": math.Inf(1), "ok": 0})},
		metered{id: "quiet", state: supervisor.Running, metrics: fixedMetrics(nil)},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, srv)

	want := map[string]float64{
		"counter/hits": 3, "counter/bytes/in": 1.5, "odd/ok": 0,
		"modhost/modules_running": 3, "modhost/modules_failed": 1, "modhost/module_restarts": 8,
		"system/cpus_total": float64(runtime.NumCPU()),
	}
	for name, v := range want {
		if got, ok := snap[name]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	for _, name := range []string{"down/", "broken/", "odd/nan", "odd/inf", "quiet/"} {
		for k := range snap {
			if strings.HasPrefix(k, name) {
				t.Errorf("snapshot has %s, want nothing from a module that is down, failed or not finite", k)
			}
		}
	}
	if up := snap["slave/uptime_secs"]; up < 60 || up > 3600 {
		t.Errorf("slave/uptime_secs = %v, want about 60", up)
	}
	if runtime.GOOS == "linux" {
		for _, name := range []string{"system/load_1min", "system/load_5min", "system/load_15min", "system/mem_total_bytes", "system/mem_free_bytes"} {
			if _, ok := snap[name]; !ok {
				t.Errorf("snapshot lacks %s", name)
			}
		}
		if snap["system/mem_total_bytes"] < snap["system/mem_free_bytes"] || snap["system/mem_free_bytes"] <= 0 {
			t.Errorf("mem_total_bytes %v, mem_free_bytes %v", snap["system/mem_total_bytes"], snap["system/mem_free_bytes"])
		}
	}
}

// A module whose Metrics blocks until its context ends, and one that never
// returns at all, cannot stall the endpoint: the others' figures arrive
// once the timeout has passed.
func TestSnapshotTimesOutStuckModules(t *testing.T) {
	stuckErr := make(chan error, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv, err := New(Info{StartTime: time.Now()}, []Module{
		metered{id: "stuck", state: supervisor.Running, metrics: func(ctx context.Context) (map[string]float64, error) {
			<-ctx.Done()
			stuckErr <- ctx.Err()
			return map[string]float64{"late": 1}, nil
		}},
		metered{id: "deaf", state: supervisor.Running, metrics: func(context.Context) (map[string]float64, error) {
			<-release // ignores its context
			return map[string]float64{"late": 1}, nil
		}},
		metered{id: "counter", state: supervisor.Running, metrics: fixedMetrics(map[string]float64{"hits": 7})},
	}, Options{MetricsTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, srv)
	if err := <-stuckErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stuck module's context ended with %v, want the deadline", err)
	}
	if snap["counter/hits"] != 7 || snap["modhost/modules_running"] != 3 {
		t.Errorf("counter/hits = %v, modhost/modules_running = %v; want 7, 3", snap["counter/hits"], snap["modhost/modules_running"])
	}
	for _, name := range []string{"stuck/late", "deaf/late"} {
		if _, ok := snap[name]; ok {
			t.Errorf("snapshot has %s from a module that missed the deadline", name)
		}
	}
}

// The request's own context bounds the wait too: a client that goes away
// does not leave the handler waiting for the timeout.
func TestSnapshotEndsWithRequest(t *testing.T) {
	srv, err := New(Info{}, []Module{
		metered{id: "stuck", state: supervisor.Running, metrics: func(ctx context.Context) (map[string]float64, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}},
	}, Options{MetricsTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/metrics/snapshot", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"modhost/modules_running":1`) {
		t.Errorf("/metrics/snapshot = %d %s", rec.Code, rec.Body)
	}
}

func TestPrometheus(t *testing.T) {
	srv, err := New(Info{StartTime: time.Now()}, []Module{
		metered{id: "counter", state: supervisor.Running, metrics: fixedMetrics(map[string]float64{
			"hits": 3, "big": 1e21, "9lives": 9, "a-b": 1, "a_b": 2, "héllo": 4,
		})},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, srv.Handler(), "/metrics")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("/metrics = %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{
		"# TYPE slave_uptime_secs gauge\nslave_uptime_secs ",
		"# TYPE modhost_modules_running gauge\nmodhost_modules_running 1\n",
		"# TYPE counter_hits gauge\ncounter_hits 3\n",
		"counter_big 1e+21\n",
		"counter_9lives 9\n",
		"counter_a_b 1\n", // "counter/a-b" sorts first and wins the name
		"counter_h__llo 4\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	typeLine := regexp.MustCompile(`^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* gauge$`)
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]* \S+$`)
	seen := map[string]bool{}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for i, line := range lines {
		if i%2 == 0 {
			if !typeLine.MatchString(line) {
				t.Errorf("line %d: %q is not a TYPE line", i+1, line)
			}
			continue
		}
		name := strings.Fields(line)[0]
		if !sample.MatchString(line) || lines[i-1] != "# TYPE "+name+" gauge" || seen[name] {
			t.Errorf("line %d: %q is not a sample of the TYPE before it, or repeats a name", i+1, line)
		}
		seen[name] = true
	}
}

func TestMetricsHelp(t *testing.T) {
	srv, err := New(Info{}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/help/metrics/snapshot": "### USAGE ###\n>        /metrics/snapshot\n\n### TL;DR; ###\nProvides a snapshot of the current metrics.\n",
		"/help/metrics":          "/metrics/snapshot",
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), "GET", path, nil)
		req.Header.Set("User-Agent", "curl/8.0")
		srv.Handler().ServeHTTP(rec, req)
		if body := rec.Body.String(); rec.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s lacks %q:\n%s", path, want, body)
		}
	}
}

func TestParseLoadavg(t *testing.T) {
	l1, l5, l15, err := parseLoadavg([]byte("1.81 1.91 0.05 6/117 22306\n"))
	if err != nil || l1 != 1.81 || l5 != 1.91 || l15 != 0.05 {
		t.Errorf("parseLoadavg = %v %v %v %v", l1, l5, l15, err)
	}
	for _, bad := range []string{"", "1 2", "1 x 3 4/5 6"} {
		if _, _, _, err := parseLoadavg([]byte(bad)); err == nil {
			t.Errorf("parseLoadavg(%q) succeeded", bad)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	total, avail, err := parseMeminfo([]byte("MemTotal:       24683656 kB\nMemFree:        22421684 kB\nMemAvailable:   23988728 kB\n"))
	if err != nil || total != 24683656*1024 || avail != 23988728*1024 {
		t.Errorf("parseMeminfo = %v %v %v", total, avail, err)
	}
	for _, bad := range []string{
		"",
		"MemTotal: 1 kB\n", // no MemAvailable (kernels before 3.14)
		"MemTotal: 1 kB\nMemAvailable: x kB\n",
		"MemTotal: 1 MB\nMemAvailable: 1 kB\n",
	} {
		if _, _, err := parseMeminfo([]byte(bad)); err == nil {
			t.Errorf("parseMeminfo(%q) succeeded", bad)
		}
	}
}

func TestPromName(t *testing.T) {
	for in, want := range map[string]string{
		"slave/uptime_secs": "slave_uptime_secs",
		"counter/hits":      "counter_hits",
		"a:b_C9":            "a:b_C9",
		"9x":                "_9x",
		"":                  "_",
		"a b.c-d":           "a_b_c_d",
	} {
		if got := promName(in); got != want {
			t.Errorf("promName(%q) = %q, want %q", in, got, want)
		}
	}
}
