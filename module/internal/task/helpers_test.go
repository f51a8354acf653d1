package task

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTimeout bounds every wait in the tests; reaching it is a failure.
const testTimeout = 20 * time.Second

// newSpec is a Spec for args with a PATH, its own spool directory, a short
// grace and drain.
func newSpec(t *testing.T, args ...string) Spec {
	t.Helper()
	return Spec{
		Path:      args[0],
		Args:      args,
		Env:       []string{"PATH=/usr/bin:/bin"},
		OutputDir: t.TempDir(),
		Grace:     2 * time.Second,
		Drain:     2 * time.Second,
	}
}

// sh is a Spec running script with sh -c.
func sh(t *testing.T, script string) Spec {
	t.Helper()
	return newSpec(t, "sh", "-c", script)
}

// start starts s and makes sure, even if the test fails, that the task is
// ended and reaped.
func start(t *testing.T, s Spec) *Task {
	t.Helper()
	tk, err := Start(s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		tk.Kill()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if _, err := tk.Wait(ctx); err != nil {
			t.Errorf("cleanup: task %d did not end: %v", tk.Pid(), err)
			KillGroup(tk.Pgid(), tk.StartTicks())
		}
	})
	return tk
}

// wait waits for tk with the test timeout.
func wait(t *testing.T, tk *Task) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r, err := tk.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return r
}

// run starts s and waits for it.
func run(t *testing.T, s Spec) (*Task, Result) {
	t.Helper()
	tk := start(t, s)
	return tk, wait(t, tk)
}

// readAll reads every kept byte of o from offset 0 with the follow loop
// of the Output documentation, skipping dropped ranges.
func readAll(t *testing.T, o *Output) []byte {
	t.Helper()
	var out bytes.Buffer
	buf := make([]byte, 7000) // odd size: reads straddle file boundaries
	var off int64
	timeout := time.After(testTimeout)
	for {
		changed, complete := o.Changed(), o.Complete()
		n, err := o.ReadAt(buf, off)
		out.Write(buf[:n])
		off += int64(n)
		switch {
		case errors.Is(err, ErrDropped):
			off = o.NextKept(off)
		case err == io.EOF && complete:
			return out.Bytes()
		case err == io.EOF:
			select {
			case <-changed:
			case <-timeout:
				t.Fatalf("output did not complete; have %q", out.Bytes())
			}
		case err != nil:
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
	}
}

// waitOutput follows o until it contains want and returns what it read.
func waitOutput(t *testing.T, o *Output, want string) string {
	t.Helper()
	return waitFor(t, o, want, func(s string) bool { return strings.Contains(s, want) })
}

// waitFor follows o until ok is true of what it read (from offset 0),
// which it returns; want describes ok in failure messages.
func waitFor(t *testing.T, o *Output, want string, ok func(string) bool) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	timeout := time.After(testTimeout)
	for {
		changed := o.Changed()
		n, err := o.ReadAt(buf, int64(len(out)))
		out = append(out, buf[:n]...)
		if ok(string(out)) {
			return string(out)
		}
		if err != io.EOF {
			if err != nil {
				t.Fatalf("ReadAt: %v", err)
			}
			continue
		}
		if o.Complete() && len(out) == int(o.Info().Total) {
			t.Fatalf("output ended without %q: %q", want, out)
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no %q in output %q", want, out)
		}
	}
}

// members returns the live (not zombie) processes of process group pgid.
func members(t *testing.T, pgid int) []procStat {
	t.Helper()
	return scan(t, func(st procStat) bool { return st.Pgrp == pgid && st.alive() })
}

// scan returns the processes of /proc for which keep is true.
func scan(t *testing.T, keep func(procStat) bool) []procStat {
	t.Helper()
	pids, err := listPids()
	if err != nil {
		t.Fatal(err)
	}
	var out []procStat
	for _, pid := range pids {
		if st, err := readStat(pid); err == nil && keep(st) {
			out = append(out, st)
		}
	}
	return out
}

// waitGone waits with a pidfd until pid has exited; false if it is still
// running after d. A pid that is already gone counts as gone.
func waitGone(pid int, d time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms < 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// assertGroupGone fails unless every process of pgid ends promptly (they
// have been sent SIGKILL, whose delivery is asynchronous).
func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	for _, st := range members(t, pgid) {
		if !waitGone(st.Pid, 5*time.Second) {
			t.Errorf("process %d (%s) of group %d still running", st.Pid, st.Comm, pgid)
		}
	}
}

// killOnCleanup SIGKILLs pid at the end of the test (for a process that
// left the task's group) and waits for it to go.
func killOnCleanup(t *testing.T, pid int) {
	t.Cleanup(func() {
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		}
		waitGone(pid, 5*time.Second)
	})
}
