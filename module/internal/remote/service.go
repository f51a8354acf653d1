// Package remote is the remote-execution module's service and HTTP API:
// it runs tasks (package task), keeps their records in a journal under the
// module's data directory (<work_dir>/modules/<name>, handed over by the
// host), authorizes and audits every request, and serves the seed's
// routes and the REST ones.
//
// # Files
//
//	<data dir>/tasks.jsonl        the task journal (see journal)
//	<data dir>/tasks/<id>/        a task's output spool, made at its first byte
//	<data dir>/audit.jsonl        the audit log (package audit)
//
// # Memory
//
// The service keeps a compact index entry per task (id, pid, state, end
// time, owner, labels, idempotency key and where its record is in the
// journal) in id order, which is creation order; full records of finished
// tasks are read from the journal when a request needs them. Only queued
// and running tasks have their full record in memory.
//
// # A full disk
//
// A result is reported only once its final record is in the journal (a
// write(2); the fsync follows in the background, see journal). When it
// cannot be written (the disk is full and the journal's reserve used up,
// an I/O error), the task is held back: the API keeps showing it queued
// or running, with persistError saying why and processEndedAt when its
// process has ended, and every waiter (?wait=, follow=true, the seed's
// pending answer) keeps waiting. The service retries the write every
// second and whenever it may have freed space (a purge, a compaction),
// logging the problem once, then every 30 seconds while it lasts, then
// when it is over. Should the module stop first, the journal still says
// the task was running, so it comes back lost, with its partial output:
// never with a result other than the one it would have reported.
//
// Output that cannot be stored is still read and counted: the stream
// then says so (storeError, and the range not stored); the final record
// keeps that account, which the spool cannot. A task whose audit line
// cannot be written is killed and its request answered 503 (nothing runs
// unaudited); its end line says so. An end line that cannot be written
// is retried like a result, without holding the result back: the audit
// log may lag behind, it does not lose the line.
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
	"runtime/debug"
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

// retryEvery is how often results held back by a failing journal are
// written again (see "A full disk").
const retryEvery = time.Second

// persistLogEvery is how often, while results are held back, the module
// says so again.
const persistLogEvery = 30 * time.Second

// maxAuditBacklog bounds the audit end lines waiting to be written again;
// beyond it they are dropped (each was logged, with its content, into the
// host's log when it failed).
const maxAuditBacklog = 4096

// Service runs tasks, remembers them on disk and answers for them. Open
// starts it; Close kills what is running and must be called.
type Service struct {
	p   Params
	dir string
	env []string // the base environment of every task
	log *slog.Logger

	acls     *acl.ACLs  // nil: everything is allowed
	audit    *audit.Log // <dir>/audit.jsonl
	sentinel *task.Sentinel
	journal  *journal
	ended    chan struct{} // closed: the done and start of every finished task

	mu      sync.Mutex
	tasks   map[string]*entry
	order   []*entry // by id (creation); entries marked gone are skipped
	gone    int      // entries of order marked gone
	byPid   map[int]*entry
	pidList []int // the keys of byPid, ascending
	byKey   map[string]*entry
	owners  map[string]string // interned principals
	live    int64             // journal bytes of the retained tasks' latest lines
	running int               // started, or slots reserved for a start
	queue   []*entry
	closed  bool
	lastID  string
	stats   stats
	pending []*entry // ended, their final record not written yet (see endLocked)
	plog    persistLog

	retryKick chan struct{} // buffered(1): space may have been freed, retry now

	auditMu      sync.Mutex
	auditBacklog []audit.Entry // end lines to write again

	wg       sync.WaitGroup // task watchers, the janitor and the retrier
	stopping chan struct{}  // closed by Close: the janitor and the retrier stop
}

// persistLog is what the service has said about results held back.
type persistLog struct {
	failing  bool
	loggedAt time.Time
	late     int // written late since the failure began
}

// entry is a task in the index. Its fields are guarded by Service.mu.
type entry struct {
	id        string
	state     State
	pid       int
	ended     time.Time // or the creation time when it never ran
	principal string
	key       string
	labels    map[string]string
	off       int64 // its latest journal line
	n         int32 // 0: not in the journal (its record is in run)
	gone      bool
	lossy     bool  // its record has Unstored (output it could not store)
	run       *live // while queued or running, and while its final record waits to be written
}

// live is what a queued or running task has in memory.
type live struct {
	rec     *record
	prep    *task.Prepared // while queued
	t       *task.Task     // while running
	done    chan struct{}  // closed once it has ended and its final record is written
	start   chan struct{}  // closed when it leaves the queue (started or not)
	audited chan struct{}  // closed once its run line is in the audit log (or failed)
	runErr  error          // set before audited is closed: the run line could not be written
	ending  *ending        // set when it has ended but its final record is not written yet
}

