package remote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/execmod/execmod/internal/acl"
	"github.com/execmod/execmod/module/internal/audit"
	"github.com/execmod/execmod/module/internal/request"
	"github.com/execmod/execmod/module/internal/task"
)

// Errors the HTTP layer maps to status codes.
var (
	ErrNotFound = errors.New("no such task")
	ErrBusy     = errors.New("too many tasks running and queued")
	ErrClosed   = errors.New("the module is shutting down")
	ErrFinished = errors.New("the task has already ended")
	ErrRunning  = errors.New("the task is still running")
)

// Service runs tasks, remembers them on disk and answers for them. Open
// starts it; Close kills what is running and must be called.
type Service struct {
	p   Params
	dir string
	env []string // the base environment of every task
	log *slog.Logger

	acls  *acl.ACLs  // nil: everything is allowed
	audit *audit.Log // <dir>/audit.jsonl

	mu      sync.Mutex
	tasks   map[string]*entry
	byPid   map[int]string // pid -> newest task with it
	byKey   map[string]string
	running int
	queue   []*entry
	closed  bool
	stats   stats

	wg       sync.WaitGroup // task watchers and the janitor
	stopJan  chan struct{}
	janitorC chan struct{} // pokes the janitor (max_tasks exceeded)
}

// entry is a task in memory. rec is guarded by Service.mu; done is closed
// once the task has ended and its final record is on disk.
type entry struct {
	rec    *record
	t      *task.Task // while running
	env    []string   // while queued: the environment to start with
	stdin  []byte
	done   chan struct{}
	start  chan struct{} // closed when it leaves the queue (started or not)
	cancel bool          // killed while queued
}

type stats struct {
	started, finished, failedToStart, rejectedBusy, lost int64
	byState                                              map[State]int64
}

// Option configures Open.
type Option func(*Service)

// WithACLs makes the service authorize every request against a (nil
// allows everything, as without the option).
func WithACLs(a *acl.ACLs) Option { return func(s *Service) { s.acls = a } }

// Open loads the tasks under dir (creating it if needed), opens the audit
// log <dir>/audit.jsonl, marks tasks that were running when the module
// last stopped as lost (killing what is left of their process groups),
// and starts the janitor that enforces retention. env is the environment
// every task starts from.
func Open(dir string, p Params, env []string, log *slog.Logger, opts ...Option) (*Service, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tasks"), 0o700); err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	s := &Service{
		p: p, dir: dir, env: env, log: log,
		tasks: map[string]*entry{}, byPid: map[int]string{}, byKey: map[string]string{},
		stopJan: make(chan struct{}), janitorC: make(chan struct{}, 1),
		stats: stats{byState: map[State]int64{}},
	}
	for _, o := range opts {
		o(s)
	}
	a, err := audit.Open(filepath.Join(dir, audit.FileName), log)
	if err != nil {
		return nil, err
	}
	s.audit = a
	if err := s.recover(); err != nil {
		a.Close()
		return nil, err
	}
	s.evict(time.Now())
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// recover loads every task record; a task that was queued or running is
// lost: its leftover processes are killed and its partial output kept.
func (s *Service) recover() error {
	ents, err := os.ReadDir(filepath.Join(s.dir, "tasks"))
	if err != nil {
		return fmt.Errorf("remote: %w", err)
	}
	for _, de := range ents {
		if !de.IsDir() || !validID(de.Name()) {
			continue
		}
		dir := filepath.Join(s.dir, "tasks", de.Name())
		rec, err := load(dir)
		if err != nil {
			s.log.Warn("skipping an unreadable task record", "dir", dir, "error", err)
			continue
		}
		if !rec.State.Final() {
			killed := 0
			if rec.Pgid > 0 {
				killed, _ = task.KillGroup(rec.Pgid, rec.StartTicks)
			}
			now := time.Now().UTC()
			prev := rec.State
			rec.State, rec.EndedAt = Lost, &now
			rec.Error = fmt.Sprintf("the module stopped while the task was %s; %d leftover process(es) of its group were killed when it restarted; partial output is kept", prev, killed)
			if err := s.save(rec); err != nil {
				return err
			}
			s.stats.lost++
			s.log.Warn("task lost: the module stopped while it ran", "id", rec.ID, "pid", rec.Pid, "killed_leftovers", killed)
			s.auditEnd(*rec, 0, 0)
		}
		e := &entry{rec: rec, done: make(chan struct{}), start: make(chan struct{})}
		close(e.done)
		close(e.start)
		s.index(e)
	}
	return nil
}

