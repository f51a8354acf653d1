package operator

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	"github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/client"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
)

// fakeSource answers with fixed values. If metricsDelay is set, Metrics
// waits that long (or until ctx is done, then answers with "late" left
// out).
type fakeSource struct {
	healthy      bool
	metricsDelay time.Duration
	flagsErr     error // what Flags returns, if set

	mu       sync.Mutex
	deadline time.Time // of the last Metrics ctx
	hadDL    bool
}

func (f *fakeSource) Health() bool { return f.healthy }

func (f *fakeSource) Flags() ([]Flag, error) {
	if f.flagsErr != nil {
		return nil, f.flagsErr
	}
	return []Flag{{"work_dir", "/var/lib/mesos"}, {"acls", ""}, {"port", "5051"}}, nil
}

func (f *fakeSource) Version() VersionInfo {
	return VersionInfo{Version: "1.11.0", BuildDate: "2024-01-02 03:04:05", BuildTime: 1704164645,
		BuildUser: "builder", GitSHA: "abc123"}
}

func (f *fakeSource) Metrics(ctx context.Context) map[string]float64 {
	dl, ok := ctx.Deadline()
	f.mu.Lock()
	f.deadline, f.hadDL = dl, ok
	f.mu.Unlock()
	m := map[string]float64{"slave/uptime_secs": 12.5, "system/cpus_total": 8,
		"mod/nan": math.NaN(), "mod/inf": math.Inf(1)}
	if f.metricsDelay > 0 {
		select {
		case <-time.After(f.metricsDelay):
			m["mod/late"] = 1
		case <-ctx.Done():
		}
	}
	return m
}

func (f *fakeSource) State() StateInfo {
	return StateInfo{ID: "agent-1-S0", Hostname: "node1.example", PID: "slave(1)@10.0.0.1:5051"}
}

func newServer(t *testing.T, src Source) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/api/v1", Handler(src))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var encodings = []encoding.MediaType{codecs.MediaTypeJSON, codecs.MediaTypeProtobuf}

// newClient builds mesos-go's own agent client against srv.
func newClient(srv *httptest.Server, mt encoding.MediaType) (*httpcli.Client, calls.Sender) {
	cli := httpcli.New(
		httpcli.Endpoint(srv.URL+"/api/v1"),
		httpcli.Codec(codecs.ByMediaType[mt]),
		httpcli.Do(httpcli.With(httpcli.Timeout(10*time.Second))),
	)
	return cli, httpagent.NewSender(cli.Send)
}

func send(t *testing.T, s calls.Sender, c *agent.Call) *agent.Response {
	t.Helper()
	resp, err := s.Send(context.Background(), calls.NonStreaming(c))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		t.Fatalf("%v: %v", c.Type, err)
	}
	var r agent.Response
	if err := resp.Decode(&r); err != nil {
		t.Fatalf("%v: decode: %v", c.Type, err)
	}
	return &r
}

func TestConformanceMesosGoClient(t *testing.T) {
	src := &fakeSource{healthy: true}
	srv := newServer(t, src)
	for _, mt := range encodings {
		t.Run(string(mt), func(t *testing.T) {
			_, s := newClient(srv, mt)

			r := send(t, s, calls.GetHealth())
			if r.Type != agent.Response_GET_HEALTH || r.GetHealth == nil || !r.GetHealth.Healthy {
				t.Errorf("GET_HEALTH: %v", r)
			}

			r = send(t, s, calls.GetFlags())
			wantFlags := []mesos.Flag{{Name: "acls", Value: ptr("")}, {Name: "port", Value: ptr("5051")},
				{Name: "work_dir", Value: ptr("/var/lib/mesos")}}
			if r.Type != agent.Response_GET_FLAGS || !reflect.DeepEqual(r.GetFlags.GetFlags(), wantFlags) {
				t.Errorf("GET_FLAGS: %v", r)
			}

			r = send(t, s, calls.GetVersion())
			wantVersion := mesos.VersionInfo{Version: "1.11.0", BuildDate: ptr("2024-01-02 03:04:05"),
				BuildTime: ptr(1704164645.0), BuildUser: ptr("builder"), GitSHA: ptr("abc123")}
			if r.Type != agent.Response_GET_VERSION || !reflect.DeepEqual(r.GetVersion.VersionInfo, wantVersion) {
				t.Errorf("GET_VERSION: %v", r)
			}

			r = send(t, s, calls.GetMetrics(nil))
			wantMetrics := []mesos.Metric{{Name: "slave/uptime_secs", Value: ptr(12.5)},
				{Name: "system/cpus_total", Value: ptr(8.0)}}
			if r.Type != agent.Response_GET_METRICS || !reflect.DeepEqual(r.GetMetrics.Metrics, wantMetrics) {
				t.Errorf("GET_METRICS: %v", r)
			}
			src.mu.Lock()
			if src.hadDL {
				t.Errorf("GET_METRICS without timeout: Metrics had a deadline")
			}
			src.mu.Unlock()

			d := 3 * time.Second
			before := time.Now()
			send(t, s, calls.GetMetrics(&d))
			src.mu.Lock()
			if !src.hadDL || src.deadline.Before(before.Add(d)) || src.deadline.After(time.Now().Add(d)) {
				t.Errorf("GET_METRICS timeout 3s: Metrics deadline %v (had %v), want ~%v", src.deadline, src.hadDL, before.Add(d))
			}
			src.mu.Unlock()

			r = send(t, s, calls.GetState())
			st := r.GetState
			if r.Type != agent.Response_GET_STATE || st == nil || st.GetTasks == nil || st.GetExecutors == nil ||
				st.GetFrameworks == nil || len(st.GetTasks.LaunchedTasks)+len(st.GetExecutors.Executors)+
				len(st.GetFrameworks.Frameworks) != 0 {
				t.Errorf("GET_STATE: %v", r)
			}

			r = send(t, s, calls.GetAgent())
			ai := r.GetAgent.GetAgentInfo()
			if r.Type != agent.Response_GET_AGENT || ai == nil || ai.Hostname != "node1.example" ||
				ai.GetID().GetValue() != "agent-1-S0" || ai.GetPort() != 5051 {
				t.Errorf("GET_AGENT: %v", r)
			}

			for _, c := range []*agent.Call{calls.GetTasks(), calls.GetExecutors(), calls.GetFrameworks()} {
				r = send(t, s, c)
				if r.Type.String() != c.Type.String() {
					t.Errorf("%v: response type %v", c.Type, r.Type)
				}
			}
			if r := send(t, s, calls.GetTasks()); r.GetTasks == nil || len(r.GetTasks.PendingTasks) != 0 {
				t.Errorf("GET_TASKS: %v", r)
			}
		})
	}
}