// ending is a task's final record waiting to be written (see endLocked).
type ending struct {
	rec     *record
	counted func() // with s.mu held, once it is written
	after   func() // then without s.mu
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

// WithSentinel makes every task's process group known to sn, which kills
// the groups left if the module dies (see task.Sentinel). The caller
// starts sn and closes it after Close.
func WithSentinel(sn *task.Sentinel) Option { return func(s *Service) { s.sentinel = sn } }

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
		p: p, dir: dir, env: env, log: log, ended: make(chan struct{}),
		tasks: map[string]*entry{}, byPid: map[int]*entry{}, byKey: map[string]*entry{}, owners: map[string]string{},
		stopping: make(chan struct{}), retryKick: make(chan struct{}, 1),
		stats: stats{byState: map[State]int64{}},
	}
	close(s.ended)
	for _, o := range opts {
		o(s)
	}
	a, err := audit.Open(filepath.Join(dir, audit.FileName), log)
	if err != nil {
		return nil, err
	}
	s.audit = a
	j, lines, err := openJournalReserve(dir, log, p.JournalReserve)
	if err != nil {
		a.Close()
		return nil, err
	}
	s.journal = j
	if err := s.recover(lines); err != nil {
		j.close()
		a.Close()
		return nil, err
	}
	s.evict(time.Now())
	// Loading made garbage in proportion to the journal; the index is
	// what stays. Give the rest back now rather than at the scavenger's
	// pace.
	debug.FreeOSMemory()
	s.wg.Add(2)
	go s.janitor()
	go s.retrier()
	return s, nil
}

// recover indexes the journal's lines and imports legacy records; a task
// that was queued or running is lost: its leftover processes are killed
// and its partial output kept.
func (s *Service) recover(lines []line) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	latest := map[string]line{}
	for _, l := range lines {
		latest[l.rec.ID] = l
	}
	imported, err := s.importLegacyLocked(latest)
	if err != nil {
		return err
	}
	ids := slices.Sorted(maps.Keys(latest))
	for _, id := range ids {
		l := latest[id]
		if l.rec.Purged {
			continue
		}
		e := &entry{id: id, off: l.off, n: l.n}
		s.describe(e, l.rec)
		s.tasks[id], s.order = e, append(s.order, e)
		s.live += int64(l.n)
		s.indexLocked(e)
		if !l.rec.State.Final() {
			s.markLostLocked(e, l.rec)
		}
	}
	if len(ids) > 0 {
		s.lastID = ids[len(ids)-1]
	}
	if imported > 0 {
		if err := s.journal.f.Sync(); err != nil {
			return fmt.Errorf("remote: %w", err)
		}
		for id, l := range latest {
			if l.rec.Purged {
				continue
			}
			if err := os.Remove(filepath.Join(s.taskDir(id), legacyName)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("could not remove an imported legacy task record", "id", id, "error", err)
			}
		}
		s.log.Info("imported the task records of an earlier release into the journal", "tasks", imported, "journal", s.journal.path)
	}
	return nil
}