// index adds e to the maps; ids sort by creation, so the newest task with
// a pid wins.
func (s *Service) index(e *entry) {
	s.tasks[e.rec.ID] = e
	if e.rec.Pid > 0 {
		if cur, ok := s.byPid[e.rec.Pid]; !ok || cur < e.rec.ID {
			s.byPid[e.rec.Pid] = e.rec.ID
		}
	}
	if e.rec.IdempotencyKey != "" {
		s.byKey[e.rec.IdempotencyKey] = e.rec.ID
	}
}

// Submit starts cmd now, or queues it when max_concurrent tasks are
// running (ErrBusy when the queue is full too). A command that cannot start
// is an error of class *task.StartError and leaves nothing behind. With an
// idempotency key already used, it returns that task and replayed=true.
func (s *Service) Submit(cmd request.Command, principal string) (rec record, replayed bool, err error) {
	now := time.Now().UTC()
	timeout := cmp.Or(cmd.Timeout, s.p.DefaultTimeout)
	grace := cmd.Grace
	if grace == 0 {
		grace = s.p.KillGrace
	}
	r := &record{
		Version: recordVersion, ID: newID(now), State: Queued,
		Command: cmd.Path, Arguments: cmd.Args, Shell: cmd.Shell, Cwd: cmd.Cwd, User: cmd.User,
		EnvKeys: slices.Sorted(maps.Keys(cmd.Env)), Labels: cmd.Labels, IdempotencyKey: cmd.IdempotencyKey,
		Principal: principal, TimeoutMs: timeout.Milliseconds(), GraceMs: grace.Milliseconds(), CreatedAt: now,
	}
	e := &entry{rec: r, env: s.taskEnv(cmd.Env), stdin: cmd.Stdin, done: make(chan struct{}), start: make(chan struct{})}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return record{}, false, ErrClosed
	case cmd.IdempotencyKey != "" && s.byKey[cmd.IdempotencyKey] != "":
		return *s.tasks[s.byKey[cmd.IdempotencyKey]].rec, true, nil
	case s.running >= s.p.MaxConcurrent && len(s.queue) >= s.p.MaxQueued:
		s.stats.rejectedBusy++
		return record{}, false, ErrBusy
	}
	if err := os.MkdirAll(s.taskDir(r.ID), 0o700); err != nil {
		return record{}, false, fmt.Errorf("remote: %w", err)
	}
	if s.running < s.p.MaxConcurrent {
		if err := s.startLocked(e); err != nil {
			os.RemoveAll(s.taskDir(r.ID))
			return record{}, false, err
		}
	} else {
		if err := s.save(r); err != nil {
			os.RemoveAll(s.taskDir(r.ID))
			return record{}, false, err
		}
		s.queue = append(s.queue, e)
	}
	s.index(e)
	return *r, false, nil
}

// taskEnv is the base environment with the request's variables over it.
func (s *Service) taskEnv(extra map[string]string) []string {
	env := slices.Clone(s.env)
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
		env = append(env, k+"="+extra[k])
	}
	return env
}

