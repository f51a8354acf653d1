package operator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
)

// Source is what the operator API reports about the host, for one
// request.
type Source interface {
	Health() bool
	// Flags returns the agent's flags (name/value), or a *Forbidden when
	// the request's principal may not view them (Mesos's view_flags);
	// the call then answers 403. Any other error answers 500.
	Flags() ([]Flag, error)
	Version() VersionInfo
	// Metrics returns the /metrics/snapshot figures. It must return
	// promptly, with what it has, once ctx is done.
	Metrics(ctx context.Context) map[string]float64
	State() StateInfo
}

// Forbidden is a Source's refusal of a call: it answers 403 Forbidden,
// as Mesos does, with the JSON body {"error": Message, "rule": Rule} that
// names the ACL rule that decided.
type Forbidden struct {
	Message string
	Rule    string
}

func (e *Forbidden) Error() string { return e.Message }

// Flag is one agent flag.
type Flag struct {
	Name, Value string
}

// VersionInfo is the host's build, as in /version.
type VersionInfo struct {
	Version   string
	BuildDate string
	BuildTime float64 // seconds since the epoch
	BuildUser string
	GitSHA    string // optional
	GitBranch string // optional
	GitTag    string // optional
}

// StateInfo identifies the agent.
type StateInfo struct {
	ID       string // agent ID; empty if the host has none
	Hostname string
	// PID is the libprocess PID, "slave(1)@ip:port"; its port is
	// reported in GET_AGENT's agent_info.port.
	PID string
}

// MaxBody is the largest request body the handler reads.
const MaxBody = 1 << 20

// metricsGrace is how long GET_METRICS waits past its deadline for a
// Source that is slow to notice it.
const metricsGrace = 250 * time.Millisecond

const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/x-protobuf"
	mediaRecordIO = "application/recordio"

	headerMessageContentType = "Message-Content-Type"
	headerMessageAccept      = "Message-Accept"
)

type handler struct{ src Source }

// Handler serves POST /api/v1 from src.
func Handler(src Source) http.Handler { return handler{src} }

// reject is an error response: status, body and extra headers. Its
// Content-Type is text/plain unless header sets another.
type reject struct {
	status int
	body   string
	header http.Header
}

func (e *reject) Error() string { return strconv.Itoa(e.status) + " " + e.body }

func rejectf(status int, body string) *reject { return &reject{status: status, body: body} }

func (e *reject) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for k, v := range e.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(e.status)
	io.WriteString(w, e.body)
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call, accept, rej := readCall(w, r)
	if rej != nil {
		rej.write(w)
		return
	}
	resp, rej := h.serve(r.Context(), call)
	if rej != nil {
		rej.write(w)
		return
	}
	writeResponse(w, accept, resp)
}

// serve runs a decoded, validated call.
func (h handler) serve(ctx context.Context, call *agent.Call) (*agent.Response, *reject) {
	switch call.Type {
	case agent.Call_UNKNOWN:
		return nil, rejectf(http.StatusNotImplemented, "501 Not Implemented.")
	case agent.Call_GET_HEALTH:
		return &agent.Response{Type: agent.Response_GET_HEALTH,
			GetHealth: &agent.Response_GetHealth{Healthy: h.src.Health()}}, nil
	case agent.Call_GET_FLAGS:
		flags, err := h.flags()
		if err != nil {
			return nil, sourceError(err)
		}
		return &agent.Response{Type: agent.Response_GET_FLAGS, GetFlags: flags}, nil
	case agent.Call_GET_VERSION:
		return &agent.Response{Type: agent.Response_GET_VERSION, GetVersion: h.version()}, nil
	case agent.Call_GET_METRICS:
		return &agent.Response{Type: agent.Response_GET_METRICS,
			GetMetrics: h.metrics(ctx, call.GetMetrics.GetTimeout())}, nil
	case agent.Call_GET_STATE:
		return &agent.Response{Type: agent.Response_GET_STATE, GetState: &agent.Response_GetState{
			GetTasks: emptyTasks(), GetExecutors: emptyExecutors(), GetFrameworks: emptyFrameworks()}}, nil
	case agent.Call_GET_TASKS:
		return &agent.Response{Type: agent.Response_GET_TASKS, GetTasks: emptyTasks()}, nil
	case agent.Call_GET_EXECUTORS:
		return &agent.Response{Type: agent.Response_GET_EXECUTORS, GetExecutors: emptyExecutors()}, nil
	case agent.Call_GET_FRAMEWORKS:
		return &agent.Response{Type: agent.Response_GET_FRAMEWORKS, GetFrameworks: emptyFrameworks()}, nil
	case agent.Call_GET_AGENT:
		return &agent.Response{Type: agent.Response_GET_AGENT, GetAgent: h.agent()}, nil
	}
	return nil, rejectf(http.StatusNotImplemented,
		"501 Not Implemented. "+call.Type.String()+" is not supported by this agent")
}

