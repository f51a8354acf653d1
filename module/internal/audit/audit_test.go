package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func openLog(t *testing.T, path string) *Log {
	t.Helper()
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if err := l.Append(Entry{Principal: "alice", Action: Run, Command: "/bin/echo", Arguments: []string{"echo", string(rune('a' + i))},
			EnvKeys: []string{"TOKEN"}, Decision: "allow", Rule: "run_remote_commands[0]", TaskID: "t", Pid: 100 + i}); err != nil {
			t.Fatal(err)
		}
	}
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte{'\n'})[:bytes.Count(b, []byte{'\n'})]
}

func writeLines(t *testing.T, path string, ls [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func wantBreak(t *testing.T, path string, line int, reason string) {
	t.Helper()
	var ce *ChainError
	_, err := Verify(path)
	if !errors.As(err, &ce) || ce.Line != line || !strings.Contains(ce.Reason, reason) {
		t.Errorf("Verify = %v, want a break at line %d (%s)", err, line, reason)
	}
}

func TestAppendAndVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := openLog(t, path)
	appendN(t, l, 3)
	tail, err := Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if len(ls) != 3 {
		t.Fatalf("%d lines", len(ls))
	}
	prev := Genesis
	for i, line := range ls {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if m["seq"] != float64(i+1) || m["prev"] != prev || m["principal"] != "alice" || m["decision"] != "allow" {
			t.Errorf("line %d: %s", i+1, line)
		}
		if !bytes.HasSuffix(line, []byte(`,"hash":"`+m["hash"].(string)+"\"}\n")) {
			t.Errorf("hash is not the last member: %s", line)
		}
		prev = m["hash"].(string)
	}
	if tail != (Tail{Lines: 3, Hash: prev}) {
		t.Errorf("Verify's tail = %+v, want 3 lines ending at %s", tail, prev)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := openLog(t, path)
	appendN(t, l, 4)
	l.Close()
	orig := lines(t, path)

	// An edited command: that line's own hash no longer matches.
	edited := append([][]byte(nil), orig...)
	edited[1] = bytes.Replace(orig[1], []byte(`"/bin/echo"`), []byte(`"/bin/true"`), 1)
	writeLines(t, path, edited)
	wantBreak(t, path, 2, "hash does not match")

	// An edited line whose hash was recomputed: the next line's prev breaks.
	var c chained
	if err := json.Unmarshal(orig[1], &c); err != nil {
		t.Fatal(err)
	}
	c.Command = "/bin/true"
	forged, _, err := encode(c.Entry, c.Prev)
	if err != nil {
		t.Fatal(err)
	}
	edited[1] = forged
	writeLines(t, path, edited)
	wantBreak(t, path, 3, "a line was removed")

	// A deleted line.
	writeLines(t, path, [][]byte{orig[0], orig[2], orig[3]})
	wantBreak(t, path, 2, "a line was removed")

	// Swapped lines.
	writeLines(t, path, [][]byte{orig[0], orig[2], orig[1], orig[3]})
	wantBreak(t, path, 2, "prev")

	// A torn last line.
	writeLines(t, path, [][]byte{orig[0], orig[1], orig[2][:20]})
	wantBreak(t, path, 3, "torn")

	writeLines(t, path, orig)
	if _, err := Verify(path); err != nil {
		t.Errorf("the original: %v", err)
	}
}

// After a restart the chain continues from the last line.
func TestRestartContinuesTheChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := openLog(t, path)
	appendN(t, l, 2)
	l.Close()
	l = openLog(t, path)
	appendN(t, l, 2)
	l.Close()
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(t, path)); n != 4 {
		t.Errorf("%d lines", n)
	}

	// A crash in the middle of a write leaves a torn line: it is cut, the
	// cut is recorded, and the chain goes on.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":5,"time":"2`)
	f.Close()
	l = openLog(t, path)
	appendN(t, l, 1)
	l.Close()
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if len(ls) != 5 || !bytes.Contains(ls[4], []byte("torn last line of 18 bytes")) {
		t.Errorf("after a torn line: %s", ls[len(ls)-1])
	}

	// A log whose last line is not part of a chain is refused.
	writeLines(t, path, append(ls[:4:4], []byte("{\"seq\":5}\n")))
	if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), "move the file aside") {
		t.Errorf("Open of a broken log: %v", err)
	}
}

// Appends from many goroutines make one unbroken chain.
func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := openLog(t, path)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { appendN(t, l, 10) })
	}
	wg.Wait()
	// Close while the syncer may be mid-fsync: it fsyncs the rest, once.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("a second Close = %v", err)
	}
	if err := l.Append(Entry{Action: Run}); err == nil {
		t.Error("Append after Close succeeded")
	}
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(t, path)); n != 80 {
		t.Errorf("%d lines", n)
	}
}

