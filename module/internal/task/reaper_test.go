package task

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Reaper makes the whole test process a subreaper and takes any child
// in another session for a task's orphan, so the tests that use one are
// never parallel: Go runs them while no parallel test runs, and each
// closes its Reaper (giving up the flag) before the next test starts.

// reaperLog collects what a Reaper logged.
type reaperLog struct {
	mu   sync.Mutex
	list []Escapee
}

func (l *reaperLog) add(e Escapee) {
	l.mu.Lock()
	l.list = append(l.list, e)
	l.mu.Unlock()
}

func (l *reaperLog) pids() map[int]Escapee {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[int]Escapee{}
	for _, e := range l.list {
		m[e.Pid] = e
	}
	return m
}

// newReaper makes this test process a subreaper for the test; at cleanup
// the Reaper is closed and no zombie may be left among the children.
// interval 0: no periodic sweep within any test's time (the tests sweep
// themselves, or rely on the task's own).
func newReaper(t *testing.T, interval time.Duration) (*Reaper, *reaperLog) {
	t.Helper()
	if interval == 0 {
		interval = time.Hour
	}
	log := &reaperLog{}
	r, err := NewReaper(ReaperOptions{Interval: interval, Log: log.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		assertNoZombies(t)
	})
	return r, log
}

// assertNoZombies fails for any zombie child of this process in another
// session: an orphan of a task nobody reaped.
func assertNoZombies(t *testing.T) {
	t.Helper()
	self := os.Getpid()
	sid, _ := unix.Getsid(0)
	for _, st := range scan(t, func(st procStat) bool { return st.PPid == self && zombie(st) && st.Session != sid }) {
		t.Errorf("zombie child %d (%s), session %d", st.Pid, st.Comm, st.Session)
	}
}

// gate is a FIFO a task's shell blocks on (read x < FIFO) until the test
// opens it: the test holds it open read-write, so the shell's open never
// waits and a line written before it reads is kept.
type gate struct {
	path string
	f    *os.File
}

func newGate(t *testing.T) *gate {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gate")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &gate{p, f}
}

func (g *gate) open(t *testing.T) {
	t.Helper()
	if _, err := g.f.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
}

// watch opens a pidfd on pid (an escapee the test was told about), to
// tell later whether it has exited and been reaped. At cleanup it is
// killed, waited for and, if it is still this process's child, reaped.
func watch(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd of %d: %v", pid, err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		exited(fd, testTimeout)
		var info unix.Siginfo
		unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil)
		unix.Close(fd)
	})
	return fd
}

// assertReaped fails unless the pidfd's process has exited already (no
// waiting) and is no child of ours any more: it was reaped, not left a
// zombie.
func assertReaped(t *testing.T, fd int, what string) {
	t.Helper()
	if !exited(fd, 0) {
		t.Errorf("%s is still running", what)
		return
	}
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if !errors.Is(err, unix.ECHILD) {
		t.Errorf("%s exited but was not reaped (waitid: %v, signal %d)", what, err, info.Signo)
	}
}

// assertRunning fails if the pidfd's process has exited.
func assertRunning(t *testing.T, fd int, what string) {
	t.Helper()
	if exited(fd, 0) {
		t.Errorf("%s was killed", what)
	}
}

// untilSession is shell that waits until the process $d leads a session
// of its own (field 6 of its stat), so that it has left the task's group
// before the task ends: otherwise whether it escapes is a race.
// It has no single quote, so that it can go in sh -c '...'.
const untilSession = `while [ "$(cut -d" " -f6 /proc/$d/stat)" != "$d" ]; do :; done; `

// pidsOf parses the first line of s as pids.
func pidsOf(t *testing.T, s string) []int {
	t.Helper()
	line, _, _ := strings.Cut(s, "\n")
	var pids []int
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid line %q", line)
		}
		pids = append(pids, pid)
	}
	return pids
}

