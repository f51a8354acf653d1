package task

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultSweepInterval is the time between a Reaper's periodic sweeps.
const DefaultSweepInterval = 500 * time.Millisecond

// killWait bounds how long a sweep waits for a process it has sent
// SIGKILL to die (one stuck in the kernel, state D, is left to the next
// sweep, which reaps it).
const killWait = 2 * time.Second

// maxRounds bounds the kill rounds of one sweep: each round kills the
// escapees found and waits for them, which hands their children to this
// process for the next round.
const maxRounds = 100

// ReaperOptions configure a Reaper; the zero value is usable.
type ReaperOptions struct {
	// Interval is the time between periodic sweeps; 0 means
	// DefaultSweepInterval.
	Interval time.Duration
	// Log, when set, is called for each escapee killed, from the goroutine
	// that sweeps (a task's, or the Reaper's own): it must not block for
	// long nor call the Reaper.
	Log func(Escapee)
}

// Escapee is a process that outlived its task's process group and session
// and was killed.
type Escapee struct {
	Pid     int
	Comm    string
	Session int
	Pgrp    int
	// Why is the fact that made it an escapee: it leads a session of its
	// own (setsid), or it is left in the session of a task that has
	// ended.
	Why string
	// HeldOutputOf is the leader pid of the running task whose stdout or
	// stderr it held open (that task's Result says OutputCut), 0 if none.
	HeldOutputOf int
}

// ReaperStats are a Reaper's counters since NewReaper.
type ReaperStats struct {
	Killed uint64 // escapees killed
	Reaped uint64 // adopted processes reaped (the killed ones among them)
	Sweeps uint64
}

