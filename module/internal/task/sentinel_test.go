package task

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary play a child (see TestMain).
const childEnv = "TASK_TEST_CHILD"

// TestMain lets the test binary impersonate the processes the tests need:
// a sentinel (re-executed by StartSentinel), a service that starts a task
// and is then killed, a command that maps memory, and a service started
// with signals ignored (see TestDefaultSignals).
func TestMain(m *testing.M) {
	if IsSentinel() {
		os.Exit(RunSentinel(os.Stdin, os.Stderr))
	}
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "map":
		n, _ := strconv.Atoi(os.Getenv("TASK_TEST_MAP_BYTES"))
		// MAP_POPULATE faults every page in: resident, and not touched
		// by (race-instrumented) Go code.
		if _, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "service":
		os.Exit(fakeService())
	case "signals":
		os.Exit(signalsChild())
	}
	os.Exit(2)
}

// fakeService starts a task whose shell leaves a background sleep (or
// runs TASK_TEST_SCRIPT, which prints "started" when ready), with a
// sentinel unless TASK_TEST_SENTINEL=0, prints "pgid N sentinel P" once
// the sleep runs, then blocks until it is killed.
func fakeService() int {
	script := cmp.Or(os.Getenv("TASK_TEST_SCRIPT"), "sleep 300 & echo started; wait")
	spec := Spec{Path: "/bin/sh", Args: []string{"sh", "-c", script},
		Env: []string{"PATH=/usr/bin:/bin"}, Timeout: time.Hour}
	var err error
	if spec.OutputDir, err = os.MkdirTemp("", "task-service-"); err != nil {
		fmt.Println("error", err)
		return 1
	}
	sentinel := 0
	if os.Getenv("TASK_TEST_SENTINEL") != "0" {
		if spec.Sentinel, err = StartSentinel("/proc/self/exe"); err != nil {
			fmt.Println("error", err)
			return 1
		}
		sentinel = spec.Sentinel.Pid()
	}
	tk, err := Start(spec)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	o := tk.Stdout()
	for {
		changed := o.Changed()
		b := make([]byte, 8)
		if n, _ := o.ReadAt(b, 0); n == 8 {
			break // "started\n": the sleep was forked before the echo
		}
		<-changed
	}
	fmt.Printf("pgid %d sentinel %d spool %s\n", tk.Pgid(), sentinel, spec.OutputDir)
	select {}
}

