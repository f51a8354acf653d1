package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/internal/audit"
	"github.com/execmod/execmod/module/internal/request"
)

// logTap is a slog handler that hands every message to a channel, so
// that a test can wait for a log line instead of sleeping.
type logTap chan string

func (l logTap) Enabled(context.Context, slog.Level) bool { return true }
func (l logTap) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l logTap) WithGroup(string) slog.Handler            { return l }
func (l logTap) Handle(_ context.Context, r slog.Record) error {
	select {
	case l <- r.Message:
	default: // nobody is reading that far; a test waits for early lines
	}
	return nil
}

// wait reads messages until one contains want.
func (l logTap) wait(t *testing.T, want string) {
	t.Helper()
	for {
		select {
		case m := <-l:
			if strings.Contains(m, want) {
				return
			}
		case <-t.Context().Done():
			t.Fatalf("no log line with %q", want)
		}
	}
}

// openTapped opens a service in dir whose log goes to the returned tap.
func openTapped(t *testing.T, dir string, p Params) (*Service, logTap) {
	t.Helper()
	tap := make(logTap, 1000)
	s, err := Open(dir, p, []string{"PATH=/usr/bin:/bin"}, slog.New(tap))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, tap
}

// gated submits a task that waits for the gate, then prints "hello". Its
// last argument pads its record beyond a page, so that on a full tmpfs
// writing that record needs a page the file system does not have.
func gated(t *testing.T, s *Service, fifo string) record {
	t.Helper()
	args := []string{"sh", "-c", `cat "$1"; echo hello`, "sh", fifo, strings.Repeat("p", 5000)}
	rec, _, err := s.Submit(request.Command{Path: "sh", Args: args}, "", nil)
	if err != nil || rec.State != Running {
		t.Fatalf("the gated task: %+v, %v", rec, err)
	}
	return rec
}

// failJournal makes every journal write fail with ENOSPC, as a full disk
// does, by putting /dev/full in the journal's place, until the returned
// func puts the journal back.
func failJournal(t *testing.T, s *Service) func() {
	t.Helper()
	full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.journal.mu.Lock()
	real := s.journal.f
	s.journal.f = full
	s.journal.mu.Unlock()
	s.mu.Unlock()
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		s.mu.Lock()
		s.journal.mu.Lock()
		if s.journal.f == full {
			s.journal.f = real
		} else {
			real.Close() // the journal was closed meanwhile (with /dev/full)
		}
		s.journal.mu.Unlock()
		s.mu.Unlock()
		full.Close()
	}
	t.Cleanup(restore)
	return restore
}

// serve answers one request through the service's routes.
func serve(s *Service, method, target, body string) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	for _, r := range s.Routes(Info{}) {
		mux.Handle(r.Pattern, r.Handler)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, jsonRequest(method, target, body))
	return w
}

func decodeJSON(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%d %q: %v", w.Code, w.Body, err)
	}
	return m
}