// Reaper makes this process a child subreaper (PR_SET_CHILD_SUBREAPER) and
// kills what escapes its tasks. A command's descendant that leaves the
// task's process group (setsid, or setpgid) is out of reach of the group
// kill at the task's end; once its parent dies, Linux makes it a child of
// this process instead of init's, and the Reaper finds it among this
// process's children.
//
// Which child is an escapee: Start puts every command in a session of its
// own (Setsid), and a process can leave a session only for a new one, so
// every descendant of a command is in a session other than this
// process's, for ever. A child of this process in another session that is
// not a running task's leader is therefore a command's descendant that
// was orphaned. One in the session of a running task (a background job
// whose shell exited, or one moved to a process group of its own) still
// belongs to that task and is left alone until the task ends; any other
// is an escapee: it is sent SIGKILL (and its process group, if it leads
// one), waited for on a pidfd, reaped with waitid(P_PIDFD) and logged.
// Children in this process's own session (the Sentinel, anything started
// otherwise than by Start) are never touched, and nothing is ever reaped
// with a wait for any child, which would take os/exec's.
//
// When: a task sweeps after its leader was reaped and its group killed,
// before Done; the orphans of the leader and of its group were made this
// process's children by then, and each kill round waits for the killed to
// die, so that their own children are found in the next round. So when a
// task is done, no descendant of its command is left running. The Reaper
// also sweeps every Interval, for a process of a running task that
// escapes and is orphaned meanwhile (it is killed within an Interval),
// and to reap the zombies of a running task's orphans.
//
// A process that holds a running task's stdout or stderr when it is
// killed makes that task's Result say OutputCut: its later output is
// lost, as it would be at the drain bound without a Reaper.
//
// Cost per task: two fstat(2) at Start; at the end one read of
// /proc/self/task/<pid>/children (orphans are always handed to the main
// thread), and a stat read per unknown child. Launches take a read lock
// and the sweep takes the write lock only when it has to tell a just
// forked leader from an escapee.
//
// What it cannot do: when this process dies, its children go to init. The
// Sentinel kills the groups and sessions of the running tasks, but not a
// process in a session of its own: one the Reaper adopted and had not yet
// killed (orphaned less than an Interval before), or a setsid escapee of
// a running task whose parent is still alive, survives.
//
// A process may have one Reaper (the subreaper flag is the process's);
// every task it starts must be given it (Spec.Reaper, or Spec.Sentinel of
// a sentinel started with WithReaper), or that task's leader would be
// taken for an escapee. All methods are safe for concurrent use.
type Reaper struct {
	opts         ReaperOptions
	self, sid    int
	mainChildren string // /proc/self/task/<pid>/children; "" without CONFIG_PROC_CHILDREN

	// fork is held for reading from before a leader's fork until it is
	// registered; a sweep takes it for writing as a barrier when forks
	// are in flight, so that an unregistered child is not a new leader.
	fork     sync.RWMutex
	inflight atomic.Int64
	sweeping sync.Mutex // one sweep at a time

	mu      sync.Mutex
	leaders map[int]*Task    // running leaders by pid, until reaped
	ending  map[int]*Task    // reaped leaders by pid (their group was killed), until their task's sweep is done
	pipes   map[uint64]*Task // the output pipes (inode) of tasks not yet done
	closed  bool

	killed, reaped, sweeps atomic.Uint64

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewReaper makes this process a child subreaper and starts sweeping
// every opts.Interval. The caller must call Close after its tasks have
// ended. It fails if the process is a subreaper already (one Reaper per
// process) or has no pidfds (Linux before 5.3).
func NewReaper(opts ReaperOptions) (*Reaper, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultSweepInterval
	}
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return nil, fmt.Errorf("task: reaper: pidfd: %w", err)
	}
	unix.Close(fd)
	var on int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&on)), 0, 0, 0); err != nil {
		return nil, fmt.Errorf("task: reaper: %w", err)
	}
	if on != 0 {
		return nil, errors.New("task: reaper: this process is a child subreaper already (one Reaper per process)")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("task: reaper: %w", err)
	}
	sid, err := unix.Getsid(0)
	if err != nil {
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
		return nil, fmt.Errorf("task: reaper: %w", err)
	}
	r := &Reaper{
		opts: opts, self: os.Getpid(), sid: sid,
		leaders: map[int]*Task{}, ending: map[int]*Task{}, pipes: map[uint64]*Task{},
		stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	if p := "/proc/self/task/" + strconv.Itoa(r.self) + "/children"; fileExists(p) {
		r.mainChildren = p
	}
	go r.loop()
	return r, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (r *Reaper) loop() {
	defer close(r.stopped)
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			r.sweep(true)
		}
	}
}

// Stats returns the counters.
func (r *Reaper) Stats() ReaperStats {
	return ReaperStats{Killed: r.killed.Load(), Reaped: r.reaped.Load(), Sweeps: r.sweeps.Load()}
}

// Close stops the periodic sweeps, sweeps once more and gives up the
// subreaper flag: orphans are init's again. Call it after every task
// given this Reaper has ended. Safe to call twice; nil-safe.
func (r *Reaper) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.stopped
		r.sweep(true)
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); err != nil {
			r.closeErr = fmt.Errorf("task: reaper: %w", err)
		}
	})
	return r.closeErr
}

// startLeader runs start (the fork and exec of t's leader) so that no
// sweep can see the new child before it is registered. start reports the
// pid, 0 if nothing was started.
func (r *Reaper) startLeader(t *Task, start func() (int, error)) error {
	r.fork.RLock()
	defer r.fork.RUnlock()
	r.inflight.Add(1)
	defer r.inflight.Add(-1)
	pid, err := start()
	if pid > 0 {
		r.mu.Lock()
		r.leaders[pid] = t
		r.mu.Unlock()
	}
	return err
}

// leaderReaped unregisters t's leader; called once its group was killed
// and it has been reaped (before, a sweep could take its zombie for an
// orphan's and reap it). Until taskSwept, what is left of its group is
// known to be dying of the group kill, not to have escaped.
func (r *Reaper) leaderReaped(t *Task) {
	r.mu.Lock()
	if r.leaders[t.pid] == t {
		delete(r.leaders, t.pid)
	}
	r.ending[t.pid] = t
	r.mu.Unlock()
}

