// Package config is modhost's command line: the Mesos agent's flags that
// the host understands, with Mesos's names, defaults and syntax
// (--name=value, --name / --no-name for booleans, MESOS_<NAME> in the
// environment, durations like 30secs and sizes like 16MB), and a few of
// the host's own. Unknown flags are errors; every problem is reported at
// once.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrHelp is returned by Parse for --help: print Usage and exit 0.
var ErrHelp = errors.New("help requested")

// Config is the parsed command line.
type Config struct {
	IP                      string
	Port                    int
	Hostname                string
	WorkDir                 string // absolute
	SandboxDirectory        string
	Modules                 string // file://PATH, /abs/path or inline JSON
	ModulesDir              string
	ModulesPath             string // list of directories, like $PATH
	Reattach                string // reattach line of a module in debug mode
	LoggingLevel            string // INFO, WARNING, ERROR, DEBUG or TRACE
	ModuleStartTimeout      time.Duration
	MaxRequestBody          int64
	DrainTimeout            time.Duration
	InsecureUnauthenticated bool

	// Authentication and authorization, with Mesos's flag names.
	HTTPCredentials           string // --http_credentials: file://PATH, /abs/path or inline JSON
	AuthenticateHTTPReadonly  bool
	AuthenticateHTTPReadwrite bool
	ACLs                      string // --acls: file://PATH, /abs/path or inline JSON
	SSLCertFile, SSLKeyFile   string // serve HTTPS
	SSLCAFile                 string // require client certificates signed by this CA (mTLS)
}

// Flag is one flag as /flags and modules see it.
type Flag struct{ Name, Value string }

// flag describes one command-line flag: its name, help, default (as the
// user would type it; empty means none) and how it is stored.
type flag struct {
	name, help, def string
	boolean         bool
	set             func(c *Config, v string) error
	get             func(c *Config) string
}