// startLocked starts e's process and its watcher. s.mu is held.
func (s *Service) startLocked(e *entry) error {
	r := e.rec
	t, err := task.Start(task.Spec{
		Path: r.Command, Args: r.Arguments, Env: e.env, Dir: r.Cwd, User: r.User, Stdin: e.stdin,
		Timeout: time.Duration(r.TimeoutMs) * time.Millisecond, Grace: time.Duration(r.GraceMs) * time.Millisecond,
		OutputDir: s.taskDir(r.ID), MaxOutput: s.p.MaxOutput,
	})
	if err != nil {
		return err
	}
	started := time.Now().UTC()
	r.State, r.Pid, r.Pgid, r.StartTicks, r.StartedAt = Running, t.Pid(), t.Pgid(), t.StartTicks(), &started
	e.t, e.env, e.stdin = t, nil, nil
	if err := s.save(r); err != nil {
		// Not on disk, so it could outlive a crash unrecorded: stop it.
		t.Kill()
		_, _ = t.Wait(context.Background())
		return err
	}
	close(e.start)
	s.running++
	s.stats.started++
	s.wg.Add(1)
	go s.watch(e, t)
	return nil
}

// watch waits for a task to end, persists its result, then reports it.
func (s *Service) watch(e *entry, t *task.Task) {
	defer s.wg.Done()
	res, _ := t.Wait(context.Background())

	s.mu.Lock()
	r := *e.rec
	s.mu.Unlock()
	finish(&r, res)
	if err := s.save(&r); err != nil {
		s.log.Error("could not persist a task's result; it is reported but will not survive a restart", "id", r.ID, "error", err)
	}
	s.auditEnd(r, t.Stdout().Info().Total, t.Stderr().Info().Total)

	s.mu.Lock()
	e.rec, e.t = &r, nil // from now on its output is read from disk
	s.running--
	s.stats.finished++
	s.stats.byState[r.State]++
	s.startQueuedLocked()
	s.mu.Unlock()
	close(e.done)
	if s.overCapacity() {
		select {
		case s.janitorC <- struct{}{}:
		default:
		}
	}
}

// finish fills in how the task ended.
func finish(r *record, res task.Result) {
	ended := res.EndedAt.UTC()
	r.EndedAt = &ended
	r.Result = &result{
		ExitCode: res.ExitCode, Signaled: res.Signaled, TimedOut: res.TimedOut, Killed: res.Killed,
		KillEscalated: res.KillEscalated, OutputCut: res.OutputCut,
		DurationMs: res.EndedAt.Sub(res.StartedAt).Milliseconds(),
		UserMs:     res.UserCPU.Milliseconds(), SysMs: res.SysCPU.Milliseconds(), MaxRssKiB: res.MaxRSS >> 10,
	}
	if res.Signaled {
		r.Result.Signal, r.Result.SignalNumber = request.SignalName(res.Signal), int(res.Signal)
	}
	switch {
	case res.TimedOut:
		r.State = TimedOut
	case res.Killed:
		r.State = Killed
	case res.Signaled:
		r.State = Signaled
	default:
		r.State = Exited
	}
}

// startQueuedLocked starts queued tasks while there is room. s.mu is held.
func (s *Service) startQueuedLocked() {
	for s.running < s.p.MaxConcurrent && len(s.queue) > 0 && !s.closed {
		e := s.queue[0]
		s.queue = s.queue[1:]
		if err := s.startLocked(e); err != nil {
			now := time.Now().UTC()
			e.rec.State, e.rec.EndedAt, e.rec.Error = FailedToStart, &now, err.Error()
			_ = s.save(e.rec)
			s.auditEnd(*e.rec, 0, 0)
			s.stats.failedToStart++
			close(e.start)
			close(e.done)
		}
	}
}

// overCapacity reports whether more finished tasks are kept than max_tasks.
func (s *Service) overCapacity() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks)-s.running-len(s.queue) > s.p.MaxTasks
}

// janitor enforces retention: every minute, and when max_tasks is passed.
func (s *Service) janitor() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-s.stopJan:
			return
		case <-tick.C:
		case <-s.janitorC:
		}
		s.evict(time.Now())
	}
}