// importLegacyLocked appends the records of earlier releases
// (<dir>/tasks/<id>/task.json) that the journal lacks and adds them to
// latest.
func (s *Service) importLegacyLocked(latest map[string]line) (int, error) {
	d, err := os.Open(filepath.Join(s.dir, "tasks"))
	if err != nil {
		return 0, fmt.Errorf("remote: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("remote: %w", err)
	}
	n := 0
	for _, id := range names {
		if !validID(id) {
			continue
		}
		rec, err := loadLegacy(s.taskDir(id))
		if errors.Is(err, os.ErrNotExist) {
			continue // a spool only
		}
		if err != nil {
			s.log.Warn("skipping an unreadable task record", "dir", s.taskDir(id), "error", err)
			continue
		}
		if _, ok := latest[id]; ok {
			continue // imported already; its file was not removed
		}
		b, err := encodeRecord(rec)
		if err != nil {
			return n, err
		}
		off, err := s.journal.append(b, true)
		if err != nil {
			return n, err
		}
		latest[id] = line{rec: rec, off: off, n: int32(len(b))}
		n++
	}
	return n, nil
}

// markLostLocked ends a task the module was running when it stopped. If
// the lost record cannot be written, the task is held back as any other
// (see endLocked): the journal still says running, so it is found lost
// again, the same way, next time.
func (s *Service) markLostLocked(e *entry, rec *record) {
	killed := 0
	if rec.Pgid > 0 {
		killed, _ = task.KillGroup(rec.Pgid, rec.StartTicks)
	}
	now := time.Now().UTC()
	final := *rec
	final.State, final.EndedAt = Lost, &now
	final.Error = fmt.Sprintf("the module stopped while the task was %s; %d leftover process(es) of its group were killed when it restarted; partial output is kept", rec.State, killed)
	s.log.Warn("task lost: the module stopped while it ran", "id", rec.ID, "pid", rec.Pid, "killed_leftovers", killed)
	lv := &live{rec: rec, done: make(chan struct{}), start: s.ended, audited: s.ended}
	e.run = lv
	after := func() {
		s.auditEnd(final, nil, 0, 0)
		close(lv.done)
	}
	if s.endLocked(e, &final, func() { s.stats.lost++ }, after) {
		after()
	}
}

// describe copies into e what the index keeps of rec.
func (s *Service) describe(e *entry, rec *record) {
	e.state, e.pid, e.key = rec.State, rec.Pid, rec.IdempotencyKey
	e.labels = rec.Labels
	if len(e.labels) == 0 {
		e.labels = nil
	}
	owner, ok := s.owners[rec.Principal]
	if !ok {
		owner = rec.Principal
		s.owners[owner] = owner
	}
	e.principal = owner
	e.ended = rec.CreatedAt
	if rec.EndedAt != nil {
		e.ended = *rec.EndedAt
	}
	e.lossy = len(rec.Unstored) > 0
}

// putLocked writes rec as e's latest journal line and, once it is
// written, updates the index (a failed write changes nothing). A final
// record is fsynced soon after, off the caller's path (see journal). s.mu
// is held.
func (s *Service) putLocked(e *entry, rec *record) error {
	b, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	off, err := s.journal.append(b, rec.State.Final())
	if err != nil {
		return err
	}
	s.describe(e, rec)
	s.live += int64(len(b)) - int64(e.n)
	e.off, e.n = off, int32(len(b))
	if rec.State.Final() {
		s.journal.requestSync()
	}
	return nil
}

// endLocked writes final, the record that ends e (e.run is set), and
// reports whether it was written. Written, the task has ended: e leaves
// memory (its record is read from the journal from now on), counted runs,
// and the caller runs after without s.mu (the audit's end line, waking
// the waiters). Not written, the task is held back (see "A full disk"):
// it keeps its state, with PersistError saying why, and the retrier
// writes the record later, then runs counted and after itself. Either
// way a result is reported only once it is in the journal. s.mu is held.
func (s *Service) endLocked(e *entry, final *record, counted, after func()) bool {
	err := s.putLocked(e, final)
	if err == nil {
		e.run = nil
		counted()
		return true
	}
	lv := e.run
	shown := *lv.rec
	shown.PersistError = "the task has ended, but its result is not reported until it is written to the task journal (retried every second): " + err.Error()
	if final.Result != nil {
		shown.ProcessEndedAt = final.EndedAt
	}
	lv.rec = &shown
	lv.ending = &ending{rec: final, counted: counted, after: after}
	s.pending = append(s.pending, e)
	if !s.plog.failing {
		s.plog.failing, s.plog.loggedAt, s.plog.late = true, time.Now(), 0
		s.log.Error("could not write a task's result to the journal: it is held back (still shown as not ended, with persistError) and written again every second until it is",
			"id", e.id, "error", err)
	}
	return false
}

// retrier writes the results held back (and the audit end lines that
// failed) every retryEvery, and when kicked, until Close.
func (s *Service) retrier() {
	defer s.wg.Done()
	tick := time.NewTicker(retryEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-s.retryKick:
		case <-tick.C:
		}
		s.retryPending()
	}
}

// kickRetry asks the retrier to try now: space may have been freed.
func (s *Service) kickRetry() {
	select {
	case s.retryKick <- struct{}{}:
	default:
	}
}

// retryPending writes what it can of the held-back results, in the order
// they ended, reports those it wrote, then retries the audit backlog.
func (s *Service) retryPending() {
	s.mu.Lock()
	var afters []func()
	var lastErr error
	kept := s.pending[:0]
	for _, e := range s.pending {
		en := e.run.ending
		if err := s.putLocked(e, en.rec); err != nil {
			lastErr = err
			kept = append(kept, e)
			continue
		}
		e.run = nil
		en.counted()
		afters = append(afters, en.after)
		s.plog.late++
	}
	clear(s.pending[len(kept):])
	s.pending = kept
	var expired []string
	if len(afters) > 0 {
		expired = s.trimLocked()
	}
	switch now := time.Now(); {
	case s.plog.failing && len(kept) == 0:
		s.plog.failing = false
		s.log.Info("the task journal can be written again: the results held back are written and reported", "results", s.plog.late)
	case s.plog.failing && now.Sub(s.plog.loggedAt) >= persistLogEvery:
		s.plog.loggedAt = now
		s.log.Warn("task results are still held back: the task journal cannot be written", "results", len(kept), "written_since", s.plog.late, "error", lastErr)
	}
	s.mu.Unlock()
	s.removeFiles(expired)
	for _, f := range afters {
		f()
	}
	s.retryAudit()
}

// insertLocked adds e to s.order in id order: at the end, unless a
// concurrent Submit with an older id is still on its way.
func (s *Service) insertLocked(e *entry) {
	i := len(s.order)
	for i > 0 && s.order[i-1].id > e.id {
		i--
	}
	s.order = slices.Insert(s.order, i, e)
}

