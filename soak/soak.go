package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config is one soak run.
type Config struct {
	Seed       int64         // 0: from the clock (printed either way)
	FaultPhase time.Duration // load with faults
	Tail       time.Duration // load without faults, between the memory baseline and the end
	Clients    int           // concurrent load generators

	ModuleKills  int           // kill -9 of the module process
	HostRestarts int           // SIGTERM and restart of the host, same work_dir
	Escapes      int           // commands whose daemon escapes with setsid
	DiskFull     time.Duration // how long the work_dir stays full; 0: not tried

	// The module's limits: small, so that queueing and 429s happen.
	MaxConcurrent, MaxQueued, MaxOutput int

	Race bool   // build the host and the module with -race
	Bins string // a directory with modhost and remote-execute already built; "" builds them
	Dir  string // parent of the run's directory; "" for os.TempDir()
	JSON string // write the summary here too
	Keep bool   // keep the run's directory (logs, work_dir)

	Log io.Writer // progress; nil for none
}

// shortConfig is the version `go test` runs: well under a minute. Each
// client has at most one task outstanding, so there are more clients than
// the module holds (max_concurrent + max_queued): 429s must happen however
// slow the machine, not only when tasks pile up.
func shortConfig() Config {
	return Config{
		FaultPhase: 16 * time.Second, Tail: 4 * time.Second, Clients: 10,
		ModuleKills: 2, HostRestarts: 1, Escapes: 1, DiskFull: 1500 * time.Millisecond,
		MaxConcurrent: 4, MaxQueued: 4, MaxOutput: 64 << 10, Race: true,
	}
}

// longConfig is the version `make soak` runs: about seven minutes (more
// clients than max_concurrent + max_queued too).
func longConfig() Config {
	return Config{
		FaultPhase: 270 * time.Second, Tail: 60 * time.Second, Clients: 24,
		ModuleKills: 6, HostRestarts: 3, Escapes: 3, DiskFull: 5 * time.Second,
		MaxConcurrent: 6, MaxQueued: 12, MaxOutput: 64 << 10, Race: true,
	}
}

// tmpfsSize is the size of the work_dir's file system when it is a tmpfs.
const tmpfsSize = 512 << 20

// soak is one run.
type soak struct {
	cfg   Config
	out   io.Writer
	log   io.Writer
	start time.Time
	runID string
	// marker is NAME=VALUE in the environment of every command.
	marker string

	root, work, tmp, home, bins string
	modhost, module             string
	tmpfs                       bool
	diskSkip                    string // why disk-full was not tried
	hostLog                     *os.File

	hostMu   sync.Mutex
	host     *hostProc
	hosts    []*hostProc // every instance, for their logs
	port     int
	hostEnv  []string
	hostArgs []string

	api   *api
	rec   *recorder
	ev    *events
	tasks *store
	procs *procWatch
	gate  sync.RWMutex // clients hold it for reading around each job; Lock pauses them

	mu       sync.Mutex
	problems []string // harness-level findings (not per task)
	rechecks []recheck
	mem      memory
	idle     idleCheck
	final    finalCheck
	stopped  bool // the host was stopped and the final checks done
	peak     struct{ host, module int64 }
}

