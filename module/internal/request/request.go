package request

import (
	"fmt"
	"strings"
	"time"
)

// Command is a validated request to run something.
type Command struct {
	// Path is the executable: the command in argv mode, or "/bin/sh" when
	// Shell is true. It may be a bare name to look up in PATH.
	Path string
	// Args is the full argv, argv[0] included; for a shell command it is
	// ["/bin/sh", "-c", command line].
	Args []string
	// Shell tells that the command line runs through /bin/sh -c.
	Shell bool
	// Env is the requested environment (nil when none). Names are
	// non-empty and contain neither '=' nor NUL.
	Env map[string]string
	// Cwd is the working directory: "" for the caller's default, otherwise
	// an absolute path.
	Cwd string
	// User is the user to run as; "" for the caller's default.
	User string
	// Stdin is the standard input, decoded from the base64 field "stdin"
	// (REST form only); nil when absent.
	Stdin []byte
	// Timeout is the time limit; 0 means the caller's default applies.
	Timeout time.Duration
	// Grace is the time between the polite signal and SIGKILL; 0 means the
	// caller's default applies (REST form only).
	Grace time.Duration
	// Labels are free-form caller labels (REST form only); nil when none.
	Labels map[string]string
	// IdempotencyKey identifies retries of the same request (REST form
	// only); "" when absent.
	IdempotencyKey string
	// Form names the accepted shape, for audit and debugging: FormExecute,
	// FormCommandInfo or FormTasks.
	Form string
}

// The values of Command.Form.
const (
	// FormExecute is the seed's form of POST /remote/execute.
	FormExecute = "execute"
	// FormCommandInfo is the Mesos CommandInfo form of POST /remote/execute.
	FormCommandInfo = "commandinfo"
	// FormTasks is the REST form of POST /remote/tasks.
	FormTasks = "tasks"
)

// ShellPath is the shell that runs shell commands, as in Mesos.
const ShellPath = "/bin/sh"

// Default limits, used where a Limits field is zero (or negative).
const (
	// DefaultMaxArgs is the default of Limits.MaxArgs.
	DefaultMaxArgs = 4096
	// DefaultMaxArgBytes is the default of Limits.MaxArgBytes.
	DefaultMaxArgBytes = 1 << 20
	// DefaultMaxStdin is the default of Limits.MaxStdin.
	DefaultMaxStdin = 1 << 20
)

// Limits bounds what a request may ask for. The zero value applies the
// defaults and forbids shell commands. The errors name the module's
// parameters that set each limit (max_timeout, max_args, max_arg_bytes,
// max_stdin, allow_shell; see package remote's Params).
type Limits struct {
	// MaxTimeout is the largest timeout a request may ask for; 0 means no
	// maximum.
	MaxTimeout time.Duration
	// MaxArgs is the largest argv, argv[0] included; 0 means
	// DefaultMaxArgs.
	MaxArgs int
	// MaxArgBytes bounds the total size of argv and environment, counted
	// as execve does (each string with its terminating NUL, each
	// variable as NAME=value); 0 means DefaultMaxArgBytes.
	MaxArgBytes int
	// MaxStdin is the largest decoded stdin; 0 means DefaultMaxStdin.
	MaxStdin int
	// AllowShell permits shell commands; when false they are rejected
	// with an error that errors.Is ErrShellNotAllowed.
	AllowShell bool
}

func (l Limits) maxArgs() int {
	if l.MaxArgs <= 0 {
		return DefaultMaxArgs
	}
	return l.MaxArgs
}

func (l Limits) maxArgBytes() int {
	if l.MaxArgBytes <= 0 {
		return DefaultMaxArgBytes
	}
	return l.MaxArgBytes
}

func (l Limits) maxStdin() int {
	if l.MaxStdin <= 0 {
		return DefaultMaxStdin
	}
	return l.MaxStdin
}