// indexLocked adds e to the pid and key maps; the newest task with a pid
// wins.
func (s *Service) indexLocked(e *entry) {
	if e.pid > 0 {
		cur, ok := s.byPid[e.pid]
		if !ok {
			i, _ := slices.BinarySearch(s.pidList, e.pid)
			s.pidList = slices.Insert(s.pidList, i, e.pid)
		}
		if !ok || cur.id < e.id {
			s.byPid[e.pid] = e
		}
	}
	if e.key != "" {
		s.byKey[e.key] = e
	}
}

// forgetLocked removes e from the index (its journal line stays until a
// purge line or compaction).
func (s *Service) forgetLocked(e *entry) {
	if e.gone {
		return
	}
	e.gone = true
	s.gone++
	delete(s.tasks, e.id)
	s.live -= int64(e.n)
	if s.byPid[e.pid] == e {
		delete(s.byPid, e.pid)
		if i, ok := slices.BinarySearch(s.pidList, e.pid); ok {
			s.pidList = slices.Delete(s.pidList, i, i+1)
		}
	}
	if e.key != "" && s.byKey[e.key] == e {
		delete(s.byKey, e.key)
	}
	if s.gone > 1024 && s.gone > len(s.order)/2 {
		s.order = slices.DeleteFunc(s.order, func(e *entry) bool { return e.gone })
		s.gone = 0
	}
}

// purgeLocked writes e's purge line, then forgets it. If the line cannot
// be written e is kept (it would come back after a restart, its files
// gone).
func (s *Service) purgeLocked(e *entry) error {
	b, _ := encodeRecord(&record{Version: recordVersion, ID: e.id, Purged: true})
	if _, err := s.journal.append(b, true); err != nil {
		return err
	}
	s.forgetLocked(e)
	return nil
}

// newIDLocked returns a fresh task id that sorts after every earlier one.
func (s *Service) newIDLocked(now time.Time) string {
	id := newID(now)
	if id <= s.lastID {
		id = nextID(s.lastID)
	}
	s.lastID = id
	return id
}

// Submit checks cmd (the executable, working directory and user, as
// task.Prepare does) and starts it now, or queues it when max_concurrent
// tasks are running (ErrBusy when the queue is full too). A command that
// cannot start is an error of class *task.StartError and leaves nothing
// behind, whether it would have started or queued. With an idempotency key
// already used, it returns that task and replayed=true.
//
// accepted (nil: none) is called, on a goroutine of its own and while the
// task runs, with the record of a task Submit accepted (started or
// queued): the HTTP layer writes the run's audit line there, so its fsync
// overlaps the command instead of preceding it. The task's end line waits
// until accepted has returned, so the audit log keeps the run before the
// end; the error accepted returns (the run line could not be written) is
// noted in the end line.
//
// A task whose record cannot be written to the journal is refused
// (ErrJournal): a queued one before it is queued, one that starts at once
// by killing it as it starts, since a task that is nowhere on disk would
// vanish if the module died.
func (s *Service) Submit(cmd request.Command, principal string, accepted func(record) error) (rec record, replayed bool, err error) {
	for {
		rec, replayed, retry, err := s.trySubmit(cmd, principal, accepted)
		if !retry {
			return rec, replayed, err
		}
	}
}

// accept runs the accepted callback, then lets the task's end be audited.
func accept(lv *live, rec record, accepted func(record) error) {
	if accepted != nil {
		lv.runErr = accepted(rec)
	}
	close(lv.audited)
}