func (s *soak) noteProblem(format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *soak) logf(format string, args ...any) {
	if s.log != nil {
		fmt.Fprintf(s.log, "soak +%5.1fs: %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
	}
}

func (s *soak) currentHost() *hostProc {
	s.hostMu.Lock()
	defer s.hostMu.Unlock()
	return s.host
}

// run is the whole soak: it returns the summary (Summary.OK false when an
// invariant was violated), or an error when the run itself could not be
// carried out (a build failed, the host would not start).
func run(ctx context.Context, cfg Config, out io.Writer) (*Summary, error) {
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano() & (1<<53 - 1)
	}
	s := &soak{cfg: cfg, out: out, log: cfg.Log, start: time.Now(), rec: &recorder{}, tasks: newStore()}
	s.ev = &events{t0: s.start}
	s.runID = strconv.FormatInt(cfg.Seed, 36) + "-" + strconv.Itoa(os.Getpid())
	s.marker = "EXECMOD_SOAK=" + s.runID
	s.procs = newProcWatch(s.marker)
	fmt.Fprintf(out, "soak: seed %d (rerun with -seed=%d); marker %s\n", cfg.Seed, cfg.Seed, s.marker)

	defer s.cleanup()
	if err := s.setup(ctx); err != nil {
		return nil, err
	}
	// The run is bounded whatever the system does: past the budget, the
	// phases are cut short and the checks run on what there is.
	budget := cfg.FaultPhase + cfg.Tail + 2*time.Minute
	dctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := s.drive(dctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the run overran its %s budget (tasks or restarts hung)", budget)
		}
		s.noteProblem("the run stopped early: %v", err)
	}
	if !s.stopped {
		if h := s.currentHost(); h != nil {
			s.stopHost()
		}
		s.finalChecks()
	}
	sum := s.summarize()
	sum.print(out)
	if cfg.JSON != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(cfg.JSON, append(b, '\n'), 0o644); err != nil {
			return sum, err
		}
		fmt.Fprintf(out, "soak: summary written to %s\n", cfg.JSON)
	}
	return sum, nil
}

func (s *soak) setup(ctx context.Context) error {
	var err error
	if s.root, err = os.MkdirTemp(s.cfg.Dir, "soak"); err != nil {
		return err
	}
	s.work, s.tmp, s.home = filepath.Join(s.root, "work"), filepath.Join(s.root, "tmp"), filepath.Join(s.root, "home")
	for _, d := range []string{s.work, s.tmp, s.home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	switch {
	case s.cfg.DiskFull <= 0:
		s.diskSkip = "not asked for (DiskFull 0)"
	default:
		// A small file system of our own, to fill without touching the
		// machine's. Root may mount a tmpfs; nobody else here can.
		if err := syscall.Mount("tmpfs", s.work, "tmpfs", 0, "size="+strconv.Itoa(tmpfsSize)+",mode=0700"); err != nil {
			s.diskSkip = "cannot mount a tmpfs for the work_dir (" + err.Error() + "); the disk-full case was skipped"
		} else {
			s.tmpfs = true
		}
	}
	if s.hostLog, err = os.Create(filepath.Join(s.root, "host.log")); err != nil {
		return err
	}
	s.bins = s.cfg.Bins
	if s.bins == "" {
		s.bins = filepath.Join(s.root, "bin")
		s.logf("building modhost and remote-execute (race=%v)", s.cfg.Race)
		if err := build(ctx, s.bins, s.cfg.Race, s.hostLog); err != nil {
			return err
		}
	}
	s.modhost, s.module = filepath.Join(s.bins, "modhost"), filepath.Join(s.bins, "remote-execute")
	s.hostEnv = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "TMPDIR=" + s.tmp, "LANG=C",
		"GORACE=atexit_sleep_ms=0"}
	params := [][2]string{
		{"max_concurrent", strconv.Itoa(s.cfg.MaxConcurrent)}, {"max_queued", strconv.Itoa(s.cfg.MaxQueued)},
		{"max_output_bytes", strconv.Itoa(s.cfg.MaxOutput)}, {"kill_grace_period", "1s"},
		{"default_timeout", "20s"}, {"max_tasks", "100000"}, {"env_allowlist", "PATH"},
	}
	s.hostArgs = []string{"--ip=127.0.0.1", "--work_dir=" + s.work, "--modules=" + moduleJSON(s.module, params),
		"--drain_timeout=2secs", "--module_start_timeout=60secs"}
	return nil
}

