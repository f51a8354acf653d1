package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for the output pipes (F_SETPIPE_SZ); the
// kernel may refuse it (pipe-max-size), which only costs throughput.
const pipeSize = 1 << 20

// readBufSize is the fixed per-stream buffer between a pipe and its spool.
const readBufSize = 256 << 10

// Scope says which processes Signal reaches.
type Scope int

const (
	Group  Scope = iota // the whole process group (the zero value)
	Leader              // the leader process only
)

// Result is how a task ended.
type Result struct {
	ExitCode      int            // exit status, or the signal number when Signaled
	Signaled      bool           // the leader was ended by a signal
	Signal        syscall.Signal // 0 unless Signaled
	TimedOut      bool           // ended because Timeout passed
	Killed        bool           // ended because Kill was called
	KillEscalated bool           // SIGKILL was needed after the grace period
	// OutputCut says a process that left the group held the output
	// pipes open, so that later output was lost: without a Reaper, they
	// were still open when the drain bound passed and were closed; with
	// one, a process holding them was killed as an escapee.
	OutputCut          bool
	StartedAt, EndedAt time.Time
	UserCPU, SysCPU    time.Duration // from the leader's rusage (it and its reaped descendants)
	// MaxRSS is the command's peak resident set in bytes (the leader's
	// or a reaped descendant's), or 0 when it cannot be told: Linux
	// counts, in a process's maximum RSS, the memory of the process that
	// forked it until the exec, so the kernel's figure is at least this
	// service's own peak. When it is above the service's peak (read at
	// the end, see selfPeakRSS) it is the command's own; otherwise the
	// command used at most MaxRSSBound and MaxRSS is 0.
	MaxRSS int64
	// MaxRSSBound is the kernel's figure (ru_maxrss, in bytes): an upper
	// bound on the command's peak resident set.
	MaxRSSBound int64
}

// Task is a running or finished command. All methods are safe for
// concurrent use.
type Task struct {
	cmd        *exec.Cmd
	pid        int
	startTicks uint64
	spec       Spec
	startedAt  time.Time
	stdout     *Output
	stderr     *Output
	reaper     *Reaper  // nil: none
	pipeInos   []uint64 // the output pipes' inodes, registered with reaper
	// outputCut is set by the reaper when it killed a process that held
	// the output pipes.
	outputCut atomic.Bool

	killReq  chan struct{} // closed by the first Kill
	killOnce sync.Once
	exited   chan struct{} // closed when the leader has exited (not yet reaped)
	done     chan struct{} // closed when result and err are final
	endedAt  time.Time     // set before exited is closed
	// reapedEarly and earlyErr are set before exited is closed when
	// waitid failed and watchExit had to reap the leader itself.
	reapedEarly bool
	earlyErr    error

	mu           sync.Mutex
	leaderExited bool // set before reaping; from then on the pgid is not signalled
	timedOut     bool
	killed       bool
	escalated    bool

	result Result // final once done is closed
	err    error
}

// Start starts spec and returns once the command runs. On error nothing
// was started and nothing is left open; the error is a *StartError. It is
// Prepare followed by Prepared.Start.
func Start(spec Spec) (*Task, error) {
	p, err := Prepare(spec)
	if err != nil {
		return nil, err
	}
	return p.Start()
}

// Prepared is a Spec that passed the checks made before forking: the
// working directory is a directory, the user exists (and may be switched
// to), and the executable resolves to a regular file with an execute bit
// for that user. It holds no resource; it may be started later, once.
type Prepared struct {
	spec Spec
	path string // the resolved executable
	cred *syscall.Credential
}

// Prepare checks spec without starting anything: what Start would reject
// before forking is rejected here, with the same *StartError. A queue
// calls it when a task is accepted, so that a command that cannot start is
// refused then, not when its turn comes. What can still fail at Start is
// only what changed in between (the file was removed, the directory
// renamed) or what only exec can tell (a bad interpreter line, ENOEXEC).
func Prepare(spec Spec) (*Prepared, error) {
	s, err := normalize(spec)
	if err != nil {
		return nil, err
	}
	if err := checkDir(s.Dir); err != nil {
		return nil, err
	}
	cred, err := resolveUser(s.User, os.Geteuid())
	if err != nil {
		return nil, err
	}
	path, err := resolvePath(s, cred)
	if err != nil {
		return nil, err
	}
	return &Prepared{spec: s, path: path, cred: cred}, nil
}

// Path is the executable that Start will run (absolute).
func (p *Prepared) Path() string { return p.path }

// Start starts the prepared command, as Start does, without repeating the
// checks: a change since Prepare shows as the exec's own error, mapped to
// the same classes.
func (p *Prepared) Start() (*Task, error) { return launch(p.spec, p.path, p.cred) }

