package remote

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/execmod/execmod/module/internal/request"
)

func TestParseParams(t *testing.T) {
	p, err := ParseParams(map[string]string{
		"default_timeout": "1m", "max_timeout": "2hrs", "kill_grace_period": "0s", "max_output_bytes": "64KB",
		"max_concurrent": "3", "max_queued": "0", "retention": "1days", "max_tasks": "5", "allow_shell": "false",
		"env_allowlist": "PATH, HOME",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultTimeout != time.Minute || p.MaxTimeout != 2*time.Hour || p.KillGrace != 0 || p.MaxOutput != 64<<10 ||
		p.MaxConcurrent != 3 || p.MaxQueued != 0 || p.Retention != 24*time.Hour || p.MaxTasks != 5 || p.AllowShell ||
		strings.Join(p.EnvAllowlist, ",") != "PATH,HOME" {
		t.Errorf("ParseParams = %+v", p)
	}
	_, err = ParseParams(map[string]string{"default_timeout": "soon", "max_concurrent": "0", "max_output_bytes": "1",
		"allow_shell": "maybe", "timeout": "1s", "max_timeout": "1s"})
	for _, want := range []string{`default_timeout: "soon"`, `max_concurrent: "0"`, `max_output_bytes: "1"`,
		`allow_shell: "maybe"`, `unknown parameter "timeout"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := ParseParams(map[string]string{"default_timeout": "2h", "max_timeout": "1h"}); err == nil {
		t.Error("default_timeout above max_timeout accepted")
	}
	// The request limits the decoders' messages name are parameters.
	p, err = ParseParams(map[string]string{"max_args": "3", "max_arg_bytes": "2KB", "max_stdin": "100"})
	if lim := p.limits(); err != nil || lim.MaxArgs != 3 || lim.MaxArgBytes != 2048 || lim.MaxStdin != 100 {
		t.Errorf("limits = %+v, %v", lim, err)
	}
	_, err = request.Task([]byte(`{"command":"a","arguments":["b","c","d"]}`), p.limits())
	if err == nil || !strings.Contains(err.Error(), "above the maximum of 3 (parameter max_args)") {
		t.Errorf("4 args under max_args=3: %v", err)
	}
	_, err = ParseParams(map[string]string{"max_args": "0", "max_arg_bytes": "9MB", "max_stdin": "7MB"})
	for _, want := range []string{`max_args: "0"`, `max_arg_bytes: "9MB"`, `max_stdin: "7MB"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func open(t *testing.T, dir string, p Params) *Service {
	t.Helper()
	s, err := Open(dir, p, []string{"PATH=/usr/bin:/bin"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func run(t *testing.T, s *Service, args ...string) record {
	t.Helper()
	rec, _, err := s.Submit(request.Command{Path: args[0], Args: args}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err = s.Wait(t.Context(), rec.ID, time.Minute)
	if err != nil || !rec.State.Final() {
		t.Fatalf("task %s: %+v %v", rec.ID, rec, err)
	}
	return rec
}

// Retention by age, without waiting for it: evict is given the time.
func TestEvictByAge(t *testing.T) {
	p := DefaultParams()
	p.Retention = time.Hour
	s := open(t, t.TempDir(), p)
	a := run(t, s, "true")
	b := run(t, s, "false")
	s.evict(time.Now().Add(30 * time.Minute))
	if _, err := s.Get(a.ID); err != nil {
		t.Errorf("a task younger than retention was evicted: %v", err)
	}
	s.evict(time.Now().Add(2 * time.Hour))
	for _, r := range []record{a, b} {
		if _, err := s.Get(r.ID); err == nil {
			t.Errorf("task %s older than retention kept", r.ID)
		}
		if _, err := os.Stat(s.taskDir(r.ID)); !os.IsNotExist(err) {
			t.Errorf("files of evicted task %s kept: %v", r.ID, err)
		}
	}
}

// A record left running by a crash is reported lost on the next Open.
func TestRecoverLost(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, DefaultParams())
	done := run(t, s, "echo", "kept")
	now := time.Now().UTC()
	stale := &record{Version: recordVersion, ID: newID(now), State: Running, Pid: 1 << 22, Pgid: 1 << 22,
		Command: "sleep", Arguments: []string{"sleep", "300"}, CreatedAt: now, StartedAt: &now}
	s.mu.Lock()
	err := s.putLocked(&entry{id: stale.ID}, stale)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := open(t, dir, DefaultParams())
	got, err := s2.Get(stale.ID)
	if err != nil || got.State != Lost || got.EndedAt == nil || !strings.Contains(got.Error, "stopped while the task was running") {
		t.Errorf("stale running task after Open = %+v, %v", got, err)
	}
	again, err := s2.Get(done.ID)
	if err != nil || again.State != Exited || again.Result.ExitCode != 0 {
		t.Errorf("finished task after Open = %+v, %v", again, err)
	}
}

func TestNewID(t *testing.T) {
	a, b := newID(time.Unix(1, 0)), newID(time.Unix(2, 0))
	if !validID(a) || !validID(b) || a >= b || validID("../../etc") || validID(strings.ToUpper(a)) {
		t.Errorf("ids %q %q", a, b)
	}
}

func TestListPages(t *testing.T) {
	s := open(t, t.TempDir(), DefaultParams())
	var want []string
	for range 3 {
		want = append(want, run(t, s, "true").ID)
	}
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		recs, next := s.List(Filter{After: cursor, Limit: 2, State: Exited})
		for _, r := range recs {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		if page > 3 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("pages = %v, want %v", got, want)
	}
	if recs, _ := s.List(Filter{State: Running, Limit: 10}); len(recs) != 0 {
		t.Errorf("running filter = %v", recs)
	}
}