// A result the journal cannot take is not reported: the task stays
// running, saying why, and every waiter keeps waiting, until the write
// succeeds; then it is reported, and reads the same after a reopen.
func TestResultHeldBackUntilWritten(t *testing.T) {
	p := DefaultParams()
	p.JournalReserve = 0
	dir := t.TempDir()
	s, tap := openTapped(t, dir, p)
	fifo, release := hosttest.Gate(t, "")
	rec := gated(t, s, fifo)
	restore := failJournal(t, s)
	release()
	tap.wait(t, "could not write a task's result to the journal")

	got, err := s.Get(rec.ID)
	if err != nil || got.State != Running || got.ProcessEndedAt == nil || got.Result != nil ||
		!strings.Contains(got.PersistError, "no space left on device") {
		t.Fatalf("a held-back task = %+v, %v; want running, with processEndedAt and persistError", got, err)
	}
	if _, done := s.channels(s.tasks[rec.ID]); isClosed(done) {
		t.Error("waiters were woken for a result that is not in the journal")
	}
	w := serve(s, "GET", "/tasks/"+rec.ID, "")
	if m := decodeJSON(t, w); w.Code != 200 || m["state"] != "running" || m["persistError"] == nil || m["processEndedAt"] == nil {
		t.Errorf("GET /tasks/{id} while held back = %d %v", w.Code, m)
	}
	w = serve(s, "POST", "/task", `{"pid":`+strconv.Itoa(rec.Pid)+`}`)
	if m := decodeJSON(t, w); w.Code != 200 || m["result"] != "pending" || m["persistError"] == nil {
		t.Errorf("POST /task while held back = %d %v", w.Code, m)
	}
	if err := s.Kill(rec.ID); !errors.Is(err, ErrFinished) {
		t.Errorf("Kill of a held-back task = %v, want ErrFinished", err)
	}
	if err := s.Delete(rec.ID); !errors.Is(err, ErrRunning) {
		t.Errorf("Delete of a held-back task = %v, want ErrRunning", err)
	}
	if c := s.Counts(); c["tasks_held_back"] != 1 || c["tasks_running"] != 0 || c["tasks_finished"] != 0 {
		t.Errorf("counts while held back = %v", c)
	}

	restore()
	s.kickRetry()
	final, err := s.Wait(t.Context(), rec.ID, time.Minute)
	if err != nil || final.State != Exited || final.Result == nil || final.PersistError != "" || final.ProcessEndedAt != nil {
		t.Fatalf("after the journal recovered: %+v, %v", final, err)
	}
	tap.wait(t, "the task journal can be written again")
	w = serve(s, "GET", "/tasks/"+rec.ID, "")
	before := w.Body.String()
	if m := decodeJSON(t, w); m["stdout"].(map[string]any)["text"] != "hello\n" {
		t.Errorf("the late result = %v", m)
	}
	s.Close()
	s2 := open(t, dir, p)
	if after := serve(s2, "GET", "/tasks/"+rec.ID, "").Body.String(); after != before {
		t.Errorf("after a reopen:\n%s\nbefore:\n%s", after, before)
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// A result still held back when the module stops is never reported: the
// journal says the task was running, so it comes back lost, with its
// output.
func TestHeldBackResultLostAtStop(t *testing.T) {
	p := DefaultParams()
	p.JournalReserve = 0
	dir := t.TempDir()
	s, tap := openTapped(t, dir, p)
	fifo, release := hosttest.Gate(t, "")
	rec := gated(t, s, fifo)
	failJournal(t, s)
	release()
	tap.wait(t, "could not write a task's result to the journal")
	s.Close() // its last try fails too
	tap.wait(t, "the module stopped with task results it could not write")

	s2 := open(t, dir, p)
	got, err := s2.Get(rec.ID)
	if err != nil || got.State != Lost || got.Result != nil || !strings.Contains(got.Error, "stopped while the task was running") {
		t.Fatalf("after a restart = %+v, %v; want lost", got, err)
	}
	if m := decodeJSON(t, serve(s2, "GET", "/tasks/"+rec.ID, "")); m["stdout"].(map[string]any)["text"] != "hello\n" {
		t.Errorf("the lost task's partial output = %v", m["stdout"])
	}
}

// While the journal cannot be written, a new task is refused with a 503
// (and Retry-After), whether it would start or queue, and nothing of it
// is left: one that started is killed, since nothing on disk would say it
// ever ran.
func TestJournalFailureRefusesTasks(t *testing.T) {
	p := DefaultParams()
	p.JournalReserve, p.MaxConcurrent = 0, 1
	s, _ := openTapped(t, t.TempDir(), p)
	restore := failJournal(t, s)
	_, _, err := s.Submit(request.Command{Path: "sleep", Args: []string{"sleep", "300"}}, "", nil)
	if !errors.Is(err, ErrJournal) || !strings.Contains(err.Error(), "killed") || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("a start with the journal failing: %v", err)
	}
	w := serve(s, "POST", "/tasks", `{"command":"true"}`)
	if m := decodeJSON(t, w); w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(m["error"].(string), "no space left on device") {
		t.Errorf("POST /tasks with the journal failing = %d %v", w.Code, m)
	}
	if recs, _ := s.List(Filter{Limit: 10}); len(recs) != 0 {
		t.Errorf("refused tasks are listed: %+v", recs)
	}
	restore()
	fifo, release := hosttest.Gate(t, "")
	busy := gated(t, s, fifo) // takes the only slot
	failJournal(t, s)
	if _, _, err := s.Submit(request.Command{Path: "true", Args: []string{"true"}}, "", nil); !errors.Is(err, ErrJournal) {
		t.Errorf("a queued submit with the journal failing: %v", err)
	}
	if c := s.Counts(); c["tasks_queued"] != 0 || c["tasks_running"] != 1 {
		t.Errorf("counts = %v", c)
	}
	_ = busy
	release()
}

// The journal's reserve takes results on a really full disk: the lines of
// queued and running tasks may use half of it, those that end tasks all
// of it; the reserve is invisible in the file's length and in what is
// read back. The disk is a small tmpfs, filled (root only).
func TestJournalReserveOnFullDisk(t *testing.T) {
	root := hosttest.Tmpfs(t, 1<<20)
	const reserve = 64 << 10
	j, _, err := openJournalReserve(root, slog.New(slog.DiscardHandler), reserve)
	if err != nil {
		t.Fatal(err)
	}
	hosttest.FillDisk(t, root)
	now := time.Now().UTC()
	line := func(st State) []byte {
		b, err := encodeRecord(&record{Version: recordVersion, ID: newID(now), State: st, Command: strings.Repeat("c", 400), CreatedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var written int64
	var lines int
	appendUntil := func(st State) error {
		for range 1000 {
			b := line(st)
			if _, err := j.append(b, st.Final()); err != nil {
				return err
			}
			written += int64(len(b))
			lines++
		}
		t.Fatalf("1000 lines of %s on a full disk", st)
		return nil
	}
	err = appendUntil(Running)
	if !errors.Is(err, ErrJournal) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "kept for the results") ||
		written < reserve/2-600 || written > reserve/2 {
		t.Errorf("running lines on a full disk: %d bytes, then %v; want half the %d reserve, then a refusal", written, err, reserve)
	}
	err = appendUntil(Exited)
	if !errors.Is(err, ErrJournal) || !errors.Is(err, syscall.ENOSPC) || written < reserve-600 {
		t.Errorf("final lines on a full disk: %d bytes in all, then %v; want the whole %d reserve, then ENOSPC", written, err, reserve)
	}
	if fi, err := os.Stat(filepath.Join(root, journalName)); err != nil || fi.Size() != written {
		t.Errorf("the journal's length is %v (%v), want the %d bytes written", fi.Size(), err, written)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	j, got, err := openJournalReserve(root, slog.New(slog.DiscardHandler), reserve)
	if err != nil || len(got) != lines {
		t.Fatalf("reopened: %d lines, %v; want %d", len(got), err, lines)
	}
	j.close()
}

// On a full disk a task's output is not stored, but counted, and the
// task's result says so; the journal's reserve takes the result (a record
// longer than a page), which reads the same after a reopen.
func TestStoreErrorInResult(t *testing.T) {
	root := hosttest.Tmpfs(t, 4<<20)
	p := DefaultParams()
	s, _ := openTapped(t, root, p)
	fifo, release := hosttest.Gate(t, "")
	rec := gated(t, s, fifo)
	free := hosttest.FillDisk(t, root)
	release()
	final, err := s.Wait(t.Context(), rec.ID, time.Minute)
	if err != nil || final.State != Exited || final.Result.ExitCode != 0 {
		t.Fatalf("the task on a full disk: %+v, %v", final, err)
	}
	w := serve(s, "GET", "/tasks/"+rec.ID, "")
	view := w.Body.String()
	var v struct {
		Stdout streamView `json:"stdout"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	want := streamView{TotalBytes: 6, StoredBytes: 0, Truncated: true, DroppedRange: &[2]int64{0, 6}, DroppedRanges: [][2]int64{{0, 6}},
		StoreError: "no space left on device", Encoding: "utf-8", TextComplete: true}
	if b1, b2 := toJSON(v.Stdout), toJSON(want); b1 != b2 {
		t.Errorf("stdout on a full disk = %s, want %s", b1, b2)
	}
	w = serve(s, "POST", "/task", `{"pid":`+strconv.Itoa(rec.Pid)+`}`)
	if m := decodeJSON(t, w); m["stdoutBytes"] != 6.0 || m["stdoutTruncated"] != true || m["stdoutStoreError"] != "no space left on device" {
		t.Errorf("POST /task = %v", m)
	}
	raw := serve(s, "GET", "/tasks/"+rec.ID+"/stdout", "")
	if raw.Body.Len() != 0 || raw.Header().Get("X-Total-Bytes") != "6" || raw.Header().Get("X-Store-Error") != "no space left on device" ||
		raw.Header().Get("X-Dropped-Ranges") != "0-6" {
		t.Errorf("raw stdout = %q %v", raw.Body, raw.Header())
	}
	free()
	s.Close()
	s2 := open(t, root, p)
	if after := serve(s2, "GET", "/tasks/"+rec.ID, "").Body.String(); after != view {
		t.Errorf("after a reopen:\n%s\nbefore:\n%s", after, view)
	}
}

// A task whose run line cannot be written to the audit log is killed and
// its request refused; its end line, which cannot be written either,
// waits, and is written once the log can take it, saying both.
func TestAuditFailureKillsAndEndLineWaits(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/full", filepath.Join(dir, audit.FileName)); err != nil {
		t.Fatal(err)
	}
	p := DefaultParams()
	p.KillGrace = time.Second
	s, _ := openTapped(t, dir, p)
	w := serve(s, "POST", "/tasks", `{"command":"sleep","arguments":["300"]}`)
	if m := decodeJSON(t, w); w.Code != 503 || !strings.Contains(m["error"].(string), "audit log cannot be written, so the task was killed") {
		t.Errorf("POST /tasks with the audit log failing = %d %v", w.Code, m)
	}
	recs, _ := s.List(Filter{Limit: 10})
	if len(recs) != 1 {
		t.Fatalf("tasks = %+v", recs)
	}
	if got, err := s.Wait(t.Context(), recs[0].ID, time.Minute); err != nil || got.State != Killed {
		t.Fatalf("the unaudited task = %+v, %v", got, err)
	}
	// Its end line failed too and waits; give the service a log that works.
	good := filepath.Join(t.TempDir(), audit.FileName)
	l, err := audit.Open(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.auditMu.Lock()
	backlog := len(s.auditBacklog)
	s.audit = l
	s.auditMu.Unlock()
	if backlog != 1 {
		t.Fatalf("%d end lines wait, want 1", backlog)
	}
	s.retryAudit()
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var end audit.Entry
	if err := json.Unmarshal(bytes.TrimSpace(b), &end); err != nil || end.Action != audit.End || end.TaskID != recs[0].ID ||
		!strings.Contains(end.Error, "its run line could not be written") || !strings.Contains(end.Error, "written late") ||
		end.Outcome == nil || end.Outcome.State != "killed" {
		t.Errorf("the end line written late = %s (%v)", b, err)
	}
	if _, err := audit.Verify(good); err != nil {
		t.Error(err)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