// streams are the parent's ends of the command's standard files.
type streams struct {
	stdin                  *os.File // nil: /dev/null
	outR, outW, errR, errW *os.File
}

func (st *streams) closeChildEnds() {
	for _, f := range []*os.File{st.stdin, st.outW, st.errW} {
		if f != nil {
			f.Close()
		}
	}
}

func (st *streams) closeAll() {
	st.closeChildEnds()
	for _, f := range []*os.File{st.outR, st.errR} {
		if f != nil {
			f.Close()
		}
	}
}

// launch creates the spool and pipes and starts the command.
func launch(s Spec, path string, cred *syscall.Credential) (*Task, error) {
	stdout, err := newOutput(s.OutputDir, "stdout", s.MaxOutput)
	if err != nil {
		return nil, &StartError{Op: "spool", Err: fmt.Errorf("output spool: %w", err)}
	}
	stderr, err := newOutput(s.OutputDir, "stderr", s.MaxOutput)
	if err != nil {
		stdout.abort()
		return nil, &StartError{Op: "spool", Err: fmt.Errorf("output spool: %w", err)}
	}
	st, err := openStreams(s.Stdin)
	if err != nil {
		stdout.abort()
		stderr.abort()
		return nil, &StartError{Op: "pipe", Err: err}
	}
	// A session of its own (and so a process group): what it starts
	// can leave the session only for a new one, which tells its
	// descendants from anything else (see Reaper).
	cmd := &exec.Cmd{
		Path: path, Args: s.Args, Env: s.Env, Dir: s.Dir,
		Stdout: st.outW, Stderr: st.errW,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL, Credential: cred},
	}
	if st.stdin != nil {
		cmd.Stdin = st.stdin
	}
	t := &Task{
		cmd: cmd, spec: s, reaper: s.Reaper,
		stdout: stdout, stderr: stderr,
		killReq: make(chan struct{}), exited: make(chan struct{}), done: make(chan struct{}),
	}
	startCmd := func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		t.pid = cmd.Process.Pid
		return t.pid, nil
	}
	if t.reaper != nil {
		t.reaper.watchPipes(t, st.outW, st.errW)
		err = t.reaper.startLeader(t, startCmd)
	} else {
		_, err = startCmd()
	}
	if err != nil {
		// os/exec has reaped the child of a failed exec already.
		if t.reaper != nil {
			t.reaper.forgetPipes(t)
		}
		st.closeAll()
		stdout.abort()
		stderr.abort()
		return nil, execError(err, s, path)
	}
	t.startedAt = time.Now()
	st.closeChildEnds()
	if stat, err := readStat(t.pid); err == nil {
		t.startTicks = stat.StartTime
	}
	if s.Sentinel != nil {
		if err := s.Sentinel.Watch(t.pid, t.startTicks); err != nil {
			// Unsupervised, it could outlive a crash of ours: undo it.
			unix.Kill(-t.pid, unix.SIGKILL)
			_ = t.waitLeader()
			if t.reaper != nil {
				t.reaper.taskSwept(t)
				t.reaper.forgetPipes(t)
			}
			st.closeAll()
			stdout.abort()
			stderr.abort()
			return nil, &StartError{Op: "sentinel", Err: err}
		}
	}
	go t.run(st.outR, st.errR)
	return t, nil
}

// openStreams makes the output pipes and the stdin file: a sealed-off
// memfd holding stdin, so no goroutine has to feed it and a command that
// never reads it cannot block anything.
func openStreams(stdin []byte) (*streams, error) {
	st := &streams{}
	var err error
	if st.outR, st.outW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	if st.errR, st.errW, err = os.Pipe(); err != nil {
		st.closeAll()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	growPipe(st.outR)
	growPipe(st.errR)
	if stdin != nil {
		if st.stdin, err = memFile("stdin", stdin); err != nil {
			st.closeAll()
			return nil, fmt.Errorf("stdin: %w", err)
		}
	}
	return st, nil
}

// growPipe asks for a pipeSize pipe, without touching the file's
// non-blocking mode (f.Fd would make it blocking and lose deadlines).
func growPipe(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
}

// memFile returns an anonymous in-memory file holding b, positioned at 0.
func memFile(name string, b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// run supervises the task to its end: it pumps the output, enforces the
// timeout and Kill, kills the group when the leader exits, reaps the
// leader, bounds the drain and publishes the result.
func (t *Task) run(outR, errR *os.File) {
	var pumps sync.WaitGroup
	var cut [2]bool
	for i, p := range []struct {
		r *os.File
		o *Output
	}{{outR, t.stdout}, {errR, t.stderr}} {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			cut[i] = pump(p.r, p.o)
		}()
	}
	go t.watchExit()
	t.control()
	state, err := t.reap()
	if t.reaper != nil {
		// The leader's orphans are ours by now: none may outlive the
		// task, and the output may end before the drain bound.
		t.reaper.sweep(false)
		t.reaper.taskSwept(t)
	}
	deadline := time.Now().Add(t.spec.Drain)
	outR.SetReadDeadline(deadline)
	errR.SetReadDeadline(deadline)
	pumps.Wait()
	if t.reaper != nil {
		t.reaper.forgetPipes(t)
	}
	t.finish(state, err, cut[0] || cut[1] || t.outputCut.Load())
}

// waitLeader reaps the leader (os/exec's Wait), then unregisters it from
// the reaper: in that order, so that no sweep takes its zombie for an
// orphan's.
func (t *Task) waitLeader() error {
	err := t.cmd.Wait()
	if t.reaper != nil {
		t.reaper.leaderReaped(t)
	}
	return err
}

// watchExit waits, without reaping, until the leader has exited, so that
// its zombie keeps the pid and the group id from being reused until the
// group has been killed. If waitid fails it falls back to reaping.
func (t *Task) watchExit() {
	for !awaitExit(t.pid) {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, t.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			t.reapedEarly = true
			t.earlyErr = t.waitLeader()
			break
		}
	}
	t.endedAt = time.Now()
	close(t.exited)
}