// Whatever escapes a task's group and session is dead and reaped when the
// task is done: a setsid daemon (detached, or holding the output), a job
// moved to its own group (setpgid, kept while its task runs), one that
// escapes twice, and the same when the task is killed rather than exits.
func TestReaperKillsEscapeesByTheTaskEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string // prints the escapees' pids on its first line; $0 is a gate
		npids  int
		// inter: how many pids at the end of the line are of
		// intermediates, which exit by themselves and orphan the
		// escapees.
		inter int
		kill  bool // end the task with Kill rather than by opening the gate
		cut   bool // an escapee holds the output: OutputCut
		// kept: the escapees belong to the running task (its session)
		// and survive a sweep until the task ends.
		kept bool
	}{
		{name: "setsid, output detached",
			script: `setsid sleep 300 </dev/null >/dev/null 2>&1 & d=$!; ` + untilSession + `echo $d; read x < "$0"`, npids: 1},
		{name: "setsid, holding stdout",
			script: `setsid sleep 300 & d=$!; ` + untilSession + `echo $d; read x < "$0"`, npids: 1, cut: true},
		{name: "setpgid, parent gone",
			// $(...) ends once bash has exited and the job has let go of
			// its stdout: before, the job held the task's output.
			script: `echo $(bash -c 'set -m; sleep 300 </dev/null >/dev/null 2>&1 & echo $! $$'); read x < "$0"`, npids: 1, inter: 1, kept: true},
		{name: "setsid twice",
			script: `setsid sh -c 'setsid sleep 300 </dev/null >/dev/null 2>&1 & d=$!; ` + untilSession + `echo $$ $d; wait' & read x < "$0"`,
			npids:  2, cut: true},
		{name: "task killed",
			script: `setsid sleep 300 </dev/null >/dev/null 2>&1 & d=$!; ` + untilSession + `echo $d; exec sleep 300`, npids: 1, kill: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, log := newReaper(t, 0)
			g := newGate(t)
			s := sh(t, tc.script)
			s.Args = append(s.Args, g.path)
			s.Reaper = r
			// Without the Reaper, an escapee holding stdout would hold
			// Wait for the drain bound; now Wait returning at all says
			// it was killed.
			s.Drain = time.Hour
			tk := start(t, s)
			pids := pidsOf(t, waitFor(t, tk.Stdout(), "a line of pids", func(s string) bool {
				return strings.Contains(s, "\n")
			}))
			if len(pids) != tc.npids+tc.inter {
				t.Fatalf("%d pids, want %d", len(pids), tc.npids+tc.inter)
			}
			pids, inter := pids[:tc.npids], pids[tc.npids:]
			fds := map[int]int{}
			for _, pid := range pids {
				fds[pid] = watch(t, pid)
			}
			for _, pid := range inter {
				if !waitGone(pid, testTimeout) {
					t.Fatalf("intermediate %d did not exit", pid)
				}
			}
			if tc.kept {
				r.sweep(true)
				for pid, fd := range fds {
					assertRunning(t, fd, fmt.Sprintf("process %d of a running task's session", pid))
				}
			}
			before := r.Stats().Killed
			if tc.kill {
				tk.Kill()
			} else {
				g.open(t)
			}
			res := wait(t, tk)
			for pid, fd := range fds {
				assertReaped(t, fd, fmt.Sprintf("escapee %d at the task's end", pid))
			}
			if res.OutputCut != tc.cut || res.Killed != tc.kill || !tc.kill && res.ExitCode != 0 {
				t.Errorf("result %+v, want OutputCut %v Killed %v", res, tc.cut, tc.kill)
			}
			if got := r.Stats().Killed - before; got < uint64(tc.npids) {
				t.Errorf("Stats().Killed grew by %d, want at least %d", got, tc.npids)
			}
			logged := log.pids()
			for _, pid := range pids {
				e, ok := logged[pid]
				if !ok {
					t.Errorf("escapee %d not logged: %+v", pid, logged)
					continue
				}
				if e.Comm == "" || e.Why == "" || e.Session == tk.Pgid() && !tc.kept {
					t.Errorf("logged %+v", e)
				}
			}
			if tc.cut && !tc.kill {
				if e := logged[pids[0]]; e.HeldOutputOf != tk.Pid() {
					t.Errorf("logged %+v, want HeldOutputOf %d", e, tk.Pid())
				}
			}
		})
	}
}