// flags lists what the host accepts, in the order --help prints them.
var flags = []flag{
	{name: "ip", def: "127.0.0.1",
		help: "IP address to listen on. Unlike the Mesos agent, which binds every address, the host binds loopback by default; binding any other address needs --authenticate_http_readwrite (or --insecure_unauthenticated if you mean it).",
		set: func(c *Config, v string) error {
			if net.ParseIP(v) == nil {
				return fmt.Errorf("%q is not an IP address", v)
			}
			c.IP = v
			return nil
		},
		get: func(c *Config) string { return c.IP }},
	{name: "port", def: "5051",
		help: "Port to listen on; 0 picks a free one (the address is logged in the \"listening\" line).",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return fmt.Errorf("%q is not a port number (0-65535)", v)
			}
			c.Port = int(n)
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(c.Port) }},
	{name: "hostname", help: "The hostname the agent reports in /state. Defaults to the machine's hostname.",
		set: func(c *Config, v string) error { c.Hostname = v; return nil },
		get: func(c *Config) string { return c.Hostname }},
	{name: "work_dir", help: "Path of the agent's work directory (required). Modules get a data directory under <work_dir>/modules/<name> and their plugin sockets live under <work_dir>/sock.",
		set: func(c *Config, v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			abs, err := filepath.Abs(v)
			if err != nil {
				return err
			}
			c.WorkDir = abs
			return nil
		},
		get: func(c *Config) string { return c.WorkDir }},
	{name: "sandbox_directory", def: "/mnt/mesos/sandbox",
		help: "The absolute path of the sandbox directory inside a container, passed to modules as sandbox_dir.",
		set: func(c *Config, v string) error {
			if !filepath.IsAbs(v) {
				return fmt.Errorf("%q is not an absolute path", v)
			}
			c.SandboxDirectory = v
			return nil
		},
		get: func(c *Config) string { return c.SandboxDirectory }},
	{name: "modules", help: "The modules to load, as a Mesos modules.json: file://PATH, an absolute path (deprecated, as in Mesos), or the JSON itself. A relative \"file\" in it resolves against the descriptor's directory.",
		set: func(c *Config, v string) error { c.Modules = v; return nil },
		get: func(c *Config) string { return c.Modules }},
	{name: "modules_dir", help: "Load every file in this directory, in name order, as a modules.json. Only one of --modules and --modules_dir may be given.",
		set: func(c *Config, v string) error { c.ModulesDir = v; return nil },
		get: func(c *Config) string { return c.ModulesDir }},
	{name: "modules_path", help: "Directories (separated by ':') searched for a library given by \"name\" in modules.json, before $PATH.",
		set: func(c *Config, v string) error { c.ModulesPath = v; return nil },
		get: func(c *Config) string { return c.ModulesPath }},
	{name: "reattach", help: "Also serve a module that runs in debug mode (started by you, e.g. under a debugger, with EXECMOD_MODULE_DEBUG=1): pass the JSON line it prints. The host connects to it as module \"debug\" and never starts, restarts or kills it.",
		set: func(c *Config, v string) error {
			if !strings.HasPrefix(strings.TrimSpace(v), "{") {
				return errors.New("want the JSON line a module prints when run with EXECMOD_MODULE_DEBUG=1")
			}
			c.Reattach = v
			return nil
		},
		get: func(c *Config) string { return c.Reattach }},
	{name: "logging_level", def: "INFO",
		help: "Log messages at or above this level: INFO, WARNING or ERROR as in Mesos, or DEBUG and TRACE for more. Modules log at the same level.",
		set: func(c *Config, v string) error {
			u := strings.ToUpper(v)
			if !slices.Contains([]string{"TRACE", "DEBUG", "INFO", "WARNING", "ERROR"}, u) {
				return fmt.Errorf("%q is not one of INFO, WARNING, ERROR, DEBUG, TRACE", v)
			}
			c.LoggingLevel = u
			return nil
		},
		get: func(c *Config) string { return c.LoggingLevel }},
	{name: "module_start_timeout", def: "30secs",
		help: "How long a module may take to start and answer Init before loading fails.",
		set: func(c *Config, v string) error {
			d, err := ParseDuration(v)
			if err == nil && d == 0 {
				err = errors.New("must be more than 0")
			}
			c.ModuleStartTimeout = d
			return err
		},
		get: func(c *Config) string { return FormatDuration(c.ModuleStartTimeout) }},
	{name: "max_request_body", def: "16MB",
		help: "The largest request body forwarded to a module; a larger one is answered 413.",
		set: func(c *Config, v string) error {
			n, err := ParseBytes(v)
			c.MaxRequestBody = n
			return err
		},
		get: func(c *Config) string { return FormatBytes(c.MaxRequestBody) }},
	{name: "drain_timeout", def: "10secs",
		help: "On SIGINT or SIGTERM, how long in-flight requests may run before they are cut and the modules stopped.",
		set: func(c *Config, v string) error {
			d, err := ParseDuration(v)
			c.DrainTimeout = d
			return err
		},
		get: func(c *Config) string { return FormatDuration(c.DrainTimeout) }},
	{name: "insecure_unauthenticated", boolean: true, def: "false",
		help: "Allow --ip to be an address other than loopback while HTTP requests are not authenticated. Anyone who can reach the port can then use every module.",
		set: func(c *Config, v string) error {
			b, err := parseBool(v)
			c.InsecureUnauthenticated = b
			return err
		},
		get: func(c *Config) string { return strconv.FormatBool(c.InsecureUnauthenticated) }},
	{name: "http_credentials", help: "HTTP credentials, as in Mesos: {\"credentials\":[{\"principal\":\"...\",\"secret\":\"...\"}]} given as file://PATH (preferred: the secrets stay out of ps and /flags), an absolute path, or inline JSON.",
		set: func(c *Config, v string) error { c.HTTPCredentials = v; return nil },
		get: func(c *Config) string { return redact(c.HTTPCredentials) }},
	{name: "authenticate_http_readonly", boolean: true, def: "false",
		help: "Require HTTP basic authentication for read-only endpoints (realm mesos-agent-readonly).",
		set: func(c *Config, v string) error {
			b, err := parseBool(v)
			c.AuthenticateHTTPReadonly = b
			return err
		},
		get: func(c *Config) string { return strconv.FormatBool(c.AuthenticateHTTPReadonly) }},
	{name: "authenticate_http_readwrite", boolean: true, def: "false",
		help: "Require HTTP basic authentication for endpoints that change things (realm mesos-agent-readwrite), such as /remote/execute.",
		set: func(c *Config, v string) error {
			b, err := parseBool(v)
			c.AuthenticateHTTPReadwrite = b
			return err
		},
		get: func(c *Config) string { return strconv.FormatBool(c.AuthenticateHTTPReadwrite) }},
	{name: "acls", help: "Access control lists, in Mesos's JSON shape ({\"permissive\": false, \"<action>\": [...]}), as file://PATH, an absolute path, or inline JSON.",
		set: func(c *Config, v string) error { c.ACLs = v; return nil },
		get: func(c *Config) string { return c.ACLs }},
	{name: "ssl_cert_file", help: "Serve HTTPS with this PEM certificate (chain); needs --ssl_key_file.",
		set: func(c *Config, v string) error { c.SSLCertFile = v; return nil },
		get: func(c *Config) string { return c.SSLCertFile }},
	{name: "ssl_key_file", help: "The PEM private key of --ssl_cert_file.",
		set: func(c *Config, v string) error { c.SSLKeyFile = v; return nil },
		get: func(c *Config) string { return c.SSLKeyFile }},
	{name: "ssl_ca_file", help: "Require a client certificate signed by a CA in this PEM file (mutual TLS); the certificate's common name is the principal.",
		set: func(c *Config, v string) error { c.SSLCAFile = v; return nil },
		get: func(c *Config) string { return c.SSLCAFile }},
	{name: "help", boolean: true, help: "Print this help and exit.",
		set: func(*Config, string) error { return nil },
		get: func(*Config) string { return "" }},
}