// awaitExit returns once the child pid has exited, without reaping it. It
// waits on a pidfd through the runtime's poller, so no OS thread (and, with
// few Ps, no P) is held by a blocking wait, as it is in waitid(2): that
// held P delayed the rest of the module by up to the scheduler's sysmon
// interval. It returns false, having waited for nothing, when the pidfd
// cannot be had; the caller then waits in waitid.
func awaitExit(pid int) bool {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd") // non-blocking: the poller watches it
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	exited := false
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		// P_PIDFD = 3; WNOHANG: has it exited yet? (readable means it has)
		werr := unix.Waitid(3, int(fd), &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
		exited = werr == nil && info.Signo != 0
		return exited || (werr != nil && werr != unix.EINTR)
	})
	return err == nil && exited
}

// control enforces Timeout and Kill until the leader has exited.
func (t *Task) control() {
	var timeout <-chan time.Time
	if t.spec.Timeout > 0 {
		timer := time.NewTimer(t.spec.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-t.exited:
	case <-timeout:
		t.terminate(&t.timedOut)
	case <-t.killReq:
		t.terminate(&t.killed)
	}
	<-t.exited
}

// terminate sends SIGTERM to the group, waits Grace for the leader, then
// sends SIGKILL to the group. reason is set (under mu) if the leader was
// still running.
func (t *Task) terminate(reason *bool) {
	t.mu.Lock()
	if t.leaderExited {
		t.mu.Unlock()
		return
	}
	*reason = true
	t.signalGroup(unix.SIGTERM)
	t.mu.Unlock()
	grace := time.NewTimer(t.spec.Grace)
	defer grace.Stop()
	select {
	case <-t.exited:
		return
	case <-grace.C:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.exited:
	default:
		t.signalGroup(unix.SIGKILL)
		t.escalated = true
	}
}

// signalGroup sends sig to the task's process group. Callers hold mu and
// have checked that the leader is not reaped yet.
func (t *Task) signalGroup(sig syscall.Signal) error {
	return unix.Kill(-t.pid, sig)
}

// reap kills what remains of the group while the leader's zombie still
// holds the group id, then reaps the leader. Should the leader have been
// reaped already, the group is found by scanning /proc instead.
func (t *Task) reap() (*os.ProcessState, error) {
	t.mu.Lock()
	t.leaderExited = true
	if !t.reapedEarly {
		t.signalGroup(unix.SIGKILL)
	}
	t.mu.Unlock()
	err := t.earlyErr
	if t.reapedEarly {
		KillGroup(t.pid, t.startTicks)
	} else {
		err = t.waitLeader()
	}
	if t.spec.Sentinel != nil {
		// The group was killed while the leader's zombie held its id;
		// should this fail, the sentinel's start-time check still keeps
		// it off a reused group.
		_ = t.spec.Sentinel.Forget(t.pid)
	}
	if err != nil && !isExitError(err) {
		return t.cmd.ProcessState, fmt.Errorf("task: wait: %w", err)
	}
	return t.cmd.ProcessState, nil
}

// pump copies r into o until end of file or r's deadline, then closes
// both. It reports whether the deadline cut the output. It moves the data
// with splice(2) (one copy, no user-space buffer) while it can, and with a
// fixed buffer otherwise.
func pump(r *os.File, o *Output) (cut bool) {
	// The first bytes are read, not spliced, so that a silent stream
	// never creates its spool files (splicing needs the file first).
	first := make([]byte, 4096)
	n, err := r.Read(first)
	if n > 0 {
		o.write(first[:n])
	}
	switch {
	case err == io.EOF:
		err = nil
	case err == nil:
		err = spliceAll(r, o)
		if errors.Is(err, errNoSplice) {
			err = copyAll(r, o)
		}
	}
	r.Close()
	o.close()
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// errNoSplice says splice(2) cannot be used; copyAll takes over.
var errNoSplice = errors.New("splice unavailable")

// spliceAll splices r into o until end of file (nil), r's deadline, or
// errNoSplice when splicing cannot go on (not supported, or the spool
// failed and the rest must be drained and discarded).
func spliceAll(r *os.File, o *Output) error {
	rc, err := r.SyscallConn()
	if err != nil {
		return errNoSplice
	}
	for {
		var n int
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			n, serr = o.splice(int(fd))
			return serr != unix.EAGAIN
		})
		switch {
		case err != nil:
			return err
		case serr != nil:
			return errNoSplice
		case n == 0:
			return nil
		}
	}
}