// An escapee of a task that still runs is killed by the next sweep once
// it is orphaned (setsid -f: its parent exits at once); the task goes on.
func TestReaperKillsEscapeeOfRunningTask(t *testing.T) {
	r, _ := newReaper(t, 0)
	g := newGate(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := sh(t, `setsid -f sh -c 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 300' "$1" </dev/null >/dev/null 2>&1
		while [ ! -e "$1" ]; do :; done; cat "$1"; read x < "$0"; echo after`)
	s.Args = append(s.Args, g.path, pidFile)
	s.Reaper = r
	tk := start(t, s)
	pids := pidsOf(t, waitOutput(t, tk.Stdout(), "\n"))
	fd := watch(t, pids[0])
	r.sweep(true)
	assertReaped(t, fd, "the orphaned escapee of a running task, after a sweep")
	select {
	case <-tk.Done():
		t.Fatal("the task ended")
	default:
	}
	g.open(t)
	if res := wait(t, tk); res.ExitCode != 0 || res.OutputCut {
		t.Errorf("result %+v", res)
	}
	if got := string(readAll(t, tk.Stdout())); !strings.HasSuffix(got, "after\n") {
		t.Errorf("stdout %q", got)
	}
}

// An orphan still in its running task's session is left alone; when it
// exits, a sweep reaps its zombie, and counts no kill.
func TestReaperReapsOrphanZombies(t *testing.T) {
	r, log := newReaper(t, 0)
	leader, member := newGate(t), newGate(t)
	// The middle shell prints the pids of its background reader and its
	// own, and exits: the reader is orphaned, and ours.
	s := sh(t, `sh -c 'sh -c "read x < $0" & echo $! $$' "$1"; read y < "$0"`)
	s.Args = append(s.Args, leader.path, member.path)
	s.Reaper = r
	tk := start(t, s)
	pids := pidsOf(t, waitOutput(t, tk.Stdout(), "\n"))
	pid, fd := pids[0], watch(t, pids[0])
	if !waitGone(pids[1], testTimeout) {
		t.Fatal("the middle shell did not exit")
	}
	r.sweep(true)
	assertRunning(t, fd, "an orphan in a running task's session")
	member.open(t)
	if !exited(fd, testTimeout) {
		t.Fatal("the orphan did not exit")
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil || info.Signo != int32(unix.SIGCHLD) {
		t.Fatalf("the orphan %d is not our zombie: %v, signal %d", pid, err, info.Signo)
	}
	before := r.Stats()
	r.sweep(true)
	assertReaped(t, fd, "the orphan's zombie, after a sweep")
	if st := r.Stats(); st.Reaped != before.Reaped+1 || st.Killed != before.Killed {
		t.Errorf("stats %+v, then %+v: want one reaped, none killed", before, st)
	}
	if len(log.pids()) != 0 {
		t.Errorf("logged %+v", log.pids())
	}
	leader.open(t)
	wait(t, tk)
}

// A child in this process's own session is none of the Reaper's, alive or
// a zombie: os/exec still waits for it.
func TestReaperLeavesOtherChildren(t *testing.T) {
	r, _ := newReaper(t, 0)
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd := watch(t, cmd.Process.Pid)
	r.sweep(true)
	assertRunning(t, fd, "a child in our session")
	cmd.Process.Kill()
	if !exited(fd, testTimeout) {
		t.Fatal("sleep did not die")
	}
	r.sweep(true)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("os/exec's Wait: %v, want killed by SIGKILL (the Reaper must not reap it)", err)
	}
}

// What is left of an ended task's group when the task sweeps is dying of
// the group kill: it is reaped, but it escaped nothing (no kill counted,
// no log, no OutputCut). The soak's "stubborn" task, whose sleep was
// still alive at that moment, said OutputCut.
func TestReaperGroupMembersAreNotEscapees(t *testing.T) {
	r, log := newReaper(t, 0)
	// A session like a task's, whose leader is taken as reaped: the
	// sleep is what is left of its group.
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd := watch(t, cmd.Process.Pid)
	ended := &Task{pid: cmd.Process.Pid}
	r.leaderReaped(ended)
	r.sweep(true)
	r.taskSwept(ended)
	assertReaped(t, fd, "the member of an ended task's group")
	if st := r.Stats(); st.Killed != 0 || st.Reaped != 1 || len(log.pids()) != 0 {
		t.Errorf("stats %+v, logged %v: want one reaped, no escapee", st, log.pids())
	}
}

// The same with real tasks: a group killed at the end (SIGKILL after the
// grace, as the soak's stubborn task) leaves members alive for a moment;
// none of them counts as an escapee.
func TestReaperKilledGroupNoEscapee(t *testing.T) {
	r, log := newReaper(t, 0)
	for i := range 40 {
		s := sh(t, `trap '' TERM; sleep 300 & sleep 300 & echo ready; wait`)
		s.Reaper = r
		s.Grace = time.Millisecond
		tk := start(t, s)
		waitOutput(t, tk.Stdout(), "ready\n")
		tk.Kill()
		if res := wait(t, tk); !res.KillEscalated || res.OutputCut {
			t.Fatalf("task %d: %+v, want killed by SIGKILL, output not cut", i, res)
		}
	}
	if st := r.Stats(); st.Killed != 0 || len(log.pids()) != 0 {
		t.Errorf("stats %+v, logged %v: want no escapee", st, log.pids())
	}
}

// Many tasks start and end while sweeps run back to back: no leader is
// ever taken for an escapee between its fork and its registration, the
// sentinel (our child too) is left alone, and exactly the escapees die.
func TestReaperRaceWithStarts(t *testing.T) {
	r, log := newReaper(t, 0)
	sn, err := StartSentinel(os.Args[0], WithReaper(r))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	sentFd := watch(t, sn.Pid())
	stop := make(chan struct{})
	swept := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				swept <- n
				return
			default:
				r.sweep(true)
				n++
			}
		}
	}()
	const tasks, workers, every = 240, 8, 6 // every 6th task leaves an escapee
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				script := fmt.Sprintf("exit %d", i%7)
				if i%every == 0 {
					script = `setsid sleep 300 </dev/null >/dev/null 2>&1 & d=$!; ` + untilSession + fmt.Sprintf("exit %d", i%7)
				}
				s := sh(t, script)
				s.Sentinel = sn // and its Reaper
				tk, err := Start(s)
				if err != nil {
					t.Errorf("Start: %v", err)
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				res, err := tk.Wait(ctx)
				cancel()
				if err != nil {
					tk.Kill()
					t.Errorf("task %d: %v", i, err)
					continue
				}
				if res.Signaled || res.ExitCode != i%7 {
					t.Errorf("task %d (%q): %+v, want exit %d", i, script, res, i%7)
				}
			}
		}()
	}
	for i := range tasks {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(stop)
	n := <-swept
	want := (tasks + every - 1) / every
	if got := r.Stats().Killed; got != uint64(want) || len(log.pids()) != want {
		t.Errorf("killed %d, logged %d, want %d (the escapees)", got, len(log.pids()), want)
	}
	assertRunning(t, sentFd, "the sentinel")
	t.Logf("%d sweeps during %d tasks", n, tasks)
}