// trySubmit is one attempt of Submit; retry says the key's task failed to
// start meanwhile, so the key is free again.
func (s *Service) trySubmit(cmd request.Command, principal string, accepted func(record) error) (rec record, replayed, retry bool, err error) {
	now := time.Now().UTC()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return record{}, false, false, ErrClosed
	}
	if e := s.byKey[cmd.IdempotencyKey]; cmd.IdempotencyKey != "" && e != nil {
		s.mu.Unlock()
		return s.replay(e)
	}
	id := s.newIDLocked(now)
	s.mu.Unlock()

	timeout := cmp.Or(cmd.Timeout, s.p.DefaultTimeout)
	grace := cmd.Grace
	if grace == 0 {
		grace = s.p.KillGrace
	}
	prep, err := task.Prepare(task.Spec{
		Path: cmd.Path, Args: cmd.Args, Env: s.taskEnv(cmd.Env), Dir: cmd.Cwd, User: cmd.User, Stdin: cmd.Stdin,
		Timeout: timeout, Grace: grace, OutputDir: s.taskDir(id), MaxOutput: s.p.MaxOutput, Sentinel: s.sentinel,
	})
	if err != nil {
		return record{}, false, false, err
	}
	r := &record{
		Version: recordVersion, ID: id, State: Queued,
		Command: cmd.Path, Arguments: cmd.Args, Shell: cmd.Shell, Cwd: cmd.Cwd, User: cmd.User,
		EnvKeys: slices.Sorted(maps.Keys(cmd.Env)), Labels: cmd.Labels, IdempotencyKey: cmd.IdempotencyKey,
		Principal: principal, TimeoutMs: timeout.Milliseconds(), GraceMs: grace.Milliseconds(), CreatedAt: now,
	}
	e := &entry{id: id, run: &live{rec: r, prep: prep, done: make(chan struct{}), start: make(chan struct{}), audited: make(chan struct{})}}

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return record{}, false, false, ErrClosed
	case cmd.IdempotencyKey != "" && s.byKey[cmd.IdempotencyKey] != nil:
		other := s.byKey[cmd.IdempotencyKey]
		s.mu.Unlock()
		return s.replay(other)
	case s.running >= s.p.MaxConcurrent && len(s.queue) >= s.p.MaxQueued:
		s.stats.rejectedBusy++
		s.mu.Unlock()
		return record{}, false, false, ErrBusy
	}
	startNow := s.running < s.p.MaxConcurrent
	if startNow {
		s.describe(e, r)
		s.running++ // the slot is ours; the fork happens unlocked
	} else {
		if err := s.putLocked(e, r); err != nil {
			s.mu.Unlock()
			return record{}, false, false, err
		}
		s.queue = append(s.queue, e)
	}
	s.tasks[id] = e
	s.insertLocked(e)
	s.indexLocked(e)
	out, lv := *r, e.run
	s.mu.Unlock()
	if !startNow {
		go accept(lv, out, accepted)
		return out, false, false, nil
	}
	if err := s.launch(e); err != nil {
		return record{}, false, false, err
	}
	s.mu.Lock()
	out = *lv.rec
	s.mu.Unlock()
	go accept(lv, out, accepted)
	return out, false, false, nil
}

// replay answers a request whose idempotency key names e with its
// record; a task being started (a fork under way) is waited for, and if
// it failed and was forgotten the key is free: retry.
func (s *Service) replay(e *entry) (record, bool, bool, error) {
	s.mu.Lock()
	start := s.ended
	if e.run != nil && e.n == 0 { // neither queued nor started yet
		start = e.run.start
	}
	s.mu.Unlock()
	<-start // a start is a fork and an exec: short
	s.mu.Lock()
	gone := e.gone
	s.mu.Unlock()
	if gone {
		return record{}, false, true, nil
	}
	rec, err := s.getEntry(e)
	return rec, err == nil, false, err
}

// taskEnv is the base environment with the request's variables over it.
func (s *Service) taskEnv(extra map[string]string) []string {
	if len(extra) == 0 {
		return s.env
	}
	env := slices.Clone(s.env)
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
		env = append(env, k+"="+extra[k])
	}
	return env
}

// launch starts first, which holds a reserved slot (s.running counts
// it), without s.mu, and then the queued tasks a failed start makes room
// for. A task that was never queued and fails to start is forgotten and
// its error returned (it is the request's answer); a queued one ends
// failed_to_start.
func (s *Service) launch(first *entry) error {
	var firstErr error
	for next := []*entry{first}; len(next) > 0; {
		e := next[0]
		next = next[1:]
		more, err := s.startOne(e)
		next = append(next, more...)
		if e == first {
			firstErr = err
		}
	}
	return firstErr
}

// startOne starts e (see launch) and returns the queued tasks whose
// slots its failure freed.
func (s *Service) startOne(e *entry) ([]*entry, error) {
	s.mu.Lock()
	lv := e.run
	prep, queued := lv.prep, e.n > 0
	s.mu.Unlock()
	t, err := prep.Start()
	s.mu.Lock()
	lv.prep = nil
	if err != nil {
		s.running--
		more := s.popQueuedLocked()
		if !queued {
			s.forgetLocked(e)
			s.mu.Unlock()
			close(lv.start)
			close(lv.done)
			close(lv.audited)
			return more, err
		}
		now := time.Now().UTC()
		final := *lv.rec
		final.State, final.EndedAt, final.Error = FailedToStart, &now, err.Error()
		after := func() {
			<-lv.audited
			s.auditEnd(final, lv.runErr, 0, 0)
			close(lv.done)
		}
		written := s.endLocked(e, &final, func() {
			s.stats.failedToStart++
			s.stats.byState[FailedToStart]++
		}, after)
		s.mu.Unlock()
		close(lv.start)
		if written {
			after()
		}
		return more, nil
	}
	started := time.Now().UTC()
	r := *lv.rec
	r.State, r.Pid, r.Pgid, r.StartTicks, r.StartedAt = Running, t.Pid(), t.Pgid(), t.StartTicks(), &started
	if perr := s.putLocked(e, &r); perr != nil {
		if !queued {
			// Nowhere on disk, it would vanish if the module died: undo
			// it, as a start that failed.
			s.mu.Unlock()
			_ = t.Signal(syscall.SIGKILL, task.Group)
			_, _ = t.Wait(context.Background())
			s.mu.Lock()
			s.running--
			more := s.popQueuedLocked()
			s.forgetLocked(e)
			s.mu.Unlock()
			s.removeFiles([]string{e.id})
			close(lv.start)
			close(lv.done)
			close(lv.audited)
			return more, fmt.Errorf("the task could not be recorded, so it was killed as it started: %w", perr)
		}
		// Its queued line is on disk: should the module die, it is found
		// lost (and the sentinel kills its group).
		s.describe(e, &r)
		s.log.Error("could not persist a queued task's start; if the module stops before its result is written, it is reported lost", "id", e.id, "error", perr)
	}
	lv.rec, lv.t = &r, t
	s.indexLocked(e)
	s.stats.started++
	s.wg.Add(1)
	s.mu.Unlock()
	close(lv.start)
	go s.watch(e, lv, t)
	return nil, nil
}