// evict removes finished tasks older than retention, then the oldest
// finished ones beyond max_tasks, with their files. Running and queued
// tasks are never removed.
func (s *Service) evict(now time.Time) {
	s.mu.Lock()
	var finished []*entry
	for _, e := range s.tasks {
		if e.rec.State.Final() {
			finished = append(finished, e)
		}
	}
	slices.SortFunc(finished, func(a, b *entry) int { return strings.Compare(a.rec.ID, b.rec.ID) })
	var gone []string
	for i, e := range finished {
		ended := e.rec.CreatedAt
		if e.rec.EndedAt != nil {
			ended = *e.rec.EndedAt
		}
		if now.Sub(ended) >= s.p.Retention || len(finished)-i > s.p.MaxTasks {
			gone = append(gone, e.rec.ID)
			s.forgetLocked(e)
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		if err := os.RemoveAll(s.taskDir(id)); err != nil {
			s.log.Warn("could not remove an expired task's files", "id", id, "error", err)
		}
	}
	if len(gone) > 0 {
		s.log.Debug("expired finished tasks", "count", len(gone))
	}
}

func (s *Service) forgetLocked(e *entry) {
	delete(s.tasks, e.rec.ID)
	if s.byPid[e.rec.Pid] == e.rec.ID {
		delete(s.byPid, e.rec.Pid)
	}
	if e.rec.IdempotencyKey != "" && s.byKey[e.rec.IdempotencyKey] == e.rec.ID {
		delete(s.byKey, e.rec.IdempotencyKey)
	}
}

// lookup returns the entry for id.
func (s *Service) lookup(id string) (*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tasks[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrNotFound, id)
	}
	return e, nil
}

// Get returns a task's record now.
func (s *Service) Get(id string) (record, error) {
	e, err := s.lookup(id)
	if err != nil {
		return record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return *e.rec, nil
}

// ByPid returns the id of the newest task with pid (pids are reused).
func (s *Service) ByPid(pid int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byPid[pid]
	if !ok {
		return "", fmt.Errorf("%w with pid %d", ErrNotFound, pid)
	}
	return id, nil
}

// Pids lists the pids of the tasks the module remembers, ascending.
func (s *Service) Pids() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.byPid))
}

// WaitStarted blocks until the task has left the queue or ctx is done.
func (s *Service) WaitStarted(ctx context.Context, id string) (record, error) {
	e, err := s.lookup(id)
	if err != nil {
		return record{}, err
	}
	select {
	case <-e.start:
	case <-ctx.Done():
	}
	return s.Get(id)
}

// Wait blocks until the task has ended (and its result is on disk), d has
// passed or ctx is done, and returns the record then.
func (s *Service) Wait(ctx context.Context, id string, d time.Duration) (record, error) {
	e, err := s.lookup(id)
	if err != nil {
		return record{}, err
	}
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-e.done:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	return s.Get(id)
}

// Filter selects tasks for List.
type Filter struct {
	State  State
	Labels map[string]string
	After  string // cursor: ids after this one
	Limit  int
	// Visible, when set, hides the tasks for which it is false (the
	// principal may not view them). It runs with the service locked.
	Visible func(*record) bool
}

