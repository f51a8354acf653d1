// Package supervisor runs one module process per modules.json entry: it
// starts it, hands it its configuration, restarts it with backoff when it
// crashes (each time with a new go-plugin client: a client is single-use),
// marks it failed when it crashes too often, and stops it.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/execmod/execmod/internal/wire"
)

// State is where a module is in its life.
type State string

const (
	Starting   State = "starting"
	Running    State = "running"
	Restarting State = "restarting"
	Failed     State = "failed" // crashed too often; not restarted
	Stopped    State = "stopped"
)

// Spec is one module to run.
type Spec struct {
	Name   string // modules.json name
	Path   string // executable
	Params []wire.Param
	Source string // where modules.json declared it, for messages
	Index  int    // position among the host's modules (names its socket dir)
	// Attach, instead of Path, is the reattach line of a module serving in
	// debug mode (EXECMOD_MODULE_DEBUG=1): the host connects to it and
	// never starts, restarts or kills it.
	Attach string
}

// Config is what every module of a host shares.
type Config struct {
	WorkDir      string
	Flags        []wire.Flag // every agent flag, sorted
	LogLevel     string
	HostVersion  string
	Env          []string // the modules' base environment
	Logger       hclog.Logger
	StartTimeout time.Duration

	// MaxCrashes crashes within CrashWindow mark a module failed
	// (defaults 5 and 60s).
	MaxCrashes  int
	CrashWindow time.Duration
	// Backoff is the delay before the second restart within the window;
	// the first is immediate, later ones double up to MaxBackoff
	// (defaults 100ms and 5s).
	Backoff, MaxBackoff time.Duration
}

// Status is a snapshot of a module for /state and logs.
type Status struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	Path      string    `json:"file"`
	State     State     `json:"state"`
	Pid       int       `json:"pid,omitempty"`
	Restarts  int       `json:"restarts"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since"`
}

// Module is one supervised module.
type Module struct {
	spec     Spec
	cfg      Config
	log      hclog.Logger
	manifest wire.Manifest
	stop     chan struct{} // closed by Stop
	done     chan struct{} // closed when supervision has ended
	// stopping is done once Stop is called: it ends a restart's handshake
	// and Init early, so that Stop never waits out a start timeout.
	stopping   context.Context
	cancelStop context.CancelFunc

	mu        sync.Mutex
	proc      *wire.Process // nil while down
	state     State
	restarts  int
	lastError string
	since     time.Time
	crashes   []time.Time
}

// Start starts the module, initialises it and begins supervising it. On
// error nothing is left running. The caller must call Stop.
func Start(ctx context.Context, spec Spec, cfg Config) (*Module, error) {
	cfg = withDefaults(cfg)
	m := &Module{
		spec: spec, cfg: cfg, log: cfg.Logger.Named(spec.Name),
		stop: make(chan struct{}), done: make(chan struct{}),
		state: Starting, since: time.Now(),
	}
	m.stopping, m.cancelStop = context.WithCancel(context.Background())
	if err := os.MkdirAll(m.dataDir(), 0o700); err != nil {
		m.cancelStop()
		return nil, fmt.Errorf("module %s: data dir: %w", spec.Name, err)
	}
	proc, man, err := m.launch(ctx)
	if err != nil {
		m.cancelStop()
		return nil, err
	}
	m.manifest = man
	m.setRunning(proc)
	go m.supervise(proc)
	return m, nil
}

func withDefaults(c Config) Config {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.MaxCrashes == 0 {
		c.MaxCrashes = 5
	}
	if c.CrashWindow == 0 {
		c.CrashWindow = time.Minute
	}
	if c.Backoff == 0 {
		c.Backoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	return c
}

// dataDir is the module's own folder under work_dir.
func (m *Module) dataDir() string { return filepath.Join(m.cfg.WorkDir, "modules", m.spec.Name) }

// socketDir is short on purpose: a unix socket path has at most 107 bytes.
func (m *Module) socketDir() string {
	return filepath.Join(m.cfg.WorkDir, "sock", strconv.Itoa(m.spec.Index))
}

// launch starts a new process and initialises it; ctx bounds both.
func (m *Module) launch(ctx context.Context) (*wire.Process, wire.Manifest, error) {
	if n := len(m.socketDir()) + len("/plugin1234567890"); n > 107 {
		return nil, wire.Manifest{}, fmt.Errorf("module %s: --work_dir %q is too long for the module's unix socket path (%d bytes, at most 107); use a shorter --work_dir", m.spec.Name, m.cfg.WorkDir, n)
	}
	var proc *wire.Process
	var err error
	if m.spec.Attach != "" {
		proc, err = wire.Attach(m.spec.Attach, m.log)
	} else {
		env := append(append([]string{}, m.cfg.Env...), "EXECMOD_LOG_LEVEL="+m.cfg.LogLevel)
		proc, err = wire.Start(ctx, wire.StartConfig{
			Path: m.spec.Path, Env: env, SocketDir: m.socketDir(),
			Logger: m.log, StartTimeout: m.cfg.StartTimeout,
		})
	}
	if err != nil {
		return nil, wire.Manifest{}, fmt.Errorf("module %s (%s): %w", m.spec.Name, m.spec.Source, err)
	}
	ictx, cancel := context.WithTimeout(ctx, m.cfg.StartTimeout)
	defer cancel()
	man, err := proc.Init(ictx, wire.InitRequest{
		Name: m.spec.Name, Flags: m.cfg.Flags, Params: m.spec.Params,
		LogLevel: m.cfg.LogLevel, DataDir: m.dataDir(), HostVersion: m.cfg.HostVersion,
	})
	if err == nil {
		err = wire.CheckManifest(man)
	}
	if err != nil {
		proc.Stop()
		return nil, wire.Manifest{}, fmt.Errorf("module %s (%s): %w", m.spec.Name, m.spec.Source, err)
	}
	return proc, man, nil
}

// supervise waits for the process to die and restarts it, until Stop or
// until the module has crashed too often.
func (m *Module) supervise(proc *wire.Process) {
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			return
		case <-proc.Done():
		}
		select {
		case <-m.stop:
			return // Stop is under way; the exit is not a crash
		default:
		}
		proc.Stop() // reap it and whatever it left in its group
		if m.spec.Attach != "" {
			m.mu.Lock()
			m.proc, m.state, m.since = nil, Failed, time.Now()
			m.lastError = "the module in debug mode went away; start it again and pass its new line to --reattach"
			m.mu.Unlock()
			m.log.Error("module failed: " + m.lastError)
			return
		}
		delay, give := m.crashed(errors.New("module process exited"))
		if give {
			return
		}
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(delay):
			}
			next, man, err := m.launch(m.stopping)
			if err == nil {
				if !sameRoutes(man, m.manifest) {
					m.log.Warn("module changed its routes on restart; the host keeps the routes it mounted at start", "id", man.ID)
				}
				m.mu.Lock()
				m.restarts++
				m.mu.Unlock()
				m.setRunning(next)
				proc = next
				break
			}
			if m.stopping.Err() != nil {
				return // Stop ended the restart; not a crash
			}
			m.log.Error("restart failed", "error", err)
			if delay, give = m.crashed(err); give {
				return
			}
		}
	}
}