// popQueuedLocked takes queued tasks off the queue while there is room,
// reserving their slots; the caller launches them. s.mu is held.
func (s *Service) popQueuedLocked() []*entry {
	var out []*entry
	for s.running < s.p.MaxConcurrent && len(s.queue) > 0 && !s.closed {
		e := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.running++
		out = append(out, e)
	}
	return out
}

// watch waits for a task to end, persists its result, audits its end,
// then reports it; a result that cannot be persisted is held back (see
// endLocked), its slot freed all the same.
func (s *Service) watch(e *entry, lv *live, t *task.Task) {
	defer s.wg.Done()
	res, _ := t.Wait(context.Background())
	<-lv.audited // the run line comes before the end line

	s.mu.Lock()
	r := *lv.rec
	finish(&r, res)
	r.Unstored = unstoredOf(t)
	after := func() {
		s.auditEnd(r, lv.runErr, t.Stdout().Info().Total, t.Stderr().Info().Total)
		close(lv.done)
	}
	written := s.endLocked(e, &r, func() {
		s.stats.finished++
		s.stats.byState[r.State]++
	}, after)
	s.running--
	next := s.popQueuedLocked()
	var expired []string
	if written {
		expired = s.trimLocked()
	}
	s.mu.Unlock()
	s.removeFiles(expired)
	if written {
		after()
	}
	for _, q := range next {
		_ = s.launch(q)
	}
}

// unstoredOf is what t's streams could not store, for its final record
// (nil normally).
func unstoredOf(t *task.Task) map[string]loss {
	var m map[string]loss
	for _, st := range []struct {
		name string
		o    *task.Output
	}{{"stdout", t.Stdout()}, {"stderr", t.Stderr()}} {
		if info := st.o.Info(); info.StoreErr != "" {
			if m == nil {
				m = map[string]loss{}
			}
			m[st.name] = loss{Unstored: info.Unstored, Error: info.StoreErr}
		}
	}
	return m
}

// trimLocked forgets the oldest finished tasks beyond max_tasks and
// returns their ids (their files are the caller's to remove). It runs as
// each task ends, before the result is reported, so max_tasks holds
// whenever a client looks. s.mu is held.
func (s *Service) trimLocked() []string {
	finished := len(s.tasks) - s.running - len(s.queue) - len(s.pending)
	var gone []string
	for i := 0; i < len(s.order) && finished > s.p.MaxTasks; i++ {
		e := s.order[i]
		if e.gone || e.run != nil || !e.state.Final() {
			continue
		}
		if err := s.purgeLocked(e); err != nil {
			s.log.Warn("could not record the expiry of finished tasks beyond max_tasks; they are kept until it can be", "error", err)
			break
		}
		gone = append(gone, e.id)
		finished--
	}
	return gone
}

// removeFiles removes the output spools of forgotten tasks; the space
// freed may let held-back results be written.
func (s *Service) removeFiles(ids []string) {
	for _, id := range ids {
		if err := os.RemoveAll(s.taskDir(id)); err != nil {
			s.log.Warn("could not remove an expired task's files", "id", id, "error", err)
		}
	}
	if len(ids) > 0 {
		s.kickRetry()
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
		UserMs:     res.UserCPU.Milliseconds(), SysMs: res.SysCPU.Milliseconds(),
		MaxRssKiB: res.MaxRSS >> 10, MaxRssBoundKiB: res.MaxRSSBound >> 10,
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

// janitor enforces retention by age every minute (max_tasks is enforced
// as each task ends) and compacts the journal.
func (s *Service) janitor() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-tick.C:
		}
		s.evict(time.Now())
		s.compactIfWorth()
	}
}