// taskSwept is called after t's own sweep at its end.
func (r *Reaper) taskSwept(t *Task) {
	r.mu.Lock()
	if r.ending[t.pid] == t {
		delete(r.ending, t.pid)
	}
	r.mu.Unlock()
}

// watchPipes registers the inodes of t's output pipes, so that a killed
// escapee holding one is known to have cut t's output.
func (r *Reaper) watchPipes(t *Task, files ...*os.File) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			continue
		}
		var st unix.Stat_t
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) })
		if serr == nil {
			r.pipes[st.Ino] = t
			t.pipeInos = append(t.pipeInos, st.Ino)
		}
	}
}

// forgetPipes drops what watchPipes registered for t.
func (r *Reaper) forgetPipes(t *Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ino := range t.pipeInos {
		if r.pipes[ino] == t {
			delete(r.pipes, ino)
		}
	}
}

// candidate is a child of this process in another session that is not a
// registered leader: an orphan of some task.
type candidate struct {
	pid   int
	start uint64
}

// sweep kills the escapees among this process's children and reaps the
// zombies, round after round until a round kills nothing. all lists the
// children of every thread; otherwise only the main thread's, where Linux
// puts the orphans it hands to a subreaper.
func (r *Reaper) sweep(all bool) {
	r.sweeping.Lock()
	defer r.sweeping.Unlock()
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return
	}
	r.sweeps.Add(1)
	for range maxRounds {
		cands := r.candidates(all)
		if len(cands) == 0 {
			return
		}
		if r.inflight.Load() > 0 {
			// A child listed may be a leader forked but not yet
			// registered: every fork begun before the listing is
			// registered once the write lock was had.
			r.fork.Lock()
			r.fork.Unlock() //nolint:staticcheck // a barrier, not a critical section
		}
		var dying []*os.File
		for _, c := range cands {
			if f := r.judge(c); f != nil {
				dying = append(dying, f)
			}
		}
		if len(dying) == 0 {
			return
		}
		for _, f := range dying {
			r.reapKilled(f)
		}
	}
}