// Long logs: recover reads backwards over more than one chunk.
func TestRecoverLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := openLog(t, path)
	big := strings.Repeat("x", 100<<10)
	for range 3 {
		if err := l.Append(Entry{Action: Run, Arguments: []string{big}}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l = openLog(t, path)
	appendN(t, l, 1)
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
}

// Every append is logged at WARN as a record complete enough to stand on
// its own beside the file: the same members, lists as JSON, and the
// chain's prev and hash. A logger at WARN (--logging_level=WARNING) keeps
// it.
func TestAppendLogsTheRecord(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	path := filepath.Join(t.TempDir(), FileName)
	l, err := Open(path, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	exit := 3
	entries := []Entry{
		{Principal: "alice", RemoteAddr: "127.0.0.1:4242", Route: "POST /remote/tasks", Action: Run, Command: "/bin/echo",
			Arguments: []string{"echo", "a b", "c"}, Shell: true, EnvKeys: []string{"A", "B"}, User: "nobody", Cwd: "/tmp",
			Decision: "deny", Rule: "run_remote_commands_as_user[1]",
			Checks: []Check{{Action: "run_remote_commands_as_user", Object: "nobody", Allowed: false, Rule: "run_remote_commands_as_user[1]"}}},
		{Principal: "bob", Action: Signal, Signal: "SIGHUP", Decision: "allow", Rule: "kill_remote_tasks[0]", TaskID: "t1", Owner: "alice", Pid: 77},
		{Principal: "alice", Action: End, TaskID: "t1", Pid: 77, Error: "boom",
			Outcome: &Outcome{State: "exited", ExitCode: &exit, DurationMs: 12, StdoutBytes: 5, StderrBytes: 6}},
	}
	for _, e := range entries {
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	logged := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(logged) != len(entries) {
		t.Fatalf("%d records logged, want %d:\n%s", len(logged), len(entries), buf.String())
	}
	file := lines(t, path)
	prev := Genesis
	for i, rec := range logged {
		var got, line map[string]any
		if err := json.Unmarshal([]byte(rec), &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(file[i], &line); err != nil {
			t.Fatal(err)
		}
		if got["level"] != "WARN" || got["msg"] != "audit" {
			t.Errorf("record %d: level %v msg %v, want WARN audit", i+1, got["level"], got["msg"])
		}
		// The record holds every member of the line, under the same name
		// (task_id is "task"; outcome's members are flat, its signal is
		// exit_signal), with the same value (lists as JSON text).
		for k, v := range line {
			switch k {
			case "task_id":
				k = "task"
			case "outcome":
				for ok, ov := range v.(map[string]any) {
					if ok == "signal" {
						ok = "exit_signal"
					}
					if fmt.Sprint(got[ok]) != fmt.Sprint(ov) {
						t.Errorf("record %d: %s = %v, want %v", i+1, ok, got[ok], ov)
					}
				}
				continue
			}
			g := got[k]
			if _, isList := v.([]any); isList {
				s, _ := g.(string)
				if err := json.Unmarshal([]byte(s), &g); err != nil {
					t.Errorf("record %d: %s = %v, not a JSON list", i+1, k, got[k])
				}
			}
			if !reflect.DeepEqual(g, v) {
				t.Errorf("record %d: %s = %v, want %v", i+1, k, got[k], v)
			}
		}
		if got["prev"] != prev {
			t.Errorf("record %d: prev %v, want %s", i+1, got["prev"], prev)
		}
		prev = line["hash"].(string)
	}
	if !strings.Contains(logged[0], `"arguments":"[\"echo\",\"a b\",\"c\"]"`) {
		t.Errorf("arguments not logged as JSON: %s", logged[0])
	}
}

// On a full disk an append fails, and a line the file system could take
// only part of is cut off again: once there is room, later lines continue
// an intact chain. The file system is a small tmpfs, filled (root only).
func TestFullDiskLeavesNoTornLine(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a small tmpfs to fill needs root")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs to fill (%v)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting the test's tmpfs: %v", err)
		}
	})
	path := filepath.Join(dir, FileName)
	l := openLog(t, path)
	appendN(t, l, 3)
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 4096))
	}
	f.Close()
	// Lines fill what is left of the file's last page, until one does
	// not fit: a long one, so that part of it would.
	long := Entry{Principal: "alice", Action: Run, Command: "/bin/echo", Arguments: []string{"echo", strings.Repeat("x", 1500)}}
	failed := 0
	for range 10 {
		if err := l.Append(long); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Append on a full disk: %v, want ENOSPC", err)
			}
			failed++
			break
		}
	}
	if failed == 0 {
		t.Fatal("ten appends of 1.5 KB on a full 256 KiB tmpfs all succeeded")
	}
	if tail, err := Verify(path); err != nil || tail.Lines < 3 {
		t.Errorf("on the full disk: Verify = %+v, %v", tail, err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	if tail, err := Verify(path); err != nil || tail.Lines < 5 {
		t.Errorf("after a failed append and two more: Verify = %+v, %v", tail, err)
	}
}
