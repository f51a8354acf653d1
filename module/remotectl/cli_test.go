package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/execmod/execmod/module/client"
)

func TestUsageGolden(t *testing.T) {
	r := remotectl(t, nil, "help")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("help = %d %q", r.code, r.stderr)
	}
	golden(t, "usage", r.stdout)
	if r := remotectl(t, nil, "--help"); r.code != 0 || r.stdout != usageText {
		t.Errorf("--help = %d", r.code)
	}
}

func TestUsageErrorsGolden(t *testing.T) {
	var b strings.Builder
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"run"},
		{"run", "--env", "NOEQUALS", "--", "true"},
		{"run", "--shell", "--", "echo", "hi"},
		{"run", "--agents", "a:1,b:2", "--max-errors", "x", "--", "true"},
		{"run", "--agents", "a:1,b:2", "--max-concurrency", "0", "--", "true"},
		{"run", "--agents", "a:1", "--master", "http://m:5050", "--", "true"},
		{"run", "--agents", "a:1", "--agent-filter", "zzz.*", "--", "true"},
		{"run", "--agents", "a:1", "--agent-filter", "rack=r1", "--", "true"},
		{"run", "--agents", "a:1", "--agent-filter", "host(", "--", "true"},
		{"audit", "verify"},
		{"ps", "--agents", "a:1"},
		{"get"},
		{"kill", "a", "b"},
		{"policy"},
		{"--secret", "s", "status"},
	} {
		r := remotectl(t, nil, args...)
		fmt.Fprintf(&b, "$ remotectl %s\nexit %d\n%s\n", strings.Join(args, " "), r.code, r.stderr)
	}
	golden(t, "usage-errors", b.String())
}

func TestErrorMessagesGolden(t *testing.T) {
	refused := fmt.Errorf("%w: %w", client.ErrUnreachable, &net.OpError{Op: "dial", Net: "tcp",
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}})
	noHost := fmt.Errorf("%w: %w", client.ErrUnreachable, &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "agent-7.invalid", IsNotFound: true}})
	cases := []struct {
		name, task string
		err        error
	}{
		{"unreachable", "", refused},
		{"no such host", "", noHost},
		{"401", "", &client.Error{StatusCode: 401, Message: "authentication required for realm mesos-agent-readwrite: bad credentials"}},
		{"403 rule", "", &client.Error{StatusCode: 403, Message: `principal "bob" may not run "/bin/ls"`, Rule: "run_remote_commands[1]"}},
		{"404 route", "", &client.Error{StatusCode: 404, Message: "404 page not found"}},
		{"404 task", "01abc", &client.Error{StatusCode: 404, Message: "no such task"}},
		{"503", "", &client.Error{StatusCode: 503, Message: `module "remote" is restarting after a crash; retry in a second`, RetryAfter: time.Second}},
		{"503 failed", "", &client.Error{StatusCode: 503, Message: `module "remote" failed: 5 crashes within a minute`}},
		{"429", "", &client.Error{StatusCode: 429, Message: "too many tasks"}},
		{"400", "", &client.Error{StatusCode: 400, Message: `command "nope" not found in PATH`}},
		{"409", "01abc", &client.Error{StatusCode: 409, Message: "the task has finished"}},
		{"other", "", errors.New("something odd")},
	}
	var b strings.Builder
	for _, c := range cases {
		d := describe("127.0.0.1:5051", c.task, c.err)
		fmt.Fprintf(&b, "%-12s exit %-3d %s\n", c.name, d.code, d.msg)
	}
	golden(t, "errors", b.String())
}

// A fixed clock and fixed tasks make the table deterministic.
func TestPSTableGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(-d); return &v }
	tasks := []client.Task{
		{ID: "01m896vy8vb0k2eybnk62cabmv", State: "exited", Pid: 13280, Command: "/bin/ls", Arguments: []string{"ls", "-la", "/tmp"},
			CreatedAt: *at(45 * time.Second), Result: &client.Result{ExitCode: 0}},
		{ID: "01m896vyrkgng4pa79wexwk7me", State: "timed_out", Pid: 13332, Command: "/bin/sleep", Arguments: []string{"sleep", "30"},
			CreatedAt: *at(12 * time.Minute), Result: &client.Result{ExitCode: 15, Signaled: true, Signal: "SIGTERM", SignalNumber: 15, TimedOut: true}},
		{ID: "01m896w1swmmhrh4n4yrfr4g79", State: "running", Pid: 14001, Command: "/bin/sh", Shell: true,
			Arguments: []string{"/bin/sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done; echo and a very long tail that gets cut"},
			CreatedAt: *at(5 * time.Hour)},
		{ID: "01m896w2aaaaaaaaaaaaaaaaaa", State: "queued", Command: "/usr/bin/true", Arguments: []string{"true"}, CreatedAt: *at(72 * time.Hour)},
		{ID: "01m896w3bbbbbbbbbbbbbbbbbb", State: "exited", Pid: 15000, Command: "/bin/false", Arguments: []string{"false"},
			CreatedAt: *at(0), Result: &client.Result{ExitCode: 1}},
	}
	var b strings.Builder
	writeTable(&b, tasks, now)
	golden(t, "ps", b.String())
}