// candidates lists this process's children that are in another session
// and not registered leaders.
func (r *Reaper) candidates(all bool) []candidate {
	var cands []candidate
	for _, pid := range r.children(all) {
		r.mu.Lock()
		_, leader := r.leaders[pid]
		r.mu.Unlock()
		if leader {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.PPid != r.self || st.Session == r.sid {
			continue
		}
		cands = append(cands, candidate{pid, st.StartTime})
	}
	return cands
}

// judge decides about one candidate, now that it cannot be a leader being
// registered: a zombie is reaped, a live process in a running task's
// session is left, one in the group of a task that is ending is dying of
// the group kill, any other is an escapee and killed. It returns the
// pidfd of a process that dies (the caller waits for it and reaps it),
// else nil.
func (r *Reaper) judge(c candidate) *os.File {
	r.mu.Lock()
	_, leader := r.leaders[c.pid]
	r.mu.Unlock()
	if leader {
		return nil // it was being started when listed
	}
	fd, err := unix.PidfdOpen(c.pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	// The stat read after opening the pidfd is the pidfd's process if
	// that is still there afterwards (signal 0 reaches a zombie too, not
	// a reaped process); it is the candidate if the start time is the
	// one listed and it is still our child.
	st, err := readStat(c.pid)
	if err != nil || st.StartTime != c.start || st.PPid != r.self || unix.PidfdSendSignal(fd, 0, nil, 0) != nil {
		f.Close()
		return nil
	}
	if zombie(st) {
		if reapPidfd(f, false) {
			r.reaped.Add(1)
		}
		f.Close()
		return nil
	}
	r.mu.Lock()
	_, running := r.leaders[st.Session]
	_, ending := r.ending[st.Pgrp]
	r.mu.Unlock()
	if running {
		f.Close() // still its task's: the task's end kills it
		return nil
	}
	if ending {
		// It stayed in its group, which was sent SIGKILL: not an
		// escapee, only not dead yet.
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		return f
	}
	held := r.heldPipe(c.pid)
	if st.Pgrp == c.pid {
		unix.Kill(-c.pid, unix.SIGKILL) // its pid is ours to reap, so the group is its own
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		f.Close()
		return nil
	}
	r.killed.Add(1)
	e := Escapee{Pid: c.pid, Comm: st.Comm, Session: st.Session, Pgrp: st.Pgrp, Why: why(st)}
	if held != nil {
		held.outputCut.Store(true)
		e.HeldOutputOf = held.pid
	}
	if r.opts.Log != nil {
		r.opts.Log(e)
	}
	return f
}

func zombie(st procStat) bool { return st.State == 'Z' || st.State == 'X' }

func why(st procStat) string {
	if st.Session == st.Pid {
		return "it leads a session of its own (setsid)"
	}
	if st.Pgrp == st.Pid {
		return "it left its task's process group (setpgid), and the task has ended"
	}
	return "it outlived its task"
}

// reapKilled waits up to killWait on the pidfd for a killed process to
// die, reaps it, and closes f.
func (r *Reaper) reapKilled(f *os.File) {
	defer f.Close()
	f.SetReadDeadline(time.Now().Add(killWait))
	if reapPidfd(f, true) {
		r.reaped.Add(1)
	}
}

// reapPidfd reaps the child of pidfd f: at once if wait is false (it is a
// zombie), else once the poller says it has exited or f's deadline
// passed. It reports whether it reaped.
func reapPidfd(f *os.File, wait bool) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	reaped := false
	reap := func(fd uintptr) bool {
		var info unix.Siginfo
		werr := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
		reaped = werr == nil && info.Signo != 0
		return reaped || !wait || werr != nil && werr != unix.EINTR
	}
	if !wait {
		rc.Control(func(fd uintptr) { reap(fd) })
		return reaped
	}
	rc.Read(reap)
	return reaped
}

// heldPipe returns the task one of whose output pipes pid has open, or nil.
func (r *Reaper) heldPipe(pid int) *Task {
	r.mu.Lock()
	n := len(r.pipes)
	r.mu.Unlock()
	if n == 0 {
		return nil
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		link, err := os.Readlink(dir + name)
		if err != nil {
			continue
		}
		s, ok := strings.CutPrefix(link, "pipe:[")
		if !ok {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
		if err != nil {
			continue
		}
		r.mu.Lock()
		t := r.pipes[ino]
		r.mu.Unlock()
		if t != nil {
			return t
		}
	}
	return nil
}

// children lists this process's children: from the main thread's
// children file (all: every thread's), or, without CONFIG_PROC_CHILDREN,
// by a scan of /proc for our pid as parent.
func (r *Reaper) children(all bool) []int {
	if r.mainChildren == "" {
		return r.scanChildren()
	}
	if !all {
		return readChildren(r.mainChildren, nil)
	}
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return readChildren(r.mainChildren, nil)
	}
	tids, _ := d.Readdirnames(-1)
	d.Close()
	var pids []int
	for _, tid := range tids {
		pids = readChildren("/proc/self/task/"+tid+"/children", pids)
	}
	return pids
}

// readChildren appends the pids of a children file to pids.
func readChildren(path string, pids []int) []int {
	b, err := os.ReadFile(path)
	if err != nil {
		return pids
	}
	for _, f := range bytes.Fields(b) {
		if pid, err := strconv.Atoi(string(f)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (r *Reaper) scanChildren() []int {
	all, err := listPids()
	if err != nil {
		return nil
	}
	var pids []int
	for _, pid := range all {
		if st, err := readStat(pid); err == nil && st.PPid == r.self {
			pids = append(pids, pid)
		}
	}
	return pids
}