func lookup(name string) *flag {
	for i := range flags {
		if flags[i].name == name {
			return &flags[i]
		}
	}
	return nil
}

func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

// Parse reads the flags from args (without the program name) and from
// MESOS_<NAME> variables in environ; the command line wins. Unknown flags
// on the command line are errors; unknown MESOS_ variables are ignored, as
// the Mesos agent does. Every problem is reported, joined. For --help it
// returns ErrHelp.
func Parse(args, environ []string) (Config, error) {
	var c Config
	var errs []error
	from := map[string]string{} // flag name -> where it was given
	bad := map[string]bool{}    // flags whose value was rejected
	apply := func(f *flag, v, where string) {
		if err := f.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("flag '%s' (%s): %w", f.name, where, err))
			bad[f.name] = true
		}
	}

	for _, f := range flags {
		if f.def != "" {
			apply(&f, f.def, "default")
		}
	}

	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, "MESOS_")
		if !ok {
			continue
		}
		f := lookup(strings.ToLower(name))
		if f == nil || f.name == "help" {
			continue
		}
		apply(f, v, k)
		from[f.name] = k
	}

	help := false
	for _, arg := range args {
		body, ok := strings.CutPrefix(arg, "--")
		if !ok || body == "" {
			errs = append(errs, fmt.Errorf("unexpected argument %q: flags are written --name=value", arg))
			continue
		}
		name, value, hasValue := strings.Cut(body, "=")
		name = strings.ReplaceAll(name, "-", "_")
		negated := false
		f := lookup(name)
		if f == nil {
			if n, ok := strings.CutPrefix(name, "no_"); ok && lookup(n) != nil {
				f, negated = lookup(n), true
			}
		}
		switch {
		case f == nil:
			errs = append(errs, fmt.Errorf("unknown flag --%s", name))
			continue
		case negated && !f.boolean:
			errs = append(errs, fmt.Errorf("flag '%s' is not a boolean and cannot be given as --no-%s", f.name, f.name))
			continue
		case negated && hasValue:
			errs = append(errs, fmt.Errorf("flag '%s': --no-%s takes no value", f.name, f.name))
			continue
		case !hasValue && !f.boolean:
			errs = append(errs, fmt.Errorf("flag '%s' needs a value: --%s=VALUE", f.name, f.name))
			continue
		}
		if prev, dup := from[f.name]; dup && strings.HasPrefix(prev, "--") {
			errs = append(errs, fmt.Errorf("flag '%s' given twice (%s and %s)", f.name, prev, arg))
			continue
		}
		if f.name == "help" {
			help = true
			continue
		}
		switch {
		case negated:
			value = "false"
		case !hasValue:
			value = "true"
		}
		from[f.name] = arg
		apply(f, value, "--"+f.name)
	}
	if help {
		return c, ErrHelp
	}

	if c.WorkDir == "" && !bad["work_dir"] {
		errs = append(errs, errors.New("flag 'work_dir' is required, but it was not provided"))
	}
	if c.Modules != "" && c.ModulesDir != "" {
		errs = append(errs, errors.New("only one of --modules or --modules_dir should be specified"))
	}
	if (c.SSLCertFile == "") != (c.SSLKeyFile == "") {
		errs = append(errs, errors.New("--ssl_cert_file and --ssl_key_file go together"))
	}
	if c.SSLCAFile != "" && c.SSLCertFile == "" {
		errs = append(errs, errors.New("--ssl_ca_file (client certificates) needs --ssl_cert_file and --ssl_key_file"))
	}
	if (c.AuthenticateHTTPReadonly || c.AuthenticateHTTPReadwrite) && c.HTTPCredentials == "" && c.SSLCAFile == "" {
		errs = append(errs, errors.New("--authenticate_http_readonly/--authenticate_http_readwrite need --http_credentials (or client certificates with --ssl_ca_file)"))
	}
	if !bad["ip"] && !c.Loopback() && !c.InsecureUnauthenticated && !c.AuthenticateHTTPReadwrite {
		errs = append(errs, fmt.Errorf("refusing to listen on %s without HTTP authentication: anyone who can reach it could run commands here; bind loopback (--ip=127.0.0.1) or pass --insecure_unauthenticated if you mean it", c.IP))
	}
	return c, errors.Join(errs...)
}