// startHost starts a host on s.port (any free one the first time).
func (s *soak) startHost(ctx context.Context) error {
	args := append(append([]string{}, s.hostArgs...), "--port="+strconv.Itoa(s.port))
	h, err := startHost(ctx, s.modhost, args, s.hostEnv, s.hostLog)
	if err != nil && s.port != 0 {
		// The port was taken while the host was down: any free one.
		s.noteProblem("restart on port %d failed (%v); restarted on a new port", s.port, err)
		args[len(args)-1] = "--port=0"
		h, err = startHost(ctx, s.modhost, args, s.hostEnv, s.hostLog)
	}
	if err != nil {
		return err
	}
	_, p, _ := strings.Cut(h.addr, ":")
	s.port, _ = strconv.Atoi(p)
	s.hostMu.Lock()
	s.host = h
	s.hosts = append(s.hosts, h)
	s.hostMu.Unlock()
	if s.api == nil {
		s.api = newAPI("http://"+h.addr, s.rec, s.cfg.Clients*3)
	} else {
		s.api.setBase("http://" + h.addr)
	}
	return nil
}

// stopHost stops the current host with SIGTERM.
func (s *soak) stopHost() {
	h := s.currentHost()
	if !h.stop(30 * time.Second) {
		s.noteProblem("the host did not exit within 30s of SIGTERM (SIGKILLed)")
	}
	if st := h.cmd.ProcessState; st != nil && !st.Success() {
		s.noteProblem("the host exited with %s after SIGTERM", st)
	}
}

func (s *soak) cleanup() {
	s.hostMu.Lock()
	hosts := s.hosts
	s.hostMu.Unlock()
	for _, h := range hosts {
		select {
		case <-h.exited:
		default:
			h.kill()
		}
	}
	// Whatever the system left behind, the soak does not: SIGKILL every
	// marked process (after the invariants counted them).
	if s.procs != nil {
		for _, p := range s.procs.scan() {
			killLeftover(p)
		}
	}
	if s.tmpfs {
		if err := syscall.Unmount(s.work, syscall.MNT_DETACH); err != nil {
			fmt.Fprintf(s.out, "soak: unmount %s: %v\n", s.work, err)
		}
	}
	if s.hostLog != nil {
		s.hostLog.Close()
	}
	if s.root != "" && !s.cfg.Keep {
		os.RemoveAll(s.root)
	} else if s.root != "" {
		fmt.Fprintf(s.out, "soak: kept %s (host.log, work)\n", s.root)
	}
}

// drive runs the phases: load with faults; a planned restart and the
// memory baseline; load without faults; the idle checks; a final restart
// and the full re-read; the stop and the /proc walk.
func (s *soak) drive(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.startHost(ctx); err != nil {
		return err
	}
	s.logf("host %d listening on %s, module %d", s.currentHost().pid(), s.currentHost().addr, s.currentHost().module())

	bg, bgStop := context.WithCancel(ctx)
	var bgWG sync.WaitGroup
	bgWG.Go(func() { s.sample(bg) })
	bgWG.Go(func() { s.monitor(bg) })
	defer func() { bgStop(); bgWG.Wait() }()

	stop := make(chan struct{})
	var clients sync.WaitGroup
	for i := range s.cfg.Clients {
		clients.Go(func() {
			c := &clientState{r: rand.New(rand.NewPCG(uint64(s.cfg.Seed), uint64(i)+1))}
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.gate.RLock()
				s.clientOne(ctx, i, c)
				s.gate.RUnlock()
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop) })
	defer func() { stopLoad(); clients.Wait() }()

	// Phase 1: load and faults.
	var faults sync.WaitGroup
	s.faults(ctx, &faults)
	faults.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	// Phase 2: a planned restart with the clients paused, a warm-up, and
	// the baseline the end's memory is compared with.
	s.logf("pausing the clients for the memory baseline")
	s.gate.Lock()
	if err := s.restart(ctx, "planned restart (memory baseline)"); err != nil {
		s.gate.Unlock()
		return err
	}
	s.warmUp(ctx)
	s.mem.Host.Base, s.mem.Module.Base = s.measure()
	s.logf("baseline: host %d KiB, module %d KiB", s.mem.Host.Base.RSSKiB, s.mem.Module.Base.RSSKiB)
	s.gate.Unlock()

	// Phase 3: load without faults.
	pause(ctx, s.cfg.Tail)
	stopLoad()
	clients.Wait()
	s.logf("load stopped; %d tasks acknowledged", len(s.tasks.list()))
	s.sweep(ctx)

	// Phase 4: idle, with the host up.
	s.idleChecks(ctx)

	// Phase 5: a final restart, every result read again in full.
	if err := s.restart(ctx, "final restart"); err != nil {
		return err
	}
	s.fullPass(ctx)

	// Phase 6: stop, and look for what is left.
	bgStop()
	bgWG.Wait()
	s.stopHost()
	s.finalChecks()
	s.stopped = true
	return nil
}