// startService runs the test binary as fakeService (with script, if not
// "") and returns it, the task's pgid and the sentinel's pid (0 without
// one). The service, the group and the sentinel are killed at cleanup
// whatever happens.
func startService(t *testing.T, sentinel bool, script string) (*exec.Cmd, int, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{childEnv + "=service", "TASK_TEST_SENTINEL=" + map[bool]string{true: "1", false: "0"}[sentinel],
		"TASK_TEST_SCRIPT=" + script}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = cmd.Wait()
		close(exited)
	}()
	var pgid, sent int
	var spool string
	select {
	case line := <-lines:
		if _, err := fmt.Sscanf(line, "pgid %d sentinel %d spool %s", &pgid, &sent, &spool); err != nil {
			t.Fatalf("service said %q: %v", line, err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the service did not start its task")
	}
	t.Cleanup(func() {
		KillGroup(pgid, 0)
		os.RemoveAll(spool)
		if sent > 0 {
			killOnCleanup(t, sent)
		}
	})
	return cmd, pgid, sent
}

// pidfds opens a pidfd for each live member of pgid.
func pidfds(t *testing.T, pgid int) map[int]int {
	t.Helper()
	fds := map[int]int{}
	for _, st := range members(t, pgid) {
		fd, err := unix.PidfdOpen(st.Pid, 0)
		if err != nil {
			continue
		}
		fds[st.Pid] = fd
		t.Cleanup(func() { unix.Close(fd) })
	}
	return fds
}

// exited reports whether the pidfd's process has exited, waiting up to d.
func exited(fd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// When the service dies by SIGKILL, its task's leader dies with it
// (Pdeathsig) and the sentinel kills what the leader left in its group.
func TestSentinelKillsGroupWhenServiceDies(t *testing.T) {
	t.Parallel()
	svc, pgid, sentinel := startService(t, true, "")
	fds := pidfds(t, pgid)
	if len(fds) < 2 {
		t.Fatalf("group %d has %d live processes, want the shell and its sleep", pgid, len(fds))
	}
	sentFd, err := unix.PidfdOpen(sentinel, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sentFd)
	if err := svc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for pid, fd := range fds {
		if !exited(fd, testTimeout) {
			t.Errorf("process %d of the dead service's task still runs", pid)
		}
	}
	if !exited(sentFd, testTimeout) {
		t.Errorf("the sentinel %d did not exit after the service died", sentinel)
	}
}

// A job the task moved to a process group of its own (setpgid) is still
// in the task's session, and the sentinel kills it too.
func TestSentinelKillsSessionWhenServiceDies(t *testing.T) {
	t.Parallel()
	svc, pgid, _ := startService(t, true, `bash -c 'set -m; sleep 300 </dev/null >/dev/null 2>&1 &'; echo started; exec sleep 300`)
	fds := map[int]int{}
	for _, st := range scan(t, func(st procStat) bool { return st.Session == pgid && st.alive() }) {
		if fd, err := unix.PidfdOpen(st.Pid, 0); err == nil {
			fds[st.Pid] = fd
			t.Cleanup(func() {
				unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
				unix.Close(fd)
			})
			if st.Pgrp != pgid {
				t.Logf("job %d (%s) in group %d of session %d", st.Pid, st.Comm, st.Pgrp, pgid)
			}
		}
	}
	if n := len(members(t, pgid)); n >= len(fds) {
		t.Fatalf("session %d has %d live processes, its group %d: want a job outside the group", pgid, len(fds), n)
	}
	if err := svc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for pid, fd := range fds {
		if !exited(fd, testTimeout) {
			t.Errorf("process %d of the dead service's task session still runs", pid)
		}
	}
}

// The control: without a sentinel, the background sleep outlives the
// service and the task's leader.
func TestWithoutSentinelGrandchildSurvives(t *testing.T) {
	t.Parallel()
	svc, pgid, _ := startService(t, false, "")
	fds := pidfds(t, pgid)
	leader, ok := fds[pgid]
	if !ok || len(fds) < 2 {
		t.Fatalf("group %d: %v, want the shell and its sleep", pgid, fds)
	}
	if err := svc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if !exited(leader, testTimeout) {
		t.Fatal("the task's leader outlived its service (Pdeathsig)")
	}
	for pid, fd := range fds {
		if pid != pgid && exited(fd, 0) {
			t.Errorf("the sleep %d died with its service; the sentinel test proves nothing", pid)
		}
	}
}

// An orderly end: Forget after each task, Close, and the sentinel exits
// without killing anything.
func TestSentinelClose(t *testing.T) {
	t.Parallel()
	sn, err := StartSentinel(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	s := sh(t, "echo hi")
	s.Sentinel = sn
	_, r := run(t, s)
	if r.ExitCode != 0 {
		t.Errorf("exit %d", r.ExitCode)
	}
	sn.mu.Lock()
	left := len(sn.groups)
	sn.mu.Unlock()
	if left != 0 {
		t.Errorf("the sentinel still holds %d groups after the task ended", left)
	}
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sn.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := sn.Watch(12345, 1); err == nil {
		t.Error("Watch after Close succeeded")
	}
}

// A sentinel that died is restarted and told every group again.
func TestSentinelRestart(t *testing.T) {
	t.Parallel()
	sn, err := StartSentinel(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	s := newSpec(t, "sleep", "300")
	s.Sentinel = sn
	tk := start(t, s)
	first := sn.Pid()
	fd, err := unix.PidfdOpen(first, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	if !exited(fd, testTimeout) {
		t.Fatal("the sentinel did not die")
	}
	// Its group was sent before the kill; the next line finds it gone.
	if err := sn.Watch(1<<22+1, 1); err != nil {
		t.Fatalf("Watch after the sentinel died: %v", err)
	}
	if sn.Pid() == first {
		t.Fatal("the sentinel was not restarted")
	}
	sn.mu.Lock()
	_, ok := sn.groups[tk.Pgid()]
	sn.mu.Unlock()
	if !ok {
		t.Error("the restarted sentinel does not hold the running task's group")
	}
	_ = sn.Forget(1<<22 + 1)
	tk.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// RunSentinel kills the groups it holds at end of file, and only those.
func TestRunSentinel(t *testing.T) {
	t.Parallel()
	kept := start(t, newSpec(t, "sleep", "300"))
	gone := start(t, newSpec(t, "sleep", "300"))
	fd, err := unix.PidfdOpen(gone.Pid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	in := fmt.Sprintf("+%d %d\n+%d %d\n-%d\nbad line\n+x y\n", kept.Pgid(), kept.StartTicks(), gone.Pgid(), gone.StartTicks(), kept.Pgid())
	var log bytes.Buffer
	if code := RunSentinel(strings.NewReader(in), &log); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if !exited(fd, testTimeout) {
		t.Error("the group still held at end of file was not killed")
	}
	keptFd, err := unix.PidfdOpen(kept.Pid(), 0)
	if err != nil {
		t.Fatalf("the forgotten group's leader is gone: %v", err)
	}
	defer unix.Close(keptFd)
	if exited(keptFd, 0) {
		t.Error("a forgotten group was killed")
	}
	if !strings.Contains(log.String(), "1 task group") {
		t.Errorf("sentinel log %q", log.String())
	}
}

func TestParseSentinelLine(t *testing.T) {
	for _, tc := range []struct {
		line    string
		add, ok bool
		pgid    int
		ticks   uint64
	}{
		{"+42 7", true, true, 42, 7},
		{"-42", false, true, 42, 0},
		{"+1 7", false, false, 0, 0}, // never init's group
		{"+-5 7", false, false, 0, 0},
		{"+42", false, false, 0, 0},
		{"+42 x", false, false, 0, 0},
		{"-", false, false, 0, 0},
		{"42", false, false, 0, 0},
		{"", false, false, 0, 0},
	} {
		add, pgid, ticks, ok := parseSentinelLine(tc.line)
		if add != tc.add || ok != tc.ok || pgid != tc.pgid || ticks != tc.ticks {
			t.Errorf("parseSentinelLine(%q) = %v %d %d %v", tc.line, add, pgid, ticks, ok)
		}
	}
}

// The sentinel's input is ours, but a parser of bytes gets fuzzed: no
// panic, and a line it accepts names a group above 1.
func FuzzParseSentinelLine(f *testing.F) {
	for _, s := range []string{"+42 7", "-42", "+1 1", "+99999999999999999999 1", "-0", "+4 18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if _, pgid, _, ok := parseSentinelLine(line); ok && pgid <= 1 {
			t.Errorf("parseSentinelLine(%q) accepted pgid %d", line, pgid)
		}
	})
}
