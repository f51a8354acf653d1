package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	modulev1 "github.com/execmod/execmod/proto/module/v1"
)

// StartConfig says how to start one module process.
type StartConfig struct {
	Path string   // the module executable
	Env  []string // its whole environment: the host's own is never inherited
	// SocketDir holds the module's unix socket. Start empties it first, so
	// a socket left by a crashed predecessor never accumulates.
	SocketDir string
	// Logger receives the module's log lines (hclog JSON on its stderr) and
	// anything it prints to stdout or stderr after the handshake.
	Logger       hclog.Logger
	StartTimeout time.Duration // 0 means 30s
}

// Process is a running module as the host sees it: one go-plugin client
// over one child process (or, reattached, over a module served elsewhere).
type Process struct {
	client   *plugin.Client
	rpc      modulev1.ModuleClient
	done     context.Context
	pid      int
	reattach bool
	detach   bool             // Stop only disconnects (Attach)
	conn     *grpc.ClientConn // the connection to the module
}

// Start starts the module executable in its own process group, with
// Pdeathsig so that it dies with the host, AutoMTLS on its socket and only
// cfg.Env in its environment, and waits for the go-plugin handshake, at
// most cfg.StartTimeout. The caller must call Stop on the process.
//
// When ctx is done first, Start returns at once with ctx's error; the
// handshake, which go-plugin cannot interrupt, finishes in the background
// and whatever it started is stopped and reaped there (and dies with the
// host if the host exits first).
func Start(ctx context.Context, cfg StartConfig) (*Process, error) {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.SocketDir != "" {
		if err := os.RemoveAll(cfg.SocketDir); err != nil {
			return nil, fmt.Errorf("wire: clean socket dir: %w", err)
		}
		if err := os.MkdirAll(cfg.SocketDir, 0o700); err != nil {
			return nil, fmt.Errorf("wire: socket dir: %w", err)
		}
	}
	cmd := exec.Command(cfg.Path)
	cmd.Env = append([]string{}, cfg.Env...)
	if cfg.SocketDir != "" {
		cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+cfg.SocketDir)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	out := logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           pluginLogger{logger},
		Stderr:           newLogWriter(logger),
		StartTimeout:     cfg.StartTimeout,
		SyncStdout:       out,
		SyncStderr:       out,
		GRPCDialOptions:  dialOptions(),
	})
	type started struct {
		p   *Process
		err error
	}
	ch := make(chan started, 1)
	go func() {
		p, err := connect(client, false)
		if err != nil {
			client.Kill()
			killGroup(cmd) // connect has returned: cmd.Process is settled
		}
		ch <- started{p, err}
	}()
	select {
	case s := <-ch:
		if s.err != nil {
			return nil, fmt.Errorf("start %s: %w", cfg.Path, explainStartError(s.err, cfg.StartTimeout))
		}
		return s.p, nil
	case <-ctx.Done():
		go func() {
			if s := <-ch; s.p != nil {
				s.p.Stop()
			}
		}()
		return nil, fmt.Errorf("start %s: %w", cfg.Path, context.Cause(ctx))
	}
}

// Reattach connects to a module that is already serving, from the line a
// module prints when run with EXECMOD_MODULE_DEBUG=1 or from sdktest. Stop
// closes the connection; it does not kill a process it did not start.
func Reattach(rc *plugin.ReattachConfig, logger hclog.Logger) (*Process, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          pluginSets(nil)[ProtocolVersion],
		Reattach:         rc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		GRPCDialOptions:  dialOptions(),
	})
	p, err := connect(client, true)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("reattach: %w", err)
	}
	return p, nil
}

// Attach connects to a module serving in debug mode from the JSON line it
// printed (see ReattachInfo). Stop disconnects; the module's process is the
// developer's and is never killed.
func Attach(info string, logger hclog.Logger) (*Process, error) {
	rc, err := ParseReattach(info)
	if err != nil {
		return nil, err
	}
	p, err := Reattach(rc, logger)
	if p != nil {
		p.detach = true
	}
	return p, err
}

// ReattachInfo is the JSON a module in debug mode prints, which the host
// accepts to reattach to it.
type ReattachInfo struct {
	Protocol        string `json:"protocol"`
	ProtocolVersion int    `json:"protocol_version"`
	Network         string `json:"network"`
	Addr            string `json:"addr"`
	Pid             int    `json:"pid"`
}

// ParseReattach decodes a ReattachInfo.
func ParseReattach(s string) (*plugin.ReattachConfig, error) {
	var ri ReattachInfo
	if err := json.Unmarshal([]byte(s), &ri); err != nil {
		return nil, fmt.Errorf("wire: reattach info: %w", err)
	}
	return reattachConfig(ri)
}

// windowSize is the HTTP/2 flow-control window of every module
// connection, both ways. Setting it turns off grpc's dynamic window (BDP
// estimation), whose pings add frames, and wake-ups in both processes, to
// requests that are mostly small; 4 MiB keeps large bodies streaming at
// loopback speed.
const windowSize = 4 << 20

