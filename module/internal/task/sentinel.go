package task

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// SentinelEnv is set (to "1") in the environment of a sentinel process.
// A binary that may be started as a sentinel checks IsSentinel first thing
// in main and then only calls RunSentinel.
const SentinelEnv = "EXECMOD_TASK_SENTINEL"

// IsSentinel reports whether this process was started by StartSentinel.
func IsSentinel() bool { return os.Getenv(SentinelEnv) == "1" }

// Sentinel is a helper process that kills the process groups of this
// process's tasks once this process is gone, however it went: a task's
// leader dies with the service (Pdeathsig), but what it started in the
// background would otherwise run on with no supervisor and no timeout.
//
// The sentinel is the given binary re-executed with SentinelEnv set. It
// is started without Pdeathsig and in a process group of its own (so
// neither the death of this process nor a kill of its group reaches it),
// and it reads its standard input, a pipe whose only write end this
// process holds. Start sends it each task's group when the task starts
// (before Start returns) and the task sends its removal once the group was
// killed and the leader reaped. When the pipe reaches end of file, because
// this process died or called Close, the sentinel SIGKILLs every group it
// still holds, and every process of the session its leader leads (so a
// job moved to a group of its own dies too), recognised by the leader's
// start time, so a reused pgid is never hit (see KillGroup), and exits.
// A process that left the session (setsid) is beyond it: that is the
// Reaper's, while this process lives.
//
// Costs per task: two writes of a short line to a pipe. The window it
// leaves is the few microseconds between a task's fork and the write of
// its group; a crash exactly then is left to the restart's recovery.
//
// All methods are safe for concurrent use.
type Sentinel struct {
	exe    string
	reaper *Reaper // given to the tasks of Specs that name this sentinel and no Reaper

	mu     sync.Mutex
	cmd    *exec.Cmd
	w      *os.File
	groups map[int]uint64 // pgid -> start ticks, resent if the sentinel must be restarted
	closed bool
}

// SentinelOption is an option of StartSentinel.
type SentinelOption func(*Sentinel)

// WithReaper makes r the Reaper of every task whose Spec names this
// sentinel and no Reaper: for a caller that builds Specs with a Sentinel
// and knows nothing of reapers. A nil r is no Reaper.
func WithReaper(r *Reaper) SentinelOption { return func(s *Sentinel) { s.reaper = r } }

// StartSentinel starts exe as this process's sentinel. The caller must
// call Close after its tasks have ended. exe is normally "/proc/self/exe"
// and its main must call RunSentinel when IsSentinel. The sentinel runs in
// this process's session: a Reaper never takes it for a task's.
func StartSentinel(exe string, opts ...SentinelOption) (*Sentinel, error) {
	s := &Sentinel{exe: exe, groups: map[int]uint64{}}
	for _, o := range opts {
		o(s)
	}
	if err := s.spawnLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// spawnLocked starts the sentinel process. s.mu is held (or s is new).
func (s *Sentinel) spawnLocked() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("task: sentinel: %w", err)
	}
	cmd := exec.Command(s.exe)
	cmd.Args = []string{"task-sentinel"}
	cmd.Env = []string{SentinelEnv + "=1"}
	if v, ok := os.LookupEnv("GORACE"); ok { // a -race build's exit options
		cmd.Env = append(cmd.Env, "GORACE="+v)
	}
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	cmd.Dir = "/"
	// No Pdeathsig: it must outlive us. Its own group: a kill of ours
	// must not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return fmt.Errorf("task: sentinel: %w", err)
	}
	s.cmd, s.w = cmd, w
	return nil
}

// send writes line, restarting the sentinel (and telling the new one every
// group) if the old one is gone. s.mu is held.
func (s *Sentinel) sendLocked(line string) error {
	if s.closed {
		return fmt.Errorf("task: sentinel: closed")
	}
	if _, err := io.WriteString(s.w, line); err == nil {
		return nil
	}
	// The sentinel died (EPIPE): reap it and start another.
	s.w.Close()
	_ = s.cmd.Wait()
	if err := s.spawnLocked(); err != nil {
		return err
	}
	var b strings.Builder
	for pgid, ticks := range s.groups {
		fmt.Fprintf(&b, "+%d %d\n", pgid, ticks)
	}
	if _, err := io.WriteString(s.w, b.String()); err != nil {
		return fmt.Errorf("task: sentinel: %w", err)
	}
	return nil
}