// clientOne runs the next job of client cl.
func (s *soak) clientOne(ctx context.Context, cl int, c *clientState) {
	j := newJob(drawKind(c.r), c.r, s.taskEnv(), map[string]string{"soak": s.runID, "client": strconv.Itoa(cl)}, s.cfg.MaxOutput)
	c.seq++
	s.runJob(ctx, c.r, cl, fmt.Sprintf("%s-c%d-%d", s.runID, cl, c.seq), j)
}

// clientState is one client's own: its random source and job count.
type clientState struct {
	r   *rand.Rand
	seq int
}

// sample walks /proc every 250 ms: the marked processes, and peak RSS.
func (s *soak) sample(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		s.procs.scan()
		if h := s.currentHost(); h != nil {
			s.mu.Lock()
			s.peak.host = max(s.peak.host, rssKiB(h.pid()))
			s.peak.module = max(s.peak.module, rssKiB(h.module()))
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// monitor polls the agent's own endpoints as an operator's tooling would.
func (s *soak) monitor(ctx context.Context) {
	t := time.NewTicker(400 * time.Millisecond)
	defer t.Stop()
	paths := []string{"/health", "/state", "/metrics/snapshot", "/remote/status", "/version"}
	for i := 0; ; i++ {
		_, _ = s.api.do(ctx, 10*time.Second, http.MethodGet, paths[i%len(paths)], nil)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// faults runs the fault plan over the fault phase, in a seeded random
// order at seeded random moments, one at a time. It returns at the end of
// the phase; escapes may still be running (wg).
func (s *soak) faults(ctx context.Context, wg *sync.WaitGroup) {
	r := rand.New(rand.NewPCG(uint64(s.cfg.Seed), 0))
	var plan []string
	for range s.cfg.ModuleKills {
		plan = append(plan, wModuleKill)
	}
	for range s.cfg.HostRestarts {
		plan = append(plan, wHostRestart)
	}
	for range s.cfg.Escapes {
		plan = append(plan, "escape")
	}
	if s.tmpfs {
		plan = append(plan, wDiskFull)
	}
	r.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	phase := time.Now()
	slot := s.cfg.FaultPhase / time.Duration(len(plan)+1)
	for i, f := range plan {
		// Each fault at a random moment in the first half of its slot,
		// after a first slot of plain load.
		at := phase.Add(slot*time.Duration(i+1) + time.Duration(r.Int64N(int64(slot/2))))
		if !pause(ctx, time.Until(at)) {
			return
		}
		s.logf("fault %d/%d: %s", i+1, len(plan), f)
		var err error
		switch f {
		case wModuleKill:
			err = s.killModule(ctx)
		case wHostRestart:
			err = s.restart(ctx, "fault")
		case wDiskFull:
			err = s.diskFull(ctx)
		case "escape":
			n := i
			wg.Go(func() {
				j := newJob(kEscape, r2(s.cfg.Seed, n), s.taskEnv(), map[string]string{"soak": s.runID, "client": "escape"}, s.cfg.MaxOutput)
				s.runJob(ctx, r2(s.cfg.Seed, n+1000), -1, fmt.Sprintf("%s-escape-%d", s.runID, n), j)
			})
		}
		if err != nil {
			s.noteProblem("fault %s: %v", f, err)
		}
	}
	pause(ctx, time.Until(phase.Add(s.cfg.FaultPhase)))
}

func r2(seed int64, n int) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), uint64(1<<32+n))) }

