package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/execmod/execmod/internal/acl"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/execmod/execmod/host/internal/agent"
	"github.com/execmod/execmod/host/internal/auth"
	"github.com/execmod/execmod/host/internal/config"
	"github.com/execmod/execmod/host/internal/descriptor"
	"github.com/execmod/execmod/host/internal/supervisor"
	"github.com/execmod/execmod/internal/wire"
)

// version is the host's version; the Makefile may set it with -ldflags.
var version = "0.1.0"

// The build stamp the Makefile sets with -ldflags -X, for /version when
// the go command embeds no VCS information (see agent.Stamp).
var gitSHA, gitTime, gitModified, buildUser string

// loadError is a failure to load modules: main prints it as Mesos does,
// "Error loading modules: ...".
type loadError struct{ err error }

func (e loadError) Error() string { return "Error loading modules: " + e.err.Error() }
func (e loadError) Unwrap() error { return e.err }

// run is the whole host: it returns when ctx is done (after draining
// requests and stopping every module) or when start-up fails.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "new-module" {
		return newModule(args[1:], stdout, stderr)
	}
	cfg, err := config.Parse(args, environ)
	if errors.Is(err, config.ErrHelp) {
		config.Usage(stdout)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w\nSee 'modhost --help' for a list of supported flags.", err)
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name: "modhost", Output: stderr, Level: hclog.LevelFromString(hclogLevel(cfg.LoggingLevel)),
	})
	authn, tlsConfig, err := security(cfg, log)
	if err != nil {
		return err
	}
	// The host checks the ACLs it enforces itself (view_flags,
	// get_endpoints) before any module starts; modules get the --acls flag
	// and load their own actions from it.
	var acls *acl.ACLs
	if cfg.ACLs != "" {
		if acls, err = acl.Load(cfg.ACLs); err != nil {
			return err
		}
		if len(acls.Unenforced) > 0 {
			names := make([]string, len(acls.Unenforced))
			for i, a := range acls.Unenforced {
				names[i] = string(a)
			}
			log.Warn("--acls: these Mesos ACL actions are not enforced by modhost; their rules are ignored",
				"actions", strings.Join(names, ","))
		}
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return fmt.Errorf("work_dir: %w", err)
	}

	var flags []wire.Flag
	for _, f := range cfg.Flags() {
		flags = append(flags, wire.Flag{Name: f.Name, Value: f.Value})
	}
	modules, err := startModules(ctx, cfg, flags, environ, log)
	if err != nil {
		return err
	}
	defer stopAll(modules)

	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	mounted := make([]agent.Module, len(modules))
	for i, m := range modules {
		mounted[i] = m
	}
	bi, _ := debug.ReadBuildInfo()
	build := agent.ReadBuild(bi, agent.Stamp{GitSHA: gitSHA, GitTime: gitTime, Modified: gitModified, User: buildUser})
	srv, err := agent.New(agent.Info{
		Version: version, BuildDate: build.Date, BuildTime: build.Time, BuildUser: build.User, GitSHA: build.GitSHA,
		StartTime: time.Now(), ID: newID(), Hostname: hostname, Addr: ln.Addr().String(), Flags: flags,
	}, mounted, agent.Options{MaxBody: cfg.MaxRequestBody, Auth: authn.Wrap, Principal: auth.Principal, ACLs: acls})
	if err != nil {
		ln.Close()
		return loadError{err}
	}
	for _, line := range strings.Split(strings.TrimRight(srv.Table().String(), "\n"), "\n") {
		log.Info("route: " + line)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		TLSConfig: tlsConfig}
	served := make(chan error, 1)
	listening := []any{"addr", ln.Addr().String(), "modules", len(modules)}
	if tlsConfig != nil {
		// ServeTLS serves with hs.TLSConfig, HTTP/2 added; auth.ServerTLS
		// has already read the certificate and key.
		go func() { served <- hs.ServeTLS(ln, "", "") }()
		listening = append(listening, "tls", true)
	} else {
		go func() { served <- hs.Serve(ln) }()
	}
	log.Info("listening", listening...)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain_timeout", config.FormatDuration(cfg.DrainTimeout))
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := hs.Shutdown(dctx); err != nil {
		log.Warn("requests still in flight after the drain timeout; closing them", "error", err)
		hs.Close()
	}
	return nil
}