func (h handler) flags() (*agent.Response_GetFlags, error) {
	src, err := h.src.Flags()
	if err != nil {
		return nil, err
	}
	src = slices.Clone(src)
	slices.SortStableFunc(src, func(a, b Flag) int { return cmp.Compare(a.Name, b.Name) })
	out := &agent.Response_GetFlags{Flags: make([]mesos.Flag, len(src))}
	for i, f := range src {
		out.Flags[i] = mesos.Flag{Name: f.Name, Value: ptr(f.Value)}
	}
	return out, nil
}

// sourceError maps a Source's error to its answer: *Forbidden is 403
// with a JSON body naming the rule, anything else 500.
func sourceError(err error) *reject {
	if f, ok := errors.AsType[*Forbidden](err); ok {
		b, _ := json.Marshal(map[string]string{"error": f.Message, "rule": f.Rule})
		return &reject{status: http.StatusForbidden, body: string(b) + "\n",
			header: http.Header{"Content-Type": {mediaJSON}}}
	}
	return rejectf(http.StatusInternalServerError, "500 Internal Server Error. "+err.Error())
}

func (h handler) version() *agent.Response_GetVersion {
	v := h.src.Version()
	info := mesos.VersionInfo{Version: v.Version,
		BuildDate: ptr(v.BuildDate), BuildTime: ptr(v.BuildTime), BuildUser: ptr(v.BuildUser)}
	if v.GitSHA != "" {
		info.GitSHA = ptr(v.GitSHA)
	}
	if v.GitBranch != "" {
		info.GitBranch = ptr(v.GitBranch)
	}
	if v.GitTag != "" {
		info.GitTag = ptr(v.GitTag)
	}
	return &agent.Response_GetVersion{VersionInfo: info}
}

// metrics asks the Source, within timeout if there is one. A Source that
// has not answered metricsGrace after the deadline contributes nothing.
func (h handler) metrics(ctx context.Context, timeout *mesos.DurationInfo) *agent.Response_GetMetrics {
	if timeout != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(max(timeout.Nanoseconds, 0)))
		defer cancel()
	}
	done := make(chan map[string]float64, 1) // buffered: a late Source does not leak
	go func() { done <- h.src.Metrics(ctx) }()
	var m map[string]float64
	select {
	case m = <-done:
	case <-ctx.Done():
		select {
		case m = <-done:
		case <-time.After(metricsGrace):
		}
	}
	out := &agent.Response_GetMetrics{Metrics: []mesos.Metric{}}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if v := m[name]; !math.IsNaN(v) && !math.IsInf(v, 0) {
			out.Metrics = append(out.Metrics, mesos.Metric{Name: name, Value: ptr(v)})
		}
	}
	return out
}

func (h handler) agent() *agent.Response_GetAgent {
	st := h.src.State()
	info := &mesos.AgentInfo{Hostname: st.Hostname,
		Resources: []mesos.Resource{}, Attributes: []mesos.Attribute{}}
	if st.ID != "" {
		info.ID = &mesos.AgentID{Value: st.ID}
	}
	if port, ok := pidPort(st.PID); ok {
		info.Port = &port
	}
	return &agent.Response_GetAgent{AgentInfo: info}
}

// pidPort returns the port of a libprocess PID "id@ip:port".
func pidPort(pid string) (int32, bool) {
	_, addr, ok := strings.Cut(pid, "@")
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return 0, false
	}
	p, err := strconv.ParseUint(addr[i+1:], 10, 16)
	if err != nil {
		return 0, false
	}
	return int32(p), true
}

func emptyTasks() *agent.Response_GetTasks {
	return &agent.Response_GetTasks{PendingTasks: []mesos.Task{}, QueuedTasks: []mesos.Task{},
		LaunchedTasks: []mesos.Task{}, TerminatedTasks: []mesos.Task{}, CompletedTasks: []mesos.Task{}}
}

func emptyExecutors() *agent.Response_GetExecutors {
	return &agent.Response_GetExecutors{Executors: []agent.Response_GetExecutors_Executor{},
		CompletedExecutors: []agent.Response_GetExecutors_Executor{}}
}

func emptyFrameworks() *agent.Response_GetFrameworks {
	return &agent.Response_GetFrameworks{Frameworks: []agent.Response_GetFrameworks_Framework{},
		CompletedFrameworks: []agent.Response_GetFrameworks_Framework{}}
}

// writeResponse encodes resp as mesos-go's codecs do: encoding/json over
// the ffjson methods, or the gogo Marshal method.
func writeResponse(w http.ResponseWriter, accept string, resp *agent.Response) {
	var b []byte
	var err error
	if accept == mediaProtobuf {
		b, err = resp.Marshal()
	} else {
		b, err = json.Marshal(resp)
	}
	if err != nil {
		rejectf(http.StatusInternalServerError, "Failed to encode response: "+err.Error()).write(w)
		return
	}
	w.Header().Set("Content-Type", accept)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func ptr[T any](v T) *T { return &v }

// errTooLarge reports a body over MaxBody.
var errTooLarge = errors.New("request body too large")