// Error is a client error: the HTTP layer answers 400 (or the status it
// maps the error to) with {"error": Error()}. Every error the decoders of
// this package return is an *Error.
type Error struct {
	// Field is the path of the offending field, such as "timeout",
	// "arguments[2]" or "environment.variables[0].name"; "" when the error
	// is about the body as a whole.
	Field string
	// Msg says what is wrong and how to fix it.
	Msg string
}

// Error returns "field: msg", or msg when Field is empty.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Is reports whether target is an *Error with the same field and message,
// so that errors.Is(err, ErrShellNotAllowed) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && *t == *e
}

// ErrShellNotAllowed is the error for a shell command when
// Limits.AllowShell is false. Compare with errors.Is.
var ErrShellNotAllowed error = &Error{
	Field: "shell",
	Msg: `running commands through /bin/sh is disabled on this agent (parameter allow_shell); ` +
		`send "shell": false and give the program and its arguments separately ` +
		`(in the Mesos CommandInfo form "shell" defaults to true)`,
}

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// finish checks the invariants every accepted Command satisfies, whatever
// its form, and the argument limits.
func finish(c Command, lim Limits) (Command, error) {
	if c.Path == "" || len(c.Args) == 0 {
		return Command{}, errorf("command", "required (the executable to run, e.g. \"ls\")")
	}
	if c.Shell {
		if !lim.AllowShell {
			return Command{}, ErrShellNotAllowed
		}
		if c.Path != ShellPath || len(c.Args) != 3 || c.Args[0] != ShellPath || c.Args[1] != "-c" {
			return Command{}, errorf("shell", "internal error: malformed shell command")
		}
	}
	if strings.IndexByte(c.Path, 0) >= 0 {
		return Command{}, errorf("command", "contains a NUL byte")
	}
	for i, a := range c.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return Command{}, errorf(fmt.Sprintf("arguments[%d]", i), "contains a NUL byte")
		}
	}
	if n, max := len(c.Args), lim.maxArgs(); n > max {
		return Command{}, errorf("arguments", "argv has %d entries (the program and its arguments), above the maximum of %d (parameter max_args)", n, max)
	}
	size := 0
	for _, a := range c.Args {
		size += len(a) + 1
	}
	for k, v := range c.Env {
		if err := checkEnvName("env", k); err != nil {
			return Command{}, err
		}
		if strings.IndexByte(v, 0) >= 0 {
			return Command{}, errorf(keyPath("env", k), "contains a NUL byte")
		}
		size += len(k) + 1 + len(v) + 1
	}
	if max := lim.maxArgBytes(); size > max {
		return Command{}, errorf("arguments", "the command line and environment take %d bytes, above the maximum of %d (parameter max_arg_bytes)", size, max)
	}
	if c.Timeout < 0 {
		return Command{}, errorf("timeout", "must not be negative")
	}
	if lim.MaxTimeout > 0 && c.Timeout > lim.MaxTimeout {
		return Command{}, errorf("timeout", "%v is above the maximum of %v (parameter max_timeout)", c.Timeout, lim.MaxTimeout)
	}
	if c.Grace < 0 {
		return Command{}, errorf("grace", "must not be negative")
	}
	for _, s := range []struct{ field, v string }{{"cwd", c.Cwd}, {"user", c.User}, {"idempotency_key", c.IdempotencyKey}} {
		if strings.IndexByte(s.v, 0) >= 0 {
			return Command{}, errorf(s.field, "contains a NUL byte")
		}
	}
	for k, v := range c.Labels {
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
			return Command{}, errorf(keyPath("labels", k), "contains a NUL byte")
		}
	}
	return c, nil
}

// checkEnvName checks an environment variable name.
func checkEnvName(field, name string) error {
	switch {
	case name == "":
		return errorf(field, "empty variable name")
	case strings.IndexByte(name, 0) >= 0:
		return errorf(field, "variable name %q contains a NUL byte", name)
	case strings.IndexByte(name, '=') >= 0:
		return errorf(field, "variable name %q contains '=' (send the name and the value separately)", name)
	}
	return nil
}