// redact hides inline credentials (a file:// or path value is shown).
func redact(v string) string {
	if v == "" || strings.HasPrefix(v, "file://") || strings.HasPrefix(v, "/") {
		return v
	}
	return "(inline credentials, not shown)"
}

// Loopback reports whether the host listens on a loopback address only.
func (c Config) Loopback() bool {
	ip := net.ParseIP(c.IP)
	return ip != nil && ip.IsLoopback()
}

// Flags lists every flag that has a value, by name, as /flags shows them
// and modules receive them.
func (c Config) Flags() []Flag {
	var out []Flag
	for _, f := range flags {
		if f.name == "help" {
			continue
		}
		if v := f.get(&c); v != "" {
			out = append(out, Flag{Name: f.name, Value: v})
		}
	}
	slices.SortFunc(out, func(a, b Flag) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Usage prints the flags, their help and defaults.
func Usage(w io.Writer) {
	fmt.Fprint(w, "Usage: modhost --work_dir=DIR [--modules=... | --modules_dir=DIR] [options]\n"+
		"       modhost new-module [--dir=DIR] NAME    (writes a new module to start from)\n\n"+
		"Every flag can also be set as MESOS_<FLAG> in the environment (MESOS_WORK_DIR=...);\n"+
		"the command line wins.\n\n")
	for _, f := range flags {
		switch {
		case f.name == "help":
			fmt.Fprintf(w, "  --help\n")
		case f.boolean:
			fmt.Fprintf(w, "  --[no-]%s\n", f.name)
		default:
			fmt.Fprintf(w, "  --%s=VALUE\n", f.name)
		}
		for _, l := range wrap(f.help, 72) {
			fmt.Fprintf(w, "      %s\n", l)
		}
		if f.def != "" {
			fmt.Fprintf(w, "      (default: %s)\n", f.def)
		}
	}
}

func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