// TestConformanceMetricsTimeout: a Source slower than the call's timeout
// is cut off; its late figure is missing, the rest is there.
func TestConformanceMetricsTimeout(t *testing.T) {
	srv := newServer(t, &fakeSource{metricsDelay: 10 * time.Second})
	for _, mt := range encodings {
		_, s := newClient(srv, mt)
		d := 50 * time.Millisecond
		start := time.Now()
		r := send(t, s, calls.GetMetrics(&d))
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("%s: GET_METRICS with 50ms timeout took %v", mt, el)
		}
		for _, m := range r.GetMetrics.Metrics {
			if m.Name == "mod/late" {
				t.Errorf("%s: late metric included", mt)
			}
		}
		if len(r.GetMetrics.Metrics) != 2 {
			t.Errorf("%s: metrics %v", mt, r.GetMetrics.Metrics)
		}
	}
}

// unresponsiveSource ignores ctx in Metrics.
type unresponsiveSource struct {
	fakeSource
	release chan struct{}
}

func (u *unresponsiveSource) Metrics(context.Context) map[string]float64 {
	<-u.release
	return map[string]float64{"x": 1}
}

func TestMetricsSourceIgnoresDeadline(t *testing.T) {
	u := &unresponsiveSource{release: make(chan struct{})}
	defer close(u.release)
	srv := newServer(t, u)
	_, s := newClient(srv, codecs.MediaTypeProtobuf)
	d := 10 * time.Millisecond
	r := send(t, s, calls.GetMetrics(&d))
	if len(r.GetMetrics.Metrics) != 0 {
		t.Errorf("metrics %v, want none", r.GetMetrics.Metrics)
	}
}

func TestConformanceUnhealthy(t *testing.T) {
	srv := newServer(t, &fakeSource{healthy: false})
	for _, mt := range encodings {
		_, s := newClient(srv, mt)
		if r := send(t, s, calls.GetHealth()); r.GetHealth.Healthy {
			t.Errorf("%s: healthy", mt)
		}
	}
}

// TestConformanceNotImplemented: mesos-go sees UNKNOWN and unsupported
// calls fail with the status and body Mesos gives.
func TestConformanceNotImplemented(t *testing.T) {
	srv := newServer(t, &fakeSource{})
	for _, mt := range encodings {
		cli, s := newClient(srv, mt)
		// httpagent refuses to send UNKNOWN, so use the client directly.
		resp, err := cli.Send(calls.NonStreaming(&agent.Call{Type: agent.Call_UNKNOWN}), client.ResponseClassSingleton)
		if resp != nil {
			resp.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "501 Not Implemented.") {
			t.Errorf("%s: UNKNOWN: %v", mt, err)
		}
		for _, c := range []*agent.Call{calls.GetContainers(), calls.GetLoggingLevel(),
			calls.ListFiles("/"), calls.WaitContainer(mesos.ContainerID{Value: "c"})} {
			resp, err := s.Send(context.Background(), calls.NonStreaming(c))
			if resp != nil {
				resp.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "501 Not Implemented. "+c.Type.String()+" is not supported") {
				t.Errorf("%s: %v: %v", mt, c.Type, err)
			}
		}
	}
}