func TestSummaryGolden(t *testing.T) {
	code := func(n int) *int { return &n }
	results := []outcome{
		{Agent: "10.0.0.1:5051", State: "exited", ExitCode: code(0), DurationMs: 1234},
		{Agent: "10.0.0.2:5051", State: "exited", ExitCode: code(3), DurationMs: 20},
		{Agent: "10.0.0.3:5051", State: "unreachable", ExitCode: code(exitUnreachable), DurationMs: 1,
			Error: "agent 10.0.0.3:5051 unreachable: connection refused"},
		{Agent: "10.0.0.4:5051", State: "timed_out", ExitCode: code(exitTimeout), DurationMs: 30000, Error: "task 01x timed out"},
		{Agent: "agent-5.example:5051", State: "skipped", Error: "not started: 2 failures exceed --max-errors 1"},
	}
	var b strings.Builder
	writeSummary(&b, results)
	golden(t, "summary", b.String())
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		t    client.Task
		want int
	}{
		{client.Task{State: "exited", Result: &client.Result{ExitCode: 3}}, 3},
		{client.Task{State: "signaled", Result: &client.Result{ExitCode: 9, Signaled: true, Signal: "SIGKILL", SignalNumber: 9}}, 137},
		{client.Task{State: "killed", Result: &client.Result{ExitCode: 15, Signaled: true, Signal: "SIGTERM"}}, 143},
		{client.Task{State: "timed_out", Result: &client.Result{ExitCode: 15, Signaled: true, TimedOut: true}}, 124},
		{client.Task{State: "failed_to_start"}, 127},
		{client.Task{State: "lost"}, 70},
	} {
		if got, _ := exitCode(c.t); got != c.want {
			t.Errorf("exitCode(%s) = %d, want %d", c.t.State, got, c.want)
		}
	}
}

func TestBudget(t *testing.T) {
	for _, c := range []struct {
		s          string
		total, min int
		up         bool
		want       int
		bad        bool
	}{
		{"0", 4, 0, false, 0, false}, {"3", 4, 0, false, 3, false}, {"25%", 4, 0, false, 1, false},
		{"30%", 4, 0, false, 1, false}, {"49%", 4, 0, false, 1, false}, {"50%", 4, 0, false, 2, false},
		{"10%", 3, 1, true, 1, false}, {"50%", 3, 1, true, 2, false}, {"100%", 3, 1, true, 3, false},
		{"0", 3, 1, true, 0, true}, {"101%", 3, 0, false, 0, true}, {"-1", 3, 0, false, 0, true}, {"x", 3, 0, false, 0, true},
	} {
		got, err := budget("f", c.s, c.total, c.min, c.up)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("budget(%q, %d) = %d, %v; want %d (error %v)", c.s, c.total, got, err, c.want, c.bad)
		}
	}
}

func TestAgentsFileAndCredentials(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agents")
	os.WriteFile(file, []byte("# the fleet\na:5051\n\n  b:5051 # rack 2\nc:5051\n"), 0o644)
	got, err := parseAgents("@" + file)
	if err != nil || strings.Join(got, ",") != "a:5051,b:5051,c:5051" {
		t.Errorf("parseAgents(@file) = %q, %v", got, err)
	}
	creds := filepath.Join(dir, "creds.json")
	os.WriteFile(creds, []byte(`{"credentials":[{"principal":"alice","secret":"a"},{"principal":"bob","secret":"b"}]}`), 0o600)
	e := &env{getenv: func(string) string { return "" }}
	if p, s, err := e.auth(&options{credentials: creds}); p != "alice" || s != "a" || err != nil {
		t.Errorf("first credential = %q %q %v", p, s, err)
	}
	if p, s, err := e.auth(&options{credentials: creds, principal: "bob"}); p != "bob" || s != "b" || err != nil {
		t.Errorf("named credential = %q %q %v", p, s, err)
	}
	if _, _, err := e.auth(&options{credentials: creds, principal: "carol"}); err == nil {
		t.Error("an unknown principal was accepted")
	}
	e.getenv = func(k string) string {
		return map[string]string{"REMOTECTL_PRINCIPAL": "env", "REMOTECTL_SECRET": "s"}[k]
	}
	if p, s, _ := e.auth(&options{}); p != "env" || s != "s" {
		t.Errorf("from the environment = %q %q", p, s)
	}
}

// Concurrent writers of long lines, and a final partial line: every line
// comes out whole with its prefix.
func TestLineWriterNeverInterleaves(t *testing.T) {
	out := newWatchWriter()
	con := &console{}
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c", "d"} {
		wg.Go(func() {
			lw := &lineWriter{con: con, w: out, prefix: name + ": "}
			line := strings.Repeat(name, 999) + "\n"
			for range 200 {
				// Odd-sized writes that split lines anywhere.
				s := line
				for len(s) > 0 {
					n := min(len(s), 37)
					lw.Write([]byte(s[:n]))
					s = s[n:]
				}
			}
			lw.Write([]byte("tail"))
			lw.flush()
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4*201 {
		t.Fatalf("%d lines, want %d", len(lines), 4*201)
	}
	for _, l := range lines {
		name, rest, _ := strings.Cut(l, ": ")
		if rest != strings.Repeat(name, 999) && rest != "tail" {
			t.Fatalf("interleaved line: %.80q", l)
		}
	}
}

func TestParseKV(t *testing.T) {
	got := parseKV(`action=run arguments="[\"echo\",\" seq=99 hash=ff\"]" empty="" hash=ab12 seq=7 route="POST /remote/tasks"`)
	want := map[string]string{"action": "run", "arguments": `["echo"," seq=99 hash=ff"]`, "empty": "", "hash": "ab12", "seq": "7", "route": "POST /remote/tasks"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseKV = %v\nwant %v", got, want)
	}
}
