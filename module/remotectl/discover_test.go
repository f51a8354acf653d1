package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

// masterStandIn is a stand-in for a Mesos master, not a master: a loopback
// server that answers the v1 operator API's GET_AGENTS, and nothing else,
// with mesos-go's own master.Response in JSON, so that remotectl's
// discovery is tested against the types and encoding mesos-go reads. It
// counts the GET_AGENTS calls it answered.
func masterStandIn(t *testing.T, agents []master.Response_GetAgents_Agent) (url string, calls *atomic.Int32) {
	calls = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var call master.Call
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(b, &call)
		}
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/api/v1":
			http.Error(w, "the stand-in serves POST /api/v1 only", http.StatusNotFound)
			return
		case err != nil || call.Type != master.Call_GET_AGENTS:
			http.Error(w, "the stand-in answers GET_AGENTS only", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		body, err := json.Marshal(master.Response{Type: master.Response_GET_AGENTS,
			GetAgents: &master.Response_GetAgents{Agents: agents}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// standInAgent is an agent as GET_AGENTS lists it. With port 0 the agent
// has no AgentInfo.port, only a pid naming pidAddr, as older agents do.
func standInAgent(hostname string, port int32, pidAddr string, active bool, attrs ...mesos.Attribute) master.Response_GetAgents_Agent {
	a := master.Response_GetAgents_Agent{Active: active, Version: "1.11.0",
		AgentInfo: mesos.AgentInfo{Hostname: hostname, Attributes: attrs}}
	if port != 0 {
		a.AgentInfo.Port = &port
	}
	if pidAddr != "" {
		pid := "slave(1)@" + pidAddr
		a.PID = &pid
	}
	return a
}

func text(name, v string) mesos.Attribute {
	return mesos.Attribute{Name: name, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}}
}

func portOf(t *testing.T, addr string) int32 {
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("address %q", addr)
	}
	return int32(n)
}

// Discovery with the Mesos-master stand-in: remotectl runs on the active
// agents GET_AGENTS lists (one known only by its pid), leaves out an
// inactive one and says so, and --agent-filter selects by attribute and
// hostname.
func TestDiscoveryFromMasterStandIn(t *testing.T) {
	f := startFleet(t)
	gpus := mesos.Attribute{Name: "gpus", Type: mesos.SCALAR, Scalar: &mesos.Value_Scalar{Value: 2}}
	url, calls := masterStandIn(t, []master.Response_GetAgents_Agent{
		standInAgent("127.0.0.1", portOf(t, f.ok1), "", true, text("rack", "r1")),
		standInAgent("127.0.0.1", portOf(t, f.fail), "", true, text("rack", "r2")),
		standInAgent("localhost", 0, f.ok2, true, text("rack", "r1"), gpus),
		standInAgent("gone.invalid", 5051, "", false, text("rack", "r1")),
	})
	ok2 := "localhost:" + strconv.Itoa(int(portOf(t, f.ok2)))
	cmd := []string{"--shell", "--", `echo "hello from $(cat ~/name)"; exit $(cat ~/fail)`}
	for _, c := range []struct {
		name    string
		args    []string
		code    int
		ran     []string // agents whose output is there
		skipped []string // agents that must not have run
	}{
		{"every active agent", []string{"--max-errors", "100%"}, 7, []string{f.ok1 + ": hello from a", f.fail + ": hello from b", ok2 + ": hello from c"}, nil},
		{"by attribute", []string{"--agent-filter", "rack=r1"}, 0, []string{f.ok1 + ": hello from a", ok2 + ": hello from c"}, []string{f.fail + ":"}},
		{"by scalar attribute and hostname", []string{"--agent-filter", "gpus=2", "--agent-filter", "hostname=local.*"}, 0,
			[]string{ok2 + ": hello from c"}, []string{f.ok1 + ":", f.fail + ":"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := remotectl(t, nil, append(append([]string{"run", "--master", url}, c.args...), cmd...)...)
			if r.code != c.code {
				t.Errorf("exit %d, want %d\n%s%s", r.code, c.code, r.stdout, r.stderr)
			}
			for _, want := range c.ran {
				if !strings.Contains(r.stdout, want+"\n") {
					t.Errorf("no %q in the output:\n%s", want, r.stdout)
				}
			}
			for _, not := range c.skipped {
				if strings.Contains(r.stdout, not) {
					t.Errorf("%q ran:\n%s", not, r.stdout)
				}
			}
			if want := "remotectl: master " + url + " lists 1 inactive agents (not running on them): gone.invalid\n"; !strings.HasPrefix(r.stderr, want) {
				t.Errorf("stderr does not start with %q:\n%s", want, r.stderr)
			}
			if !strings.Contains(r.stderr, strconv.Itoa(len(c.ran))+" agents: ") {
				t.Errorf("summary:\n%s", r.stderr)
			}
		})
	}
	r := remotectl(t, nil, append([]string{"run", "--master", url, "--agent-filter", "rack=r9"}, cmd...)...)
	if want := "remotectl: no agents to run on (--agent-filter rack=r9 matched none of 3)\n"; r.code != exitUsage || !strings.HasSuffix(r.stderr, want) {
		t.Errorf("a filter matching none = %d %q, want %d %q", r.code, r.stderr, exitUsage, want)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("the stand-in answered %d GET_AGENTS calls, want 4", n)
	}
}