// startModules loads the descriptor and starts every module concurrently.
// If any fails, the others are stopped and the error is a loadError.
func startModules(ctx context.Context, cfg config.Config, flags []wire.Flag, environ []string, log hclog.Logger) ([]*supervisor.Module, error) {
	if cfg.Modules == "" && cfg.ModulesDir == "" && cfg.Reattach == "" {
		log.Warn("no --modules or --modules_dir given: serving the agent endpoints only")
		return nil, nil
	}
	wd, _ := os.Getwd()
	var mpath []string
	if cfg.ModulesPath != "" {
		mpath = filepath.SplitList(cfg.ModulesPath)
	}
	entries, warnings, err := descriptor.Load(descriptor.Options{
		Modules: cfg.Modules, ModulesDir: cfg.ModulesDir, ModulesPath: mpath,
		PathEnv: getenv(environ, "PATH"), WorkingDir: wd,
	})
	for _, w := range warnings {
		log.Warn(w)
	}
	if err != nil {
		return nil, loadError{err}
	}
	specs := make([]supervisor.Spec, 0, len(entries)+1)
	for i, e := range entries {
		params := make([]wire.Param, len(e.Parameters))
		for j, p := range e.Parameters {
			params[j] = wire.Param{Key: p.Key, Value: p.Value}
		}
		specs = append(specs, supervisor.Spec{Name: e.Name, Path: e.Path, Params: params, Source: e.Source, Index: i})
	}
	if cfg.Reattach != "" {
		specs = append(specs, supervisor.Spec{Name: "debug", Path: "(reattached)", Source: "--reattach", Index: len(specs), Attach: cfg.Reattach})
	}
	sc := supervisor.Config{
		WorkDir: cfg.WorkDir, Flags: flags, LogLevel: cfg.LoggingLevel, HostVersion: version,
		Env: moduleEnv(environ), Logger: log, StartTimeout: cfg.ModuleStartTimeout,
	}
	modules := make([]*supervisor.Module, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() { modules[i], errs[i] = supervisor.Start(ctx, spec, sc) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		var started []*supervisor.Module
		for _, m := range modules {
			if m != nil {
				started = append(started, m)
			}
		}
		stopAll(started)
		return nil, loadError{err}
	}
	return modules, nil
}

// security loads what --http_credentials, --authenticate_http_* and
// --ssl_* ask for: the authenticator every route goes through and, for
// HTTPS, the TLS configuration (nil for plain HTTP). It logs which realms
// are authenticated and how many principals there are, never a secret.
func security(cfg config.Config, log hclog.Logger) (*auth.Authenticator, *tls.Config, error) {
	var creds auth.Credentials
	if cfg.HTTPCredentials != "" {
		c, warnings, err := auth.LoadCredentials(cfg.HTTPCredentials)
		for _, w := range warnings {
			log.Warn(w)
		}
		if err != nil {
			return nil, nil, err
		}
		creds = c
	}
	var tlsConfig *tls.Config
	if cfg.SSLCertFile != "" || cfg.SSLKeyFile != "" {
		c, err := auth.ServerTLS(cfg.SSLCertFile, cfg.SSLKeyFile, cfg.SSLCAFile)
		if err != nil {
			return nil, nil, err
		}
		tlsConfig = c
	}
	clientCerts := tlsConfig != nil && cfg.SSLCAFile != ""
	var realms []string
	if cfg.AuthenticateHTTPReadonly {
		realms = append(realms, wire.RealmReadOnly.String())
	}
	if cfg.AuthenticateHTTPReadwrite {
		realms = append(realms, wire.RealmReadWrite.String())
	}
	if len(realms) > 0 && creds.Len() == 0 && !clientCerts {
		// Mesos's words; config.Parse already refuses this.
		return nil, nil, fmt.Errorf("No credentials provided for the default 'basic' HTTP authenticator for realm '%s'", realms[0])
	}
	if len(realms) == 0 {
		realms = append(realms, "none")
	}
	log.Info("http authentication", "authenticated_realms", strings.Join(realms, ","),
		"principals", creds.Len(), "client_certificates", clientCerts)
	if creds.Len() > 0 && !cfg.AuthenticateHTTPReadonly && !cfg.AuthenticateHTTPReadwrite {
		log.Warn("--http_credentials given but no realm is authenticated (--authenticate_http_readonly, --authenticate_http_readwrite): valid credentials name the principal, requests without them are still served")
	}
	return auth.New(auth.Config{
		Readonly: cfg.AuthenticateHTTPReadonly, Readwrite: cfg.AuthenticateHTTPReadwrite,
		Credentials: creds, ClientCertificates: clientCerts,
		// A refused request never reaches a module (nor its audit log):
		// this line is its record, at WARN so that --logging_level=WARNING
		// keeps it.
		OnFailure: func(r *http.Request, realm wire.Realm, reason string) {
			log.Warn("authentication failed", "realm", realm.String(), "remote", r.RemoteAddr,
				"method", r.Method, "path", r.URL.Path, "reason", reason)
		},
	}), tlsConfig, nil
}

// stopAll stops modules concurrently and waits for all of them.
func stopAll(modules []*supervisor.Module) {
	var wg sync.WaitGroup
	for _, m := range modules {
		wg.Go(m.Stop)
	}
	wg.Wait()
}

// moduleEnv is the environment modules get: a short allowlist of the
// host's, so that no secret of the host (MESOS_* flags, tokens) reaches a
// module's process.
func moduleEnv(environ []string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "USER", name == "LOGNAME", name == "LANG",
			name == "TZ", name == "TMPDIR", strings.HasPrefix(name, "LC_"),
			name == "GORACE": // only read by -race builds; lets tests tune it
			env = append(env, kv)
		}
	}
	return env
}

func getenv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func hclogLevel(mesos string) string {
	if mesos == "WARNING" {
		return "warn"
	}
	return strings.ToLower(mesos)
}

// newID is the agent id in /state: a random UUID-like string with Mesos's
// -S0 suffix.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x-S0", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
