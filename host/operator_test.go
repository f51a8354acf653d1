package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/agent"
	"github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"

	"github.com/execmod/execmod/internal/hosttest"
)

// mesosClient is mesos-go's own agent client (httpcli + httpagent) for
// the host's /api/v1 in one encoding, with basic credentials when user
// is not "".
type mesosClient struct {
	t      *testing.T
	sender calls.Sender
}

func newMesosClient(t *testing.T, h *hosttest.Host, mt encoding.MediaType, user, secret string) *mesosClient {
	opts := []httpcli.ConfigOpt{httpcli.Timeout(10 * time.Second)}
	if user != "" {
		opts = append(opts, httpcli.BasicAuth(user, secret))
	}
	cli := httpcli.New(httpcli.Endpoint(h.URL+"/api/v1"), httpcli.Codec(codecs.ByMediaType[mt]),
		httpcli.Do(httpcli.With(opts...)))
	return &mesosClient{t: t, sender: httpagent.NewSender(cli.Send)}
}

// try sends c and returns the decoded response, or the client's error.
func (m *mesosClient) try(c *agent.Call) (*agent.Response, error) {
	m.t.Helper()
	resp, err := m.sender.Send(context.Background(), calls.NonStreaming(c))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		return nil, err
	}
	var r agent.Response
	if err := resp.Decode(&r); err != nil {
		m.t.Fatalf("%v: decode: %v", c.Type, err)
	}
	return &r, nil
}

// call is try for a call that must succeed with its own response type.
func (m *mesosClient) call(c *agent.Call) *agent.Response {
	m.t.Helper()
	r, err := m.try(c)
	if err != nil {
		m.t.Fatalf("%v: %v", c.Type, err)
	}
	if r.Type.String() != c.Type.String() {
		m.t.Fatalf("%v answered %v", c.Type, r.Type)
	}
	return r
}

// mesosEncodings are the two encodings of the operator API.
var mesosEncodings = []encoding.MediaType{codecs.MediaTypeJSON, codecs.MediaTypeProtobuf}