// evict removes finished tasks older than retention, then the oldest
// finished ones beyond max_tasks, with their files. Running and queued
// tasks are never removed.
func (s *Service) evict(now time.Time) {
	s.mu.Lock()
	var gone []string
	for _, e := range s.order {
		if !e.gone && e.run == nil && e.state.Final() && now.Sub(e.ended) >= s.p.Retention {
			if err := s.purgeLocked(e); err != nil {
				s.log.Warn("could not record the expiry of finished tasks past retention; they are kept until it can be", "error", err)
				break
			}
			gone = append(gone, e.id)
		}
	}
	gone = append(gone, s.trimLocked()...)
	s.mu.Unlock()
	s.removeFiles(gone)
	if len(gone) > 0 {
		s.log.Debug("expired finished tasks", "count", len(gone))
	}
}

// compactMin is the journal size below which it is never compacted.
const compactMin = 1 << 20

// compactIfWorth rewrites the journal when less than half of it is the
// retained tasks' latest lines.
func (s *Service) compactIfWorth() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if size := s.journal.Size(); size >= compactMin && size >= 2*s.live {
		s.compactLocked()
	}
}

// compactLocked rewrites the journal with the retained tasks' latest
// lines. s.mu is held.
func (s *Service) compactLocked() {
	size := s.journal.Size()
	var keep []*entry
	var lines []line
	for _, e := range s.order {
		if !e.gone && e.n > 0 {
			keep = append(keep, e)
			lines = append(lines, line{off: e.off, n: e.n})
		}
	}
	offs, err := s.journal.compact(lines)
	if err != nil {
		s.log.Warn("could not compact the task journal", "error", err)
		return
	}
	for i, e := range keep {
		e.off = offs[i]
	}
	s.log.Debug("compacted the task journal", "from_bytes", size, "to_bytes", s.journal.Size())
	s.kickRetry()
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

// getEntry returns e's record now: from memory while it runs, else from
// the journal.
func (s *Service) getEntry(e *entry) (record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordLocked(e)
}

func (s *Service) recordLocked(e *entry) (record, error) {
	if e.gone {
		return record{}, fmt.Errorf("%w %q", ErrNotFound, e.id)
	}
	if e.run != nil {
		return *e.run.rec, nil
	}
	b, err := s.journal.read(e.off, e.n)
	if err != nil {
		return record{}, err
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return record{}, fmt.Errorf("remote: task %s: %w", e.id, err)
	}
	return *rec, nil
}

// Get returns a task's record now.
func (s *Service) Get(id string) (record, error) {
	e, err := s.lookup(id)
	if err != nil {
		return record{}, err
	}
	return s.getEntry(e)
}

// ByPid returns the id of the newest task with pid (pids are reused).
func (s *Service) ByPid(pid int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byPid[pid]
	if !ok {
		return "", fmt.Errorf("%w with pid %d", ErrNotFound, pid)
	}
	return e.id, nil
}

// Pids lists, ascending, the pids of the tasks the module remembers
// whose owner passes visible (nil: all), with the id of the newest task
// of each.
func (s *Service) Pids(visible func(owner string) bool) ([]int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids, ids := make([]int, 0, len(s.pidList)), make([]string, 0, len(s.pidList))
	for _, pid := range s.pidList {
		e := s.byPid[pid]
		if visible == nil || visible(e.principal) {
			pids, ids = append(pids, pid), append(ids, e.id)
		}
	}
	return pids, ids
}

// channels returns e's start and done channels (closed ones once it has
// ended).
func (s *Service) channels(e *entry) (start, done <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.run == nil {
		return s.ended, s.ended
	}
	return e.run.start, e.run.done
}

// WaitStarted blocks until the task has left the queue or ctx is done.
func (s *Service) WaitStarted(ctx context.Context, id string) (record, error) {
	e, err := s.lookup(id)
	if err != nil {
		return record{}, err
	}
	start, _ := s.channels(e)
	select {
	case <-start:
	case <-ctx.Done():
	}
	return s.getEntry(e)
}

// Wait blocks until the task has ended (and its result is in the
// journal), d has passed or ctx is done, and returns the record then.
func (s *Service) Wait(ctx context.Context, id string, d time.Duration) (record, error) {
	e, err := s.lookup(id)
	if err != nil {
		return record{}, err
	}
	if d > 0 {
		_, done := s.channels(e)
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	return s.getEntry(e)
}

// WaitEnded blocks until the task has ended and its result is in the
// journal (at once for a finished or forgotten task), or ctx is done.
func (s *Service) WaitEnded(ctx context.Context, id string) error {
	e, err := s.lookup(id)
	if err != nil {
		return nil // forgotten: nothing to wait for
	}
	_, done := s.channels(e)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Filter selects tasks for List.
type Filter struct {
	State  State
	Labels map[string]string
	After  string // cursor: ids after this one
	Limit  int
	// Visible, when set, hides the tasks of the owners for which it is
	// false (the principal may not view them). It runs with the service
	// locked.
	Visible func(owner string) bool
}

// List returns the tasks that match f, oldest first, and the cursor of the
// next page ("" when there is none). Only the page's records are read.
func (s *Service) List(f Filter) ([]record, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.order, f.After, func(e *entry, id string) int { return strings.Compare(e.id, id) })
	var page []*entry
	next := ""
	for ; i < len(s.order); i++ {
		e := s.order[i]
		if e.gone || e.id <= f.After || (f.State != "" && e.state != f.State) {
			continue
		}
		if f.Visible != nil && !f.Visible(e.principal) {
			continue
		}
		match := true
		for k, v := range f.Labels {
			if got, ok := e.labels[k]; !ok || got != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		if len(page) == f.Limit {
			next = page[len(page)-1].id
			break
		}
		page = append(page, e)
	}
	out := make([]record, 0, len(page))
	for _, e := range page {
		rec, err := s.recordLocked(e)
		if err != nil {
			s.log.Warn("could not read a task's record", "id", e.id, "error", err)
			continue
		}
		out = append(out, rec)
	}
	return out, next
}

// Signal sends sig to a running task's group or leader.
func (s *Service) Signal(id string, sig syscall.Signal, scope task.Scope) error {
	e, err := s.lookup(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	var t *task.Task
	if e.run != nil {
		t = e.run.t
	}
	s.mu.Unlock()
	if t == nil {
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
	case e.run == nil || e.state.Final() || e.run.ending != nil:
		return fmt.Errorf("task %s: %w", id, ErrFinished)
	case e.run.t != nil:
		go e.run.t.Kill()
	case e.state == Queued && slices.Contains(s.queue, e):
		s.queue = slices.DeleteFunc(s.queue, func(q *entry) bool { return q == e })
		s.endQueuedLocked(e, "killed while queued; it never started")
	default: // starting: its slot is reserved and the fork under way
		go func() {
			start, _ := s.channels(e)
			<-start
			_ = s.Kill(id)
		}()
	}
	return nil
}

// endQueuedLocked ends a queued task that will never start.
func (s *Service) endQueuedLocked(e *entry, why string) {
	lv := e.run
	now := time.Now().UTC()
	final := *lv.rec
	final.State, final.EndedAt, final.Error = Killed, &now, why
	after := func() {
		<-lv.audited // its run line may still be on its way
		s.auditEnd(final, lv.runErr, 0, 0)
		close(lv.done)
	}
	written := s.endLocked(e, &final, func() { s.stats.byState[Killed]++ }, after)
	close(lv.start)
	if written {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			after()
		}()
	}
}

// Delete purges a finished task and its files.
func (s *Service) Delete(id string) error {
	e, err := s.lookup(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if e.run != nil || !e.state.Final() {
		s.mu.Unlock()
		return fmt.Errorf("task %s: %w", id, ErrRunning)
	}
	if err := s.purgeLocked(e); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	err = os.RemoveAll(s.taskDir(id))
	s.kickRetry()
	return err
}

// Output returns one of a task's output streams ("stdout" or "stderr"):
// live while it runs, from disk once it has ended; nil when it has none.
func (s *Service) Output(id, stream string) (*task.Output, error) {
	e, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	var t *task.Task
	if e.run != nil {
		t = e.run.t
	}
	state, pid := e.state, e.pid
	var l loss
	if t == nil && e.lossy {
		// What the spool could not store is in the final record only.
		if rec, err := s.recordLocked(e); err == nil {
			l = rec.Unstored[stream]
		}
	}
	s.mu.Unlock()
	switch {
	case t != nil && stream == "stdout":
		return t.Stdout(), nil
	case t != nil:
		return t.Stderr(), nil
	case pid == 0 || state == Queued || state == FailedToStart:
		return nil, nil // never ran: no output
	}
	o, err := task.OpenOutput(s.taskDir(id), stream)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return o.WithLoss(task.Loss{Unstored: l.Unstored, StoreErr: l.Error}), nil
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
		"tasks_held_back":       float64(len(s.pending)),
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
		s.endQueuedLocked(e, "the module stopped before it started")
	}
	s.queue = nil
	var running []*task.Task
	for _, e := range s.tasks {
		if e.run != nil && e.run.t != nil {
			running = append(running, e.run.t)
		}
	}
	s.mu.Unlock()
	for _, t := range running {
		go t.Kill()
	}
	close(s.stopping)
	s.wg.Wait()
	// A last try for what is held back; what is left comes back lost
	// after a restart (its journal line says it was running or queued).
	s.retryPending()
	s.mu.Lock()
	left := s.pending
	s.pending = nil
	for _, e := range left {
		close(e.run.done) // the service is closed: stop waiting
	}
	s.mu.Unlock()
	if len(left) > 0 {
		s.log.Error("the module stopped with task results it could not write to the journal; those tasks will be reported lost", "results", len(left))
	}
	s.auditMu.Lock()
	if n := len(s.auditBacklog); n > 0 {
		s.log.Error("the module stopped with audit end lines it could not write (each is in this log where it failed)", "lines", n)
	}
	s.auditMu.Unlock()
	return errors.Join(s.journal.close(), s.audit.Close())
}