// crashed records a crash and says how long to wait before restarting, or
// that the module has failed.
func (m *Module) crashed(err error) (delay time.Duration, giveUp bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.proc = nil
	m.lastError = err.Error()
	m.since = now
	keep := m.crashes[:0]
	for _, t := range m.crashes {
		if now.Sub(t) < m.cfg.CrashWindow {
			keep = append(keep, t)
		}
	}
	m.crashes = append(keep, now)
	n := len(m.crashes)
	if n >= m.cfg.MaxCrashes {
		m.state = Failed
		m.log.Error("module failed: not restarting", "crashes", n, "window", m.cfg.CrashWindow.String(), "last_error", m.lastError)
		return 0, true
	}
	m.state = Restarting
	if n > 1 {
		delay = m.cfg.Backoff << (n - 2)
		if delay > m.cfg.MaxBackoff || delay <= 0 {
			delay = m.cfg.MaxBackoff
		}
	}
	m.log.Error("module crashed; restarting", "crashes_in_window", n, "delay", delay.String(), "error", m.lastError)
	return delay, false
}

func (m *Module) setRunning(p *wire.Process) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proc, m.state, m.since = p, Running, time.Now()
	m.log.Info("module serving", "id", m.manifest.ID, "pid", p.Pid(), "restarts", m.restarts)
}

func sameRoutes(a, b wire.Manifest) bool {
	if a.ID != b.ID || len(a.Routes) != len(b.Routes) {
		return false
	}
	for i := range a.Routes {
		if a.Routes[i] != b.Routes[i] {
			return false
		}
	}
	return true
}

// Manifest is the module's answer to its first Init.
func (m *Module) Manifest() wire.Manifest { return m.manifest }

// Backend returns the running process or, while the module is down, why.
func (m *Module) Backend() (*wire.Process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.proc != nil:
		return m.proc, nil
	case m.state == Failed:
		return nil, fmt.Errorf("module %q failed: it crashed %d times within %s and is not restarted (last error: %s); see the host's log", m.manifest.ID, len(m.crashes), m.cfg.CrashWindow, m.lastError)
	case m.state == Stopped:
		return nil, fmt.Errorf("module %q is stopped: the host is shutting down", m.manifest.ID)
	default:
		return nil, fmt.Errorf("module %q is %w after a crash; retry in a second", m.manifest.ID, wire.ErrRestarting)
	}
}

// Status returns a snapshot of the module.
func (m *Module) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{
		Name: m.spec.Name, ID: m.manifest.ID, Version: m.manifest.Version, Path: m.spec.Path,
		State: m.state, Restarts: m.restarts, LastError: m.lastError, Since: m.since,
	}
	if m.proc != nil {
		s.Pid = m.proc.Pid()
	}
	return s
}

// Metrics returns the module's metrics, or an error if it is down.
func (m *Module) Metrics(ctx context.Context) (map[string]float64, error) {
	p, err := m.Backend()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", wire.ErrModuleDown, err)
	}
	return p.Metrics(ctx)
}

// Stop stops supervision (ending a restart under way), asks the module to
// shut down (its io.Closer runs), kills its process group and waits until
// it is reaped. Safe to call more than once and concurrently.
func (m *Module) Stop() {
	m.cancelStop()
	m.mu.Lock()
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.mu.Unlock()
	<-m.done
	m.mu.Lock()
	p := m.proc
	m.proc, m.state, m.since = nil, Stopped, time.Now()
	m.mu.Unlock()
	if p != nil {
		p.Stop()
	}
	_ = os.RemoveAll(m.socketDir())
}