// List returns the tasks that match f, oldest first, and the cursor of the
// next page ("" when there is none).
func (s *Service) List(f Filter) ([]record, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := slices.Sorted(maps.Keys(s.tasks))
	var out []record
	for _, id := range ids {
		if id <= f.After {
			continue
		}
		r := s.tasks[id].rec
		if f.State != "" && r.State != f.State {
			continue
		}
		if f.Visible != nil && !f.Visible(r) {
			continue
		}
		match := true
		for k, v := range f.Labels {
			if r.Labels[k] != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		if len(out) == f.Limit {
			return out, out[len(out)-1].ID
		}
		out = append(out, *r)
	}
	return out, ""
}

// Signal sends sig to a running task's group or leader.
func (s *Service) Signal(id string, sig syscall.Signal, scope task.Scope) error {
	e, err := s.lookup(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	t := e.t
	final := e.rec.State.Final()
	s.mu.Unlock()
	if t == nil || final {
		return fmt.Errorf("task %s: %w", id, ErrFinished)
	}
	if err := t.Signal(sig, scope); err != nil {
		if errors.Is(err, task.ErrEnded) {
			return fmt.Errorf("task %s: %w", id, ErrFinished)
		}
		return err
	}
	return nil
}

// Kill stops a task: a queued one never starts; a running one gets
// SIGTERM, then SIGKILL after its grace period. It returns at once.
func (s *Service) Kill(id string) error {
	e, err := s.lookup(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case e.rec.State.Final():
		return fmt.Errorf("task %s: %w", id, ErrFinished)
	case e.t != nil:
		go e.t.Kill()
	default: // queued
		s.queue = slices.DeleteFunc(s.queue, func(q *entry) bool { return q == e })
		now := time.Now().UTC()
		e.rec.State, e.rec.EndedAt, e.rec.Error = Killed, &now, "killed while queued; it never started"
		_ = s.save(e.rec)
		s.auditEnd(*e.rec, 0, 0)
		close(e.start)
		close(e.done)
	}
	return nil
}

// Delete purges a finished task and its files.
func (s *Service) Delete(id string) error {
	e, err := s.lookup(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if !e.rec.State.Final() {
		s.mu.Unlock()
		return fmt.Errorf("task %s: %w", id, ErrRunning)
	}
	s.forgetLocked(e)
	s.mu.Unlock()
	return os.RemoveAll(s.taskDir(id))
}

// Output returns one of a task's output streams ("stdout" or "stderr"):
// live while it runs, from disk once it has ended.
func (s *Service) Output(id, stream string) (*task.Output, error) {
	e, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	t := e.t
	state := e.rec.State
	s.mu.Unlock()
	switch {
	case t != nil && stream == "stdout":
		return t.Stdout(), nil
	case t != nil:
		return t.Stderr(), nil
	case state == Queued || state == FailedToStart || (state == Killed && e.rec.Pid == 0):
		return nil, nil // never ran: no output
	}
	o, err := task.OpenOutput(s.taskDir(id), stream)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return o, err
}

// Counts reports the service's figures for the host's metrics.
func (s *Service) Counts() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]float64{
		"tasks_running":         float64(s.running),
		"tasks_queued":          float64(len(s.queue)),
		"tasks_retained":        float64(len(s.tasks)),
		"tasks_started":         float64(s.stats.started),
		"tasks_finished":        float64(s.stats.finished),
		"tasks_failed_to_start": float64(s.stats.failedToStart),
		"tasks_rejected_busy":   float64(s.stats.rejectedBusy),
		"tasks_lost":            float64(s.stats.lost),
	}
	for st, n := range s.stats.byState {
		m["tasks_"+string(st)] = float64(n)
	}
	return m
}

// Close stops accepting tasks, kills the running ones (SIGTERM, grace,
// SIGKILL) and waits until their results are on disk. Queued tasks are
// marked killed. Safe to call twice.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, e := range s.queue {
		now := time.Now().UTC()
		e.rec.State, e.rec.EndedAt, e.rec.Error = Killed, &now, "the module stopped before it started"
		_ = s.save(e.rec)
		s.auditEnd(*e.rec, 0, 0)
		close(e.start)
		close(e.done)
	}
	s.queue = nil
	var running []*task.Task
	for _, e := range s.tasks {
		if e.t != nil && !e.rec.State.Final() {
			running = append(running, e.t)
		}
	}
	s.mu.Unlock()
	for _, t := range running {
		go t.Kill()
	}
	close(s.stopJan)
	s.wg.Wait()
	return s.audit.Close()
}