func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newCodec())),
		grpc.WithInitialWindowSize(windowSize), grpc.WithInitialConnWindowSize(windowSize),
	}
}

func connect(client *plugin.Client, reattach bool) (*Process, error) {
	cp, err := client.Client()
	if err != nil {
		return nil, err
	}
	raw, err := cp.Dispense(pluginName)
	if err != nil {
		return nil, err
	}
	s, ok := raw.(*stub)
	if !ok {
		return nil, fmt.Errorf("wire: unexpected plugin type %T", raw)
	}
	p := &Process{client: client, rpc: s.rpc, done: s.done, conn: s.conn, reattach: reattach}
	if rc := client.ReattachConfig(); rc != nil {
		p.pid = rc.Pid
	}
	return p, nil
}

// explainStartError turns go-plugin's start failures into what a module
// author needs to know.
func explainStartError(err error, timeout time.Duration) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("the module did not complete the plugin handshake within %s (--module_start_timeout): is its main sdk.Serve(...), and does it do slow work before calling it? It was killed\n(go-plugin: %w)", timeout, err)
	case strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		return fmt.Errorf("the module exited or closed stdout before the plugin handshake: is its main sdk.Serve(...)? Its own output, if any, is in the log above\n(go-plugin: %w)", err)
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		return fmt.Errorf("the module printed to stdout before sdk.Serve completed the handshake; log to stderr or with the sdk logger instead\n(go-plugin: %w)", err)
	case strings.Contains(msg, "Incompatible API version"), strings.Contains(msg, "incompatible"):
		return fmt.Errorf("this host speaks plugin protocol version %d and the module another; rebuild the module against a matching execmod SDK\n(go-plugin: %w)", ProtocolVersion, err)
	}
	return err
}

// Pid is the module's process id (0 if unknown).
func (p *Process) Pid() int { return p.pid }

// Done is closed when the module process exits or the connection to it is
// lost.
func (p *Process) Done() <-chan struct{} { return p.done.Done() }

// Init sends the module its configuration and returns its manifest.
func (p *Process) Init(ctx context.Context, req InitRequest) (Manifest, error) {
	resp, err := p.rpc.Init(ctx, req.toProto())
	if err != nil {
		return Manifest{}, rpcError(err)
	}
	return manifestFromProto(resp), nil
}

// Metrics returns the module's own metrics.
func (p *Process) Metrics(ctx context.Context) (map[string]float64, error) {
	resp, err := p.rpc.Metrics(ctx, &modulev1.MetricsRequest{})
	if err != nil {
		return nil, rpcError(err)
	}
	return resp.Metrics, nil
}

// Stop asks the module to shut down (its io.Closer runs), waits up to two
// seconds, then kills it; and kills whatever is left in its process group.
// It blocks until the process is reaped. Safe to call more than once.
// A module connected with Attach is only disconnected.
func (p *Process) Stop() {
	if p.detach {
		// go-plugin's Kill would ask the module to shut down (and kill it
		// after 2 s); a module someone attached us to is theirs.
		_ = p.conn.Close()
		return
	}
	p.client.Kill()
	if !p.reattach && p.pid > 0 {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

func reattachConfig(ri ReattachInfo) (*plugin.ReattachConfig, error) {
	if ri.Protocol != string(plugin.ProtocolGRPC) {
		return nil, fmt.Errorf("wire: reattach protocol %q, want %q", ri.Protocol, plugin.ProtocolGRPC)
	}
	var addr net.Addr
	var err error
	switch ri.Network {
	case "unix":
		addr, err = net.ResolveUnixAddr("unix", ri.Addr)
	case "tcp":
		addr, err = net.ResolveTCPAddr("tcp", ri.Addr)
	default:
		return nil, fmt.Errorf("wire: reattach network %q, want unix or tcp", ri.Network)
	}
	if err != nil {
		return nil, fmt.Errorf("wire: reattach address: %w", err)
	}
	return &plugin.ReattachConfig{
		Protocol: plugin.ProtocolGRPC, ProtocolVersion: ri.ProtocolVersion,
		Addr: addr, Pid: ri.Pid, Test: true,
	}, nil
}

func reattachInfo(rc *plugin.ReattachConfig) ReattachInfo {
	return ReattachInfo{
		Protocol: string(rc.Protocol), ProtocolVersion: rc.ProtocolVersion,
		Network: rc.Addr.Network(), Addr: rc.Addr.String(), Pid: rc.Pid,
	}
}

// rpcError keeps the module's own message and drops gRPC's decoration.
func rpcError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled:
		return fmt.Errorf("%w: %s", ErrModuleDown, st.Message())
	}
	return errors.New(st.Message())
}

// ErrModuleDown classes errors caused by the module process being gone.
var ErrModuleDown = errors.New("module is not running")
