package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/execmod/execmod/module/internal/request"
)

func TestDefaultParams(t *testing.T) {
	p, err := ParseParams(nil)
	if err != nil || p.MaxConcurrent != 8*runtime.NumCPU() || p.MaxQueued != 64 || p.MaxTasks != 10000 ||
		p.DefaultTimeout != 30*time.Second || p.KillGrace != 10*time.Second || p.MaxOutput != 4<<20 ||
		strings.Join(p.EnvAllowlist, ",") != "PATH,LANG,TZ" || !p.AllowShell {
		t.Errorf("defaults = %+v, %v; want max_concurrent 8 x %d cores, ...", p, err, runtime.NumCPU())
	}
}

// Records, purges and losses survive a reopen of the journal.
func TestJournalReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, DefaultParams())
	kept := run(t, s, "echo", "kept")
	purged := run(t, s, "false")
	if err := s.Delete(purged.ID); err != nil {
		t.Fatal(err)
	}
	labelled, _, err := s.Submit(request.Command{Path: "true", Args: []string{"true"}, Labels: map[string]string{"k": "v"}, IdempotencyKey: "key"}, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(t.Context(), labelled.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := open(t, dir, DefaultParams())
	if got, err := s2.Get(kept.ID); err != nil || got.State != Exited || got.Result == nil || got.Pid != kept.Pid {
		t.Errorf("kept task after reopen = %+v, %v", got, err)
	}
	if _, err := s2.Get(purged.ID); err == nil {
		t.Errorf("a purged task came back")
	}
	recs, _ := s2.List(Filter{Labels: map[string]string{"k": "v"}, Limit: 10})
	if len(recs) != 1 || recs[0].ID != labelled.ID || recs[0].Principal != "alice" {
		t.Errorf("list by label after reopen = %+v", recs)
	}
	if rec, replayed, err := s2.Submit(request.Command{Path: "true", Args: []string{"true"}, IdempotencyKey: "key"}, "alice", nil); err != nil || !replayed || rec.ID != labelled.ID {
		t.Errorf("idempotency key after reopen: %v %v %v", rec.ID, replayed, err)
	}
	pids, ids := s2.Pids(func(owner string) bool { return owner == "alice" })
	if len(pids) != 1 || ids[0] != labelled.ID {
		t.Errorf("alice's pids = %v %v", pids, ids)
	}
}

// A torn last line (a power loss in a write) is cut off; the rest loads.
func TestJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, DefaultParams())
	kept := run(t, s, "echo", "kept")
	s.Close()
	path := filepath.Join(dir, journalName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"version":1,"id":"` + newID(time.Now()) + `","state":"exi`)
	f.Close()

	s2 := open(t, dir, DefaultParams())
	if got, err := s2.Get(kept.ID); err != nil || got.State != Exited {
		t.Errorf("task before the torn line = %+v, %v", got, err)
	}
	run(t, s2, "true")
	s2.Close()
	b, _ := os.ReadFile(path)
	for i, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if !json.Valid(l) {
			t.Errorf("line %d of the journal is not JSON: %q", i, l)
		}
	}
}

// Compaction keeps each task's latest line only, and every record reads
// the same before and after it, and after a reopen.
func TestJournalCompaction(t *testing.T) {
	dir := t.TempDir()
	p := DefaultParams()
	p.MaxTasks = 3
	s := open(t, dir, p)
	var last []record
	for i := range 10 {
		last = append(last, run(t, s, "echo", strings.Repeat("x", i)))
	}
	before := s.journal.Size()
	s.mu.Lock()
	s.compactLocked()
	s.mu.Unlock()
	after := s.journal.Size()
	if after >= before/2 {
		t.Errorf("journal %d bytes before compaction, %d after", before, after)
	}
	check := func(s *Service, when string, want []record) {
		for _, w := range want {
			got, err := s.Get(w.ID)
			if err != nil || got.ID != w.ID || got.State != w.State || got.Result.DurationMs != w.Result.DurationMs {
				t.Errorf("%s: task %s = %+v, %v", when, w.ID, got, err)
			}
		}
		if recs, _ := s.List(Filter{Limit: 100}); len(recs) != len(want) {
			t.Errorf("%s: %d tasks listed, want %d", when, len(recs), len(want))
		}
	}
	check(s, "after compaction", last[7:])
	newest := run(t, s, "true") // appended after compaction: lands in the new file
	s.Close()
	check(open(t, dir, p), "after reopen", append(last[8:], newest))
}