// copyAll copies r into o through a fixed buffer until end of file or an
// error (r's deadline).
func copyAll(r *os.File, o *Output) error {
	buf := make([]byte, readBufSize)
	for {
		n, err := r.Read(buf)
		o.write(buf[:n])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// finish publishes the result and closes done.
func (t *Task) finish(state *os.ProcessState, err error, cut bool) {
	t.mu.Lock()
	r := Result{
		TimedOut: t.timedOut, Killed: t.killed, KillEscalated: t.escalated, OutputCut: cut,
		StartedAt: t.startedAt, EndedAt: t.endedAt,
	}
	t.mu.Unlock()
	if state != nil {
		if ws, ok := state.Sys().(syscall.WaitStatus); ok {
			r.ExitCode = ws.ExitStatus()
			if ws.Signaled() {
				r.Signaled, r.Signal, r.ExitCode = true, ws.Signal(), int(ws.Signal())
			}
		}
		if ru, ok := state.SysUsage().(*syscall.Rusage); ok {
			r.UserCPU = time.Duration(ru.Utime.Nano())
			r.SysCPU = time.Duration(ru.Stime.Nano())
			r.MaxRSSBound = ru.Maxrss * 1024
			if floor, err := selfPeakRSS(); err == nil && r.MaxRSSBound > floor {
				r.MaxRSS = r.MaxRSSBound
			}
		}
	}
	t.result, t.err = r, err
	close(t.done)
}

// Pid is the leader's process id.
func (t *Task) Pid() int { return t.pid }

// Pgid is the task's process group id (the leader's pid), which is also
// its session id.
func (t *Task) Pgid() int { return t.pid }

// StartTicks is the leader's start time in clock ticks after boot (field
// 22 of /proc/<pid>/stat), read at Start; with Pgid it recognises the
// group later despite pid reuse (see KillGroup). 0 if it could not be read.
func (t *Task) StartTicks() uint64 { return t.startTicks }

// Done is closed when the leader has been reaped, its group killed, and
// both output streams are complete.
func (t *Task) Done() <-chan struct{} { return t.done }

// Wait blocks until Done or until ctx ends (then it returns ctx.Err()).
// Safe to call many times, concurrently; all calls get the same Result.
// The error is nil for any exit status or signal; it is non-nil only if
// the leader could not be waited for.
func (t *Task) Wait(ctx context.Context) (Result, error) {
	select {
	case <-t.done:
		return t.result, t.err
	default:
	}
	select {
	case <-t.done:
		return t.result, t.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Signal sends sig to the process group (Group) or to the leader only
// (Leader). It returns ErrEnded once the leader has exited, never
// signalling a reused pid. It does not block.
func (t *Task) Signal(sig syscall.Signal, scope Scope) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.leaderExited {
		return ErrEnded
	}
	var err error
	switch scope {
	case Group:
		err = t.signalGroup(sig)
	case Leader:
		err = unix.Kill(t.pid, sig)
	default:
		return fmt.Errorf("task: signal: unknown scope %d", scope)
	}
	if err != nil {
		return fmt.Errorf("task: signal %v: %w", sig, err)
	}
	return nil
}

// Kill asks the task to end: SIGTERM to the group, then after Grace
// SIGKILL to the group; the Result says Killed. It returns at once (use
// Wait or Done to learn when the task has ended). Safe to call any number
// of times, also after the end, when it does nothing.
func (t *Task) Kill() {
	t.killOnce.Do(func() { close(t.killReq) })
}

// Stdout is the captured standard output.
func (t *Task) Stdout() *Output { return t.stdout }

// Stderr is the captured standard error.
func (t *Task) Stderr() *Output { return t.stderr }

// isExitError reports whether err is only a non-zero exit status.
func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
