package remote

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/execmod/execmod/module/internal/request"
)

// Params are the module's modules.json parameters, typed and checked.
type Params struct {
	DefaultTimeout time.Duration // default_timeout: when a request gives none (30s)
	MaxTimeout     time.Duration // max_timeout: the most a request may ask for (24h)
	KillGrace      time.Duration // kill_grace_period: SIGTERM to SIGKILL (10s)
	MaxOutput      int64         // max_output_bytes: stored per stream (4 MiB)
	MaxConcurrent  int           // max_concurrent: running at once (8 × cores)
	MaxQueued      int           // max_queued: waiting for a slot (64)
	Retention      time.Duration // retention: finished tasks are kept this long (24h)
	MaxTasks       int           // max_tasks: finished tasks kept at most (10000)
	AllowShell     bool          // allow_shell: whether shell:true is allowed (true)
	EnvAllowlist   []string      // env_allowlist: module environment variables a task inherits (PATH, LANG, TZ)
	MaxArgs        int           // max_args: argv entries, the program included (4096)
	MaxArgBytes    int           // max_arg_bytes: argv and environment as execve counts them (1MB)
	MaxStdin       int           // max_stdin: decoded stdin of POST /tasks (1MB)
	// JournalReserve is journal_reserve: the space the task journal keeps
	// allocated so that results can be written on a full disk (1MB; 0:
	// none; see journal).
	JournalReserve int64
}

// The most max_stdin and max_arg_bytes may be: what fits in a request
// body (maxBody, with stdin in base64).
const (
	maxStdinLimit    = maxBody / 4 * 3
	maxArgBytesLimit = maxBody
)

// maxReserve bounds journal_reserve.
const maxReserve = 1 << 30

// DefaultParams are the parameters' defaults.
func DefaultParams() Params {
	return Params{
		DefaultTimeout: 30 * time.Second,
		MaxTimeout:     24 * time.Hour,
		KillGrace:      10 * time.Second,
		MaxOutput:      4 << 20,
		MaxConcurrent:  8 * runtime.NumCPU(),
		MaxQueued:      64,
		Retention:      24 * time.Hour,
		MaxTasks:       10000,
		AllowShell:     true,
		EnvAllowlist:   []string{"PATH", "LANG", "TZ"},
		MaxArgs:        request.DefaultMaxArgs,
		MaxArgBytes:    request.DefaultMaxArgBytes,
		MaxStdin:       request.DefaultMaxStdin,
		JournalReserve: reserveSize,
	}
}

// ParseParams checks every parameter and reports every problem at once;
// unknown names are errors, so a misspelt parameter is not silently
// ignored.
func ParseParams(kv map[string]string) (Params, error) {
	p := DefaultParams()
	var errs []error
	bad := func(name, value, want string) {
		errs = append(errs, fmt.Errorf("parameter %s: %q is not %s", name, value, want))
	}
	duration := func(name, v string, dst *time.Duration, allowZero bool) {
		d, err := request.ParseDuration(v)
		if err != nil || (d == 0 && !allowZero) {
			bad(name, v, "a positive duration (e.g. 30s, 10mins)")
			return
		}
		*dst = d
	}
	count := func(name, v string, dst *int, min int) {
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			bad(name, v, fmt.Sprintf("a whole number of at least %d", min))
			return
		}
		*dst = n
	}
	names := make([]string, 0, len(kv))
	for k := range kv {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		v := kv[name]
		switch name {
		case "default_timeout":
			duration(name, v, &p.DefaultTimeout, false)
		case "max_timeout":
			duration(name, v, &p.MaxTimeout, false)
		case "kill_grace_period":
			duration(name, v, &p.KillGrace, true)
		case "retention":
			duration(name, v, &p.Retention, true)
		case "max_output_bytes":
			n, err := parseBytes(v)
			if err != nil || n < 1024 {
				bad(name, v, "a size of at least 1KB (e.g. 4MB, 65536)")
				break
			}
			p.MaxOutput = n
		case "max_concurrent":
			count(name, v, &p.MaxConcurrent, 1)
		case "max_queued":
			count(name, v, &p.MaxQueued, 0)
		case "max_tasks":
			count(name, v, &p.MaxTasks, 1)
		case "allow_shell":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(name, v, "true or false")
				break
			}
			p.AllowShell = b
		case "max_args":
			count(name, v, &p.MaxArgs, 1)
		case "max_arg_bytes", "max_stdin":
			n, err := parseBytes(v)
			lo, hi, dst := int64(1), int64(maxArgBytesLimit), &p.MaxArgBytes
			if name == "max_stdin" {
				hi, dst = maxStdinLimit, &p.MaxStdin
			}
			if err != nil || n < lo || n > hi {
				bad(name, v, fmt.Sprintf("a size from %d to %d bytes (e.g. 1MB; a request body holds at most %d)", lo, hi, maxBody))
				break
			}
			*dst = int(n)
		case "journal_reserve":
			n, err := parseBytes(v)
			if err != nil || n < 0 || n > maxReserve {
				bad(name, v, "a size from 0 to 1GB (e.g. 1MB; 0 for none)")
				break
			}
			p.JournalReserve = n
		case "env_allowlist":
			p.EnvAllowlist = nil
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n != "" {
					p.EnvAllowlist = append(p.EnvAllowlist, n)
				}
			}
		default:
			errs = append(errs, fmt.Errorf("unknown parameter %q (known: default_timeout, max_timeout, kill_grace_period, "+
				"max_output_bytes, max_concurrent, max_queued, retention, max_tasks, allow_shell, env_allowlist, "+
				"max_args, max_arg_bytes, max_stdin, journal_reserve)", name))
		}
	}
	if p.DefaultTimeout > p.MaxTimeout {
		errs = append(errs, fmt.Errorf("parameter default_timeout (%s) is above max_timeout (%s)", p.DefaultTimeout, p.MaxTimeout))
	}
	return p, errors.Join(errs...)
}

// parseBytes reads a byte size: a plain number of bytes, or Mesos's
// syntax (16MB, 512KB; powers of 1024).
func parseBytes(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n < 0 || n > (1<<62)/u.n {
				return 0, errors.New("bad size")
			}
			return n * u.n, nil
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// limits are the request decoders' limits under these parameters.
func (p Params) limits() request.Limits {
	return request.Limits{MaxTimeout: p.MaxTimeout, AllowShell: p.AllowShell,
		MaxArgs: p.MaxArgs, MaxArgBytes: p.MaxArgBytes, MaxStdin: p.MaxStdin}
}