// Records of earlier releases, a task.json per task directory, are
// imported into the journal once, output spool kept.
func TestImportLegacy(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Add(-time.Minute)
	ended := now.Add(time.Millisecond)
	rec := record{Version: recordVersion, ID: newID(now), State: Exited, Pid: 4242, Command: "ls", Arguments: []string{"ls"},
		CreatedAt: now, StartedAt: &now, EndedAt: &ended, Result: &result{ExitCode: 3}}
	taskDir := filepath.Join(dir, "tasks", rec.ID)
	if err := os.MkdirAll(taskDir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(taskDir, legacyName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(taskDir, "stdout.head"), []byte("spool"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s, err := Open(dir, DefaultParams(), nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(rec.ID)
		if err != nil || got.Result.ExitCode != 3 || got.Pid != 4242 {
			t.Errorf("imported task = %+v, %v", got, err)
		}
		if id, err := s.ByPid(4242); err != nil || id != rec.ID {
			t.Errorf("ByPid = %q, %v", id, err)
		}
		s.Close()
	}
	if _, err := os.Stat(filepath.Join(taskDir, legacyName)); !os.IsNotExist(err) {
		t.Errorf("the imported task.json is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(taskDir, "stdout.head")); err != nil {
		t.Errorf("the imported task's spool is gone: %v", err)
	}
	j, _ := os.ReadFile(filepath.Join(dir, journalName))
	if n := bytes.Count(j, []byte(rec.ID)); n != 1 {
		t.Errorf("the journal holds %d lines of the imported task, want 1", n)
	}
}

// Journal lines are read back from disk: any bytes load without a panic,
// and only version-1 records with valid ids are kept.
func FuzzJournal(f *testing.F) {
	now := time.Unix(1700000000, 0).UTC()
	good, _ := encodeRecord(&record{Version: 1, ID: newID(now), State: Exited, CreatedAt: now})
	f.Add(good)
	f.Add(append(append([]byte{}, good...), `{"version":1,"id":"x"`...))
	f.Add([]byte("\n\n{}\n[1]\n"))
	// A final record with what its streams could not store, and the
	// in-memory fields of a held-back result (never written, but read
	// back they must do no harm).
	f.Add([]byte(`{"version":1,"id":"` + newID(now) + `","state":"exited","unstored":{"stdout":{"unstored":6,"error":"no space left on device"},"x":{"unstored":-1}},` +
		`"persistError":"x","processEndedAt":"2024-01-01T00:00:00Z","createdAt":"2024-01-01T00:00:00Z"}` + "\n"))
	f.Add([]byte(`{"version":1,"id":"` + newID(now) + `","unstored":{"stdout":null},"unstored":[]}` + "\n"))
	f.Add(bytes.Repeat([]byte("y"), 300<<10))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, journalName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, lines, err := openJournal(dir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		for _, l := range lines {
			if l.rec.Version != recordVersion || !validID(l.rec.ID) {
				t.Errorf("kept an invalid record %+v", l.rec)
			}
			b, err := j.read(l.off, l.n)
			if err != nil || b[len(b)-1] != '\n' {
				t.Errorf("line at %d: %q, %v", l.off, b, err)
			}
		}
		if j.Size() > int64(len(data)) {
			t.Errorf("size %d of %d bytes", j.Size(), len(data))
		}
	})
}

// Parameters come from modules.json: any keys and values are a clear
// error or a usable configuration, never a panic.
func FuzzParseParams(f *testing.F) {
	for _, kv := range [][2]string{{"max_concurrent", "3"}, {"max_output_bytes", "4MB"}, {"retention", "1days"},
		{"max_stdin", "9223372036854775807GB"}, {"env_allowlist", " , PATH,"}, {"default_timeout", "-1s"}} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		p, err := ParseParams(map[string]string{k: v})
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error")
			}
			return
		}
		if p.MaxConcurrent < 1 || p.MaxTasks < 1 || p.MaxOutput < 1024 || p.MaxArgs < 1 || p.MaxArgBytes < 1 ||
			p.MaxStdin < 1 || p.MaxStdin > maxStdinLimit || p.DefaultTimeout <= 0 || p.DefaultTimeout > p.MaxTimeout {
			t.Errorf("ParseParams(%q=%q) accepted %+v", k, v, p)
		}
	})
}

