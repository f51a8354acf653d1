package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// env is everything a command sees of its process: injectable for tests.
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	progress       bool // draw a progress line on stderr
}

// options are the flags of every command; each command uses its own.
type options struct {
	// connection
	agent, agents, master          string
	agentFilters                   stringList
	principal, secret, credentials string
	ca, cert, key                  string
	json                           bool

	// run and policy check
	shell, detach             bool
	timeout, grace            time.Duration
	envs, labels              kvList
	cwd, user, stdin, idemKey string
	maxConcurrency, maxErrors string
	state, signal             string
	follow, stderrStream      bool
	hostLog                   string // audit verify --host-log
}

// kvList is a repeatable k=v flag.
type kvList struct{ m map[string]string }

func (l *kvList) String() string { return "" }

func (l *kvList) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	if l.m == nil {
		l.m = map[string]string{}
	}
	l.m[k] = v
	return nil
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// usageError is a bad command line: exit 2 with the message.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitError carries an exit code and what to say (nothing when msg is
// empty).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// run is remotectl: args without the program name.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr,
		getenv: func(k string) string { return vars[k] }, now: time.Now, progress: isTerminal(stderr)}
	return e.main(args)
}

func (e *env) main(args []string) int {
	err := e.dispatch(args)
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ee exitError
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(e.stdout, usageText)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "remotectl: %s\nRun 'remotectl help' for usage.\n", ue.msg)
		return exitUsage
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(e.stderr, "remotectl: %s\n", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintf(e.stderr, "remotectl: %v\n", err)
	return exitFailure
}

// flags is a FlagSet with the connection flags and the command's own.
func (o *options) flags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.agent, "agent", o.agent, "")
	fs.StringVar(&o.agents, "agents", o.agents, "")
	fs.StringVar(&o.master, "master", o.master, "")
	fs.Var(&o.agentFilters, "agent-filter", "")
	fs.StringVar(&o.principal, "principal", o.principal, "")
	fs.StringVar(&o.secret, "secret", o.secret, "")
	fs.StringVar(&o.credentials, "credentials", o.credentials, "")
	fs.StringVar(&o.ca, "ca", o.ca, "")
	fs.StringVar(&o.cert, "cert", o.cert, "")
	fs.StringVar(&o.key, "key", o.key, "")
	fs.BoolVar(&o.json, "json", o.json, "")
	runFlags := func() {
		fs.BoolVar(&o.shell, "shell", false, "")
		fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "")
		fs.DurationVar(&o.grace, "grace", 0, "")
		fs.Var(&o.envs, "env", "")
		fs.Var(&o.labels, "label", "")
		fs.StringVar(&o.cwd, "cwd", "", "")
		fs.StringVar(&o.user, "user", "", "")
		fs.StringVar(&o.stdin, "stdin", "", "")
		fs.StringVar(&o.idemKey, "idempotency-key", "", "")
	}
	switch cmd {
	case "run":
		runFlags()
		fs.BoolVar(&o.detach, "detach", false, "")
		fs.StringVar(&o.maxConcurrency, "max-concurrency", "10", "")
		fs.StringVar(&o.maxErrors, "max-errors", "0", "")
	case "policy check":
		runFlags()
	case "ps":
		fs.StringVar(&o.state, "state", "", "")
		fs.Var(&o.labels, "label", "")
	case "kill":
		fs.StringVar(&o.signal, "signal", "", "")
	case "audit verify":
		fs.StringVar(&o.hostLog, "host-log", "", "")
	case "logs":
		fs.BoolVar(&o.follow, "f", false, "")
		fs.BoolVar(&o.follow, "follow", false, "")
		fs.BoolVar(&o.stderrStream, "stderr", false, "")
	}
	return fs
}

// parse parses args for cmd; with interspersed, flags may follow
// positional arguments (up to a "--").
func parse(fs *flag.FlagSet, args []string, interspersed bool) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
		}
		rest := fs.Args()
		// flag stops at "--" (consumed) or at the first non-flag.
		consumed := len(args) - len(rest)
		dashdash := consumed > 0 && args[consumed-1] == "--"
		if !interspersed || dashdash || len(rest) == 0 {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (e *env) dispatch(args []string) error {
	o := &options{}
	global := o.flags("remotectl")
	rest, err := parse(global, args, false)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usagef("no command")
	}
	cmd, rest := rest[0], rest[1:]
	if cmd == "policy" {
		if len(rest) == 0 || rest[0] != "check" {
			return usagef("policy: the only subcommand is check")
		}
		cmd, rest = "policy check", rest[1:]
	}
	if cmd == "audit" {
		if len(rest) == 0 || rest[0] != "verify" {
			return usagef("audit: the only subcommand is verify")
		}
		cmd, rest = "audit verify", rest[1:]
	}
	if cmd == "help" {
		return flag.ErrHelp
	}
	fs := o.flags(cmd)
	pos, err := parse(fs, rest, cmd != "run" && cmd != "policy check")
	if err != nil {
		return err
	}
	if o.agents != "" || o.master != "" {
		if cmd != "run" {
			return usagef("%s: --agents and --master are for run; use --agent with %s", cmd, cmd)
		}
		if o.detach {
			return usagef("run: --detach takes one --agent")
		}
		return e.fanOut(o, pos)
	}
	one := func() (string, error) {
		if len(pos) != 1 {
			return "", usagef("%s: want one task ID, got %d arguments", cmd, len(pos))
		}
		return pos[0], nil
	}
	noArgs := func() error {
		if len(pos) != 0 {
			return usagef("%s: unexpected arguments %q", cmd, pos)
		}
		return nil
	}
	switch cmd {
	case "run":
		return e.runOne(o, pos)
	case "policy check":
		return e.policyCheck(o, pos)
	case "ps":
		if err := noArgs(); err != nil {
			return err
		}
		return e.ps(o)
	case "status":
		if err := noArgs(); err != nil {
			return err
		}
		return e.status(o)
	case "audit verify":
		if len(pos) != 1 {
			return usagef("audit verify: want one FILE (a module's audit.jsonl), got %d arguments", len(pos))
		}
		return e.auditVerify(o, pos[0])
	case "get", "logs", "kill", "wait":
		id, err := one()
		if err != nil {
			return err
		}
		switch cmd {
		case "get":
			return e.get(o, id)
		case "logs":
			return e.logs(o, id)
		case "kill":
			return e.kill(o, id)
		default:
			return e.wait(o, id)
		}
	}
	return usagef("unknown command %q", cmd)
}

// readStdin reads the --stdin argument: a file, or "-" for our stdin.
func (e *env) readStdin(name string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	if name == "-" {
		return io.ReadAll(e.stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usagef("--stdin: %v", err)
	}
	return b, nil
}