// mesos-go's own agent client, a client nobody here wrote, against the
// real bin/modhost: every call the operator API supports (see
// host/internal/operator's package comment), in both encodings, with
// the content checked against what the host's own endpoints say.
func TestMesosGoClientAgainstModhost(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"), "--hostname=agent-9")
	_, body := h.Get("/version")
	var ver struct {
		BuildDate string  `json:"build_date"`
		BuildTime float64 `json:"build_time"`
		BuildUser string  `json:"build_user"`
		GitSHA    string  `json:"git_sha"`
	}
	if err := json.Unmarshal([]byte(body), &ver); err != nil {
		t.Fatalf("/version: %v: %s", err, body)
	}
	_, port, err := net.SplitHostPort(strings.TrimPrefix(h.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range mesosEncodings {
		t.Run(string(mt), func(t *testing.T) {
			c := newMesosClient(t, h, mt, "", "")
			if r := c.call(calls.GetHealth()); !r.GetHealth.GetHealthy() {
				t.Errorf("GET_HEALTH = %v", r)
			}

			flags := map[string]string{}
			var names []string
			for _, f := range c.call(calls.GetFlags()).GetFlags.GetFlags() {
				flags[f.Name] = f.GetValue()
				names = append(names, f.Name)
			}
			if flags["hostname"] != "agent-9" || flags["work_dir"] != h.WorkDir || flags["port"] != "0" {
				t.Errorf("GET_FLAGS = %v", flags)
			}
			_, fb := h.Get("/flags")
			if want := orderedKeys(t, fb, "flags"); strings.Join(names, ",") != strings.Join(want, ",") {
				t.Errorf("GET_FLAGS names %v, want /flags's, in its order: %v", names, want)
			}

			v := c.call(calls.GetVersion()).GetVersion.GetVersionInfo()
			if v.Version != version || v.BuildDate == nil || v.BuildTime == nil || v.BuildUser == nil ||
				*v.BuildDate != ver.BuildDate || *v.BuildTime != ver.BuildTime || *v.BuildUser != ver.BuildUser ||
				v.GetGitSHA() != ver.GitSHA || (v.GitSHA != nil) != (ver.GitSHA != "") {
				t.Errorf("GET_VERSION = %v, want version %s and the build of /version: %s", v, version, body)
			}

			metrics := map[string]float64{}
			for _, m := range c.call(calls.GetMetrics(nil)).GetMetrics.GetMetrics() {
				metrics[m.Name] = m.GetValue()
			}
			if metrics["modhost/modules_running"] != 1 || metrics["slave/uptime_secs"] <= 0 || metrics["system/cpus_total"] < 1 {
				t.Errorf("GET_METRICS = %v", metrics)
			}
			d := time.Second
			if m := c.call(calls.GetMetrics(&d)).GetMetrics.GetMetrics(); len(m) == 0 {
				t.Errorf("GET_METRICS with a timeout of 1s: no metrics")
			}

			emptyTasks := func(call string, ts *agent.Response_GetTasks) {
				t.Helper()
				if ts == nil || len(ts.PendingTasks)+len(ts.QueuedTasks)+len(ts.LaunchedTasks)+len(ts.TerminatedTasks)+len(ts.CompletedTasks) != 0 {
					t.Errorf("%s: tasks %v, want present and empty", call, ts)
				}
			}
			emptyExecutors := func(call string, es *agent.Response_GetExecutors) {
				t.Helper()
				if es == nil || len(es.Executors)+len(es.CompletedExecutors) != 0 {
					t.Errorf("%s: executors %v, want present and empty", call, es)
				}
			}
			emptyFrameworks := func(call string, fs *agent.Response_GetFrameworks) {
				t.Helper()
				if fs == nil || len(fs.Frameworks)+len(fs.CompletedFrameworks) != 0 {
					t.Errorf("%s: frameworks %v, want present and empty", call, fs)
				}
			}
			st := c.call(calls.GetState()).GetState
			if st == nil {
				t.Fatal("GET_STATE without get_state")
			}
			emptyTasks("GET_STATE", st.GetTasks)
			emptyExecutors("GET_STATE", st.GetExecutors)
			emptyFrameworks("GET_STATE", st.GetFrameworks)
			emptyTasks("GET_TASKS", c.call(calls.GetTasks()).GetTasks)
			emptyExecutors("GET_EXECUTORS", c.call(calls.GetExecutors()).GetExecutors)
			emptyFrameworks("GET_FRAMEWORKS", c.call(calls.GetFrameworks()).GetFrameworks)

			_, sb := h.Get("/state")
			state := hosttest.Decode(t, sb)
			ai := c.call(calls.GetAgent()).GetAgent.GetAgentInfo()
			if ai.Hostname != "agent-9" || ai.Port == nil || fmt.Sprint(*ai.Port) != port ||
				ai.ID == nil || ai.ID.Value != state["id"] || len(ai.Resources)+len(ai.Attributes) != 0 {
				t.Errorf("GET_AGENT = %v, want hostname agent-9, port %s, id %v", ai, port, state["id"])
			}

			// A call the host does not implement is Mesos's 501.
			if _, err := c.try(calls.GetLoggingLevel()); !apierrors.Code(http.StatusNotImplemented).Matches(err) {
				t.Errorf("GET_LOGGING_LEVEL: %v, want 501", err)
			}
		})
	}
}

// With --authenticate_http_readwrite (Mesos puts /api/v1 in that realm)
// mesos-go's basic credentials get in and nothing else does; with --acls,
// view_flags refuses GET_FLAGS with 403 as in Mesos, naming the rule,
// while the calls Mesos does not authorize still answer.
func TestMesosGoClientAuthenticated(t *testing.T) {
	acls := `{"view_flags": [{"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}},
		{"principals": {"type": "ANY"}, "flags": {"type": "NONE"}}]}`
	h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"), "--http_credentials=file://"+credentialsFile(t),
		"--authenticate_http_readwrite", "--acls="+acls)
	for _, mt := range mesosEncodings {
		t.Run(string(mt), func(t *testing.T) {
			ops := newMesosClient(t, h, mt, "ops", e2eCreds["ops"])
			if r := ops.call(calls.GetHealth()); !r.GetHealth.GetHealthy() {
				t.Errorf("GET_HEALTH as ops = %v", r)
			}
			if f := ops.call(calls.GetFlags()).GetFlags.GetFlags(); len(f) == 0 {
				t.Errorf("GET_FLAGS as ops: no flags")
			}
			if v := ops.call(calls.GetVersion()).GetVersion.GetVersionInfo(); v.Version != version {
				t.Errorf("GET_VERSION as ops = %v", v)
			}
			if ai := ops.call(calls.GetAgent()).GetAgent.GetAgentInfo(); ai.Hostname == "" {
				t.Errorf("GET_AGENT as ops = %v", ai)
			}

			for name, c := range map[string]*mesosClient{
				"no credentials":    newMesosClient(t, h, mt, "", ""),
				"a wrong password":  newMesosClient(t, h, mt, "ops", "wrong"),
				"unknown principal": newMesosClient(t, h, mt, "mallory", e2eCreds["ops"]),
			} {
				if _, err := c.try(calls.GetHealth()); !apierrors.CodeNotAuthenticated.Matches(err) {
					t.Errorf("GET_HEALTH with %s: %v, want 401", name, err)
				}
			}

			bob := newMesosClient(t, h, mt, "bob", e2eCreds["bob"])
			_, err := bob.try(calls.GetFlags())
			if !apierrors.Code(http.StatusForbidden).Matches(err) || !strings.Contains(err.Error(), `"rule":"view_flags[1]"`) ||
				!strings.Contains(err.Error(), `principal \"bob\" may not view the flags`) {
				t.Errorf("GET_FLAGS as bob: %v, want 403 naming view_flags[1]", err)
			}
			if r := bob.call(calls.GetVersion()); r.GetVersion == nil {
				t.Errorf("GET_VERSION as bob = %v", r)
			}
			if r := bob.call(calls.GetState()); r.GetState == nil {
				t.Errorf("GET_STATE as bob = %v", r)
			}
		})
	}
	noSecretsLogged(t, h)
}

// orderedKeys returns the keys of the JSON object body (or of its member
// at path, one level down) in the order the body has them.
func orderedKeys(t *testing.T, body string, path ...string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	expect := func(want json.Delim) {
		t.Helper()
		if tok, err := dec.Token(); err != nil || tok != want {
			t.Fatalf("%q: want %v, got %v %v", body, want, tok, err)
		}
	}
	expect('{')
	for _, p := range path {
		for {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("%q: no %q: %v", body, p, err)
			}
			if tok == p {
				break
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatal(err)
			}
		}
		expect('{')
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