// The queue: a replayed key answers at once, a queued task can be killed,
// the queue is bounded, and a freed slot starts the next task.
func TestQueue(t *testing.T) {
	p := DefaultParams()
	p.MaxConcurrent, p.MaxQueued, p.KillGrace = 1, 2, time.Second
	s := open(t, t.TempDir(), p)
	submit := func(key string, args ...string) (record, bool, error) {
		return s.Submit(request.Command{Path: args[0], Args: args, IdempotencyKey: key}, "", nil)
	}
	a, _, err := submit("", "sleep", "300")
	if err != nil || a.State != Running {
		t.Fatalf("first = %+v, %v", a, err)
	}
	b, _, err := submit("k", "echo", "b")
	if err != nil || b.State != Queued {
		t.Fatalf("second = %+v, %v", b, err)
	}
	if again, replayed, err := submit("k", "echo", "other"); err != nil || !replayed || again.ID != b.ID || again.State != Queued {
		t.Errorf("replay of a queued task = %+v %v %v", again, replayed, err)
	}
	c, _, err := submit("", "true")
	if err != nil || c.State != Queued {
		t.Fatalf("third = %+v, %v", c, err)
	}
	if _, _, err := submit("", "true"); !errors.Is(err, ErrBusy) {
		t.Errorf("over the queue: %v, want ErrBusy", err)
	}
	if err := s.Kill(c.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Wait(t.Context(), c.ID, time.Minute); got.State != Killed || got.Pid != 0 || !strings.Contains(got.Error, "queued") {
		t.Errorf("killed while queued = %+v", got)
	}
	if err := s.Kill(a.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Wait(t.Context(), a.ID, time.Minute); got.State != Killed {
		t.Errorf("killed = %+v", got)
	}
	if got, _ := s.Wait(t.Context(), b.ID, time.Minute); got.State != Exited || got.Pid == 0 {
		t.Errorf("queued task after the slot freed = %+v", got)
	}
}

// Many concurrent submissions: every task ends, ids sort by submission
// and the counts add up.
func TestConcurrentSubmit(t *testing.T) {
	p := DefaultParams()
	p.MaxConcurrent, p.MaxQueued = 4, 100
	s := open(t, t.TempDir(), p)
	const n = 40
	ids := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			rec, _, err := s.Submit(request.Command{Path: "true", Args: []string{"true"}}, "", nil)
			if err == nil {
				rec, err = s.Wait(t.Context(), rec.ID, time.Minute)
			}
			if err == nil && rec.State != Exited {
				err = errors.New("task " + rec.ID + " ended " + string(rec.State))
			}
			ids <- rec.ID
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
		<-ids
	}
	recs, _ := s.List(Filter{Limit: 1000})
	if len(recs) != n {
		t.Errorf("%d tasks listed, want %d", len(recs), n)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i-1].ID >= recs[i].ID {
			t.Errorf("ids out of order: %s before %s", recs[i-1].ID, recs[i].ID)
		}
	}
	if c := s.Counts(); c["tasks_started"] != n || c["tasks_finished"] != n || c["tasks_running"] != 0 || c["tasks_queued"] != 0 {
		t.Errorf("counts = %v", c)
	}
}
