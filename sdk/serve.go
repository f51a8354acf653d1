package sdk

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/execmod/execmod/internal/wire"
)

// Environment variables the host sets for its modules.
const (
	envLogLevel = "EXECMOD_LOG_LEVEL"
	envDebug    = "EXECMOD_MODULE_DEBUG"
)

// Serve serves m as module id to the host that started this executable
// and exits the process when the host stops it or dies. id is the mount
// point: m's routes are served under /<id>/. It is the whole of a module's
// main and does not return.
//
// Run by hand, Serve explains that the executable is a module; with
// EXECMOD_MODULE_DEBUG=1 it serves anyway and prints the line with which
// the host attaches to it (modhost --reattach), for running under a
// debugger.
func Serve(id string, m Module) {
	os.Exit(serve(id, m, os.Stderr))
}

func serve(id string, m Module, stderr io.Writer) int {
	level := parseLevel(os.Getenv(envLogLevel))
	logger := newLogger(stderr, level)
	slog.SetDefault(logger)
	bridgeStdlog(logger)
	a := &adapter{id: id, module: m, logger: logger}
	opts := wire.ServeOptions{Logger: newPluginLogger(stderr, level)}

	if os.Getenv(envDebug) == "1" {
		return serveDebug(a, opts, stderr)
	}
	if os.Getenv(wire.Handshake.MagicCookieKey) != wire.Handshake.MagicCookieValue {
		fmt.Fprintf(stderr, `%s is an execmod module (id %q): the host starts it, you do not.
List it in a modules.json and run the host:
	modhost --work_dir=/tmp/w --modules='{"libraries":[{"file":"%s","modules":[{"name":"%s"}]}]}'
To run it under a debugger instead, start it with %s=1 and pass the line it
prints to modhost --reattach.
`, os.Args[0], id, os.Args[0], id, envDebug)
		return 1
	}
	go watchParent(os.Getppid(), logger)
	wire.Serve(a, opts)
	return exitCode(a.close())
}

func serveDebug(a *adapter, opts wire.ServeOptions, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ri, closed, err := wire.ServeDebug(ctx, a, opts)
	if err != nil {
		fmt.Fprintln(stderr, "module:", err)
		return 1
	}
	fmt.Fprintf(stderr, "module %q is serving in debug mode; attach the host with:\n\tmodhost --work_dir=... --reattach='%s'\n", a.id, reattachJSON(ri))
	<-closed
	return exitCode(a.close())
}

// watchParent exits the process when the host is gone. Pdeathsig, which the
// host sets, fires when the host thread that started the module exits,
// which need not be the host's death; and a host may not set it at all.
func watchParent(ppid int, logger *slog.Logger) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			logger.Error("host process is gone; exiting", "host_pid", ppid)
			os.Exit(1)
		}
	}
}

// adapter turns a Module into what the wire protocol serves.
type adapter struct {
	id     string
	module Module
	logger *slog.Logger
}

func (a *adapter) Init(ctx context.Context, req wire.InitRequest) (wire.Manifest, http.Handler, error) {
	env := Env{
		Name: req.Name, Flags: make(map[string]string, len(req.Flags)),
		Params: make(map[string]string, len(req.Params)), DataDir: req.DataDir, Logger: a.logger,
	}
	for _, f := range req.Flags {
		env.Flags[f.Name] = f.Value
	}
	for _, p := range req.Params {
		env.Params[p.Key] = p.Value
	}
	env.WorkDir, env.SandboxDir = env.Flags["work_dir"], env.Flags["sandbox_directory"]
	if p, ok := a.module.(Provisioner); ok {
		if err := p.Provision(ctx, env); err != nil {
			return wire.Manifest{}, nil, fmt.Errorf("module %q: %w", a.id, err)
		}
	}
	mux, routes, err := mount(a.id, a.module.Routes())
	if err != nil {
		return wire.Manifest{}, nil, fmt.Errorf("module %q: %w", a.id, err)
	}
	man := wire.Manifest{ID: a.id, Version: moduleVersion(), Routes: routes}
	if err := wire.CheckManifest(man); err != nil {
		return wire.Manifest{}, nil, fmt.Errorf("module %q: %w", a.id, err)
	}
	return man, mux, nil
}

func (a *adapter) Metrics(context.Context) map[string]float64 {
	if mp, ok := a.module.(MetricsProvider); ok {
		return mp.Metrics()
	}
	return nil
}

// close runs the module's io.Closer, if any, logging its error.
func (a *adapter) close() error {
	c, ok := a.module.(io.Closer)
	if !ok {
		return nil
	}
	err := c.Close()
	if err != nil {
		a.logger.Error("close failed", "error", err)
	}
	return err
}

func exitCode(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