// killModule kill -9s the module process and waits until the host has a
// new one serving.
func (s *soak) killModule(ctx context.Context) error {
	h := s.currentHost()
	pid := h.module()
	if exe := exePath(pid); exe != s.module {
		return fmt.Errorf("pid %d is %q, not the module", pid, exe)
	}
	w := s.ev.open(wModuleKill)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.ev.close(w, err.Error())
		return err
	}
	next, err := h.waitServing(ctx, 60*time.Second)
	s.ev.close(w, fmt.Sprintf("pid %d killed, pid %d serving", pid, next))
	if err != nil {
		return fmt.Errorf("no module serving after the kill: %w", err)
	}
	s.logf("module %d killed; module %d serving", pid, next)
	s.recheckAll(ctx, "module kill", s.ev.list()[w].Start)
	return nil
}

// restart stops the host with SIGTERM and starts it again on the same
// work_dir and port.
func (s *soak) restart(ctx context.Context, why string) error {
	w := s.ev.open(wHostRestart)
	s.stopHost()
	err := s.startHost(ctx)
	note := why
	if err == nil {
		note = fmt.Sprintf("%s: host %d, module %d", why, s.currentHost().pid(), s.currentHost().module())
	}
	s.ev.close(w, note)
	if err != nil {
		return fmt.Errorf("restarting the host: %w", err)
	}
	s.logf("host restarted (%s)", note)
	s.recheckAll(ctx, why, s.ev.list()[w].Start)
	return nil
}

// diskFull fills the work_dir's file system for cfg.DiskFull: the tmpfs
// is shrunk to what it holds, and a filler file takes the rest.
func (s *soak) diskFull(ctx context.Context) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.work, &st); err != nil {
		return err
	}
	used := int64(st.Blocks-st.Bfree) * int64(st.Bsize)
	w := s.ev.open(wDiskFull)
	if err := syscall.Mount("tmpfs", s.work, "tmpfs", syscall.MS_REMOUNT, "size="+strconv.FormatInt(used+(1<<20), 10)); err != nil {
		s.ev.close(w, "remount failed: "+err.Error())
		return err
	}
	filler := filepath.Join(s.work, ".soak-filler")
	f, err := os.Create(filler)
	if err == nil {
		buf := make([]byte, 64<<10)
		for err == nil {
			_, err = f.Write(buf)
		}
		f.Close()
		if errors.Is(err, syscall.ENOSPC) {
			err = nil
		}
	}
	s.logf("work_dir full (%v)", err)
	pause(ctx, s.cfg.DiskFull)
	rmErr := os.Remove(filler)
	mErr := syscall.Mount("tmpfs", s.work, "tmpfs", syscall.MS_REMOUNT, "size="+strconv.Itoa(tmpfsSize))
	s.ev.close(w, fmt.Sprintf("full for %s", s.cfg.DiskFull))
	return errors.Join(err, rmErr, mErr)
}

// warmUp runs a few jobs of each kind one after the other, so that the
// baseline is of a module that has served (not of one that has just
// started).
func (s *soak) warmUp(ctx context.Context) {
	r := rand.New(rand.NewPCG(uint64(s.cfg.Seed), 99))
	for i, k := range []kind{kFast, kOutput, kZeros, kFail, kPipeline, kSeed, kFast, kOutput, kSlow, kTimeout} {
		j := newJob(k, r, s.taskEnv(), map[string]string{"soak": s.runID, "client": "warmup"}, s.cfg.MaxOutput)
		if s.runJob(ctx, r, -2, fmt.Sprintf("%s-warm-%d", s.runID, i), j) == nil {
			s.noteProblem("warm-up: a %s task was not acknowledged", k)
			return
		}
	}
}

// sweep waits for every acknowledged task that has not been seen final.
func (s *soak) sweep(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, tr := range s.tasks.list() {
		tr.mu.Lock()
		done := tr.Final != nil || tr.Purged
		tr.mu.Unlock()
		if done {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s.waitFinal(ctx, tr, time.Now().Add(60*time.Second))
		})
	}
	wg.Wait()
}