func TestReaperOnePerProcess(t *testing.T) {
	r, _ := newReaper(t, 0)
	if r2, err := NewReaper(ReaperOptions{}); err == nil {
		r2.Close()
		t.Fatal("a second Reaper in one process was allowed")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var on int32
	unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&on)), 0, 0, 0)
	if on != 0 {
		t.Error("still a subreaper after Close")
	}
	var nilReaper *Reaper
	if err := nilReaper.Close(); err != nil {
		t.Error(err)
	}
}

// The periodic sweep alone finds an escapee orphaned while its task runs.
func TestReaperPeriodicSweep(t *testing.T) {
	r, _ := newReaper(t, 20*time.Millisecond)
	g := newGate(t)
	// The subshell prints its background child's pid and exits, which
	// orphans the child. Its pid is known before it is an escapee: one
	// that had to report its own pid could be swept before it did.
	// (setsid(1) does not fork here: without job control the child does
	// not lead a process group.)
	s := sh(t, `(setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!); read x < "$0"`)
	s.Args = append(s.Args, g.path)
	s.Reaper = r
	tk := start(t, s)
	pid := pidsOf(t, waitOutput(t, tk.Stdout(), "\n"))[0]
	// Every 20 ms the sweep may kill and reap the escapee before we look:
	// pidfd_open fails with ESRCH only for a process gone and reaped (a
	// zombie still has one), which is what this test asks for.
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
	case err != nil:
		t.Fatalf("pidfd of %d: %v", pid, err)
	default:
		defer unix.Close(fd)
		if !exited(fd, testTimeout) {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			t.Error("the periodic sweep did not kill the escapee")
		}
	}
	g.open(t)
	wait(t, tk)
}