// Watch hands the group pgid, whose leader started at startTicks, to the
// sentinel.
func (s *Sentinel) Watch(pgid int, startTicks uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[pgid] = startTicks
	return s.sendLocked(fmt.Sprintf("+%d %d\n", pgid, startTicks))
}

// Forget takes the group pgid back from the sentinel: it has been killed
// and its leader reaped.
func (s *Sentinel) Forget(pgid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[pgid]; !ok {
		return nil
	}
	delete(s.groups, pgid)
	return s.sendLocked(fmt.Sprintf("-%d\n", pgid))
}

// Pid is the sentinel process's pid (for tests and logs).
func (s *Sentinel) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// Close closes the pipe, so the sentinel kills what is left of the groups
// it holds (nothing, after an orderly stop) and exits, and reaps it. Safe
// to call twice.
func (s *Sentinel) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.w.Close()
	if err := s.cmd.Wait(); err != nil {
		return fmt.Errorf("task: sentinel: %w", err)
	}
	return nil
}

// RunSentinel is the sentinel's whole life: it reads groups from in until
// end of file, then SIGKILLs every group it still holds and returns the
// exit code (0). Progress is logged to log.
func RunSentinel(in io.Reader, log io.Writer) int {
	groups := map[int]uint64{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		add, pgid, ticks, ok := parseSentinelLine(sc.Text())
		switch {
		case !ok:
		case add:
			groups[pgid] = ticks
		default:
			delete(groups, pgid)
		}
	}
	if len(groups) == 0 {
		return 0
	}
	n := killGroups(groups) + killSessions(groups)
	fmt.Fprintf(log, "task sentinel: the service is gone; SIGKILLed %d process(es) of %d task group(s)\n", n, len(groups))
	return 0
}

// parseSentinelLine reads "+PGID TICKS" (watch) or "-PGID" (forget); ok
// is false for anything else, which the sentinel ignores.
func parseSentinelLine(line string) (add bool, pgid int, ticks uint64, ok bool) {
	if len(line) < 2 {
		return false, 0, 0, false
	}
	switch line[0] {
	case '+':
		pg, t, found := strings.Cut(line[1:], " ")
		n, err1 := strconv.Atoi(pg)
		tk, err2 := strconv.ParseUint(t, 10, 64)
		if !found || err1 != nil || err2 != nil || n <= 1 {
			return false, 0, 0, false
		}
		return true, n, tk, true
	case '-':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n <= 1 {
			return false, 0, 0, false
		}
		return false, n, 0, true
	}
	return false, 0, 0, false
}

// killSessions SIGKILLs the live processes of the sessions (sid ->
// notBefore) that started at or after notBefore and are not in the
// session's process group (killGroups has those): a job that a command
// moved to a group of its own. Like killGroups it checks and signals
// through a pidfd, never touches this process's session, and scans
// until it finds no new process. It returns how many it signalled.
func killSessions(sessions map[int]uint64) int {
	own, _ := unix.Getsid(0)
	self := os.Getpid()
	seen := map[int]bool{}
	for pass := 0; pass < 100; pass++ {
		pids, err := listPids()
		if err != nil {
			break
		}
		found := false
		for _, pid := range pids {
			if pid == self || seen[pid] {
				continue
			}
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			st, err := readStat(pid)
			notBefore, ok := sessions[st.Session]
			if err == nil && ok && st.Session > 1 && st.Session != own && st.Pgrp != st.Session &&
				st.alive() && st.StartTime >= notBefore &&
				unix.PidfdSendSignal(fd, 0, nil, 0) == nil && unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
				seen[pid], found = true, true
			}
			unix.Close(fd)
		}
		if !found {
			break
		}
	}
	return len(seen)
}
