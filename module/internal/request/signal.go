package request

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
)

// Signal scopes of [Signal].
const (
	// ScopeGroup signals the command's whole process group.
	ScopeGroup = "group"
	// ScopeLeader signals only the command's own process.
	ScopeLeader = "leader"
)

// signalName returns the Linux name of signal n without "SIG", or "" when n
// is not in 1..31.
func signalName(n int) string {
	const names = "HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT " +
		"CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS"
	if n < 1 || n > 31 {
		return ""
	}
	return strings.Fields(names)[n-1]
}

// SignalName returns the name of sig, such as "SIGTERM", for the Linux
// signals 1 to 31, and "signal N" for any other number.
func SignalName(sig syscall.Signal) string {
	if name := signalName(int(sig)); name != "" {
		return "SIG" + name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// ParseSignal parses a Linux signal, 1 to 31, by name with or without the
// "SIG" prefix and in any case ("SIGTERM", "TERM", "sigterm") or by number
// ("15"). Signal 0 and the real-time signals are rejected. Errors are
// *Error values with an empty Field.
func ParseSignal(s string) (syscall.Signal, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.Atoi(s)
		if err == nil && signalName(n) != "" {
			return syscall.Signal(n), nil
		}
		return 0, errorf("", "signal number %s is out of range (want 1 to 31, or a name such as \"SIGTERM\")", strconv.Quote(s))
	}
	name := strings.ToUpper(s)
	name = strings.TrimPrefix(name, "SIG")
	for n := 1; n <= 31; n++ {
		if signalName(n) == name {
			return syscall.Signal(n), nil
		}
	}
	return 0, errorf("", "unknown signal %s (want a name such as \"SIGTERM\", \"TERM\" or \"HUP\", or a number from 1 to 31)", strconv.Quote(s))
}

// getSignal decodes a signal field: a string for ParseSignal or a JSON
// integer.
func getSignal(field string, raw []byte) (syscall.Signal, error) {
	var s string
	switch k := kind(raw); k {
	case "a string":
		var err error
		if s, err = getString(field, raw); err != nil {
			return 0, err
		}
	case "a number":
		s = strings.TrimSpace(string(raw))
	default:
		return 0, errorf(field, `want a signal name such as "SIGTERM" or a number, got %s`, k)
	}
	sig, err := ParseSignal(s)
	if err != nil {
		return 0, errorf(field, "%s", err.(*Error).Msg)
	}
	return sig, nil
}

// getPid decodes a process id: a JSON integer from 1 to 2147483647.
func getPid(field string, raw []byte) (int, error) {
	if k := kind(raw); k != "a number" {
		return 0, errorf(field, "want a positive integer, got %s", k)
	}
	num := strings.TrimSpace(string(raw))
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, errorf(field, "want a positive integer, got %s", num)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil || n > math.MaxInt32:
		return 0, errorf(field, "%s is above the maximum process id %d", num, math.MaxInt32)
	case n <= 0:
		return 0, errorf(field, "want a positive integer, got %s", num)
	}
	return int(n), nil
}

// Pid decodes {"pid": N}: a process id, an integer from 1 to 2147483647.
// Every error is an *Error.
func Pid(body []byte) (int, error) {
	o, err := parseBody(body)
	if err != nil {
		return 0, err
	}
	if err := o.unknown("", []string{"pid"}, nil); err != nil {
		return 0, err
	}
	raw, ok := o.get("pid")
	if !ok {
		return 0, errorf("pid", "required (the process id, e.g. {\"pid\": 1234})")
	}
	return getPid("pid", raw)
}

// Kill decodes {"pid": N, "signal": "SIGTERM"}: a process id as for [Pid]
// and a signal as for [ParseSignal] (a JSON integer also works), SIGTERM
// when absent. Every error is an *Error.
func Kill(body []byte) (pid int, sig syscall.Signal, err error) {
	o, err := parseBody(body)
	if err != nil {
		return 0, 0, err
	}
	if err := o.unknown("", []string{"pid", "signal"}, nil); err != nil {
		return 0, 0, err
	}
	raw, ok := o.get("pid")
	if !ok {
		return 0, 0, errorf("pid", "required (the process id, e.g. {\"pid\": 1234, \"signal\": \"SIGTERM\"})")
	}
	if pid, err = getPid("pid", raw); err != nil {
		return 0, 0, err
	}
	sig = syscall.Signal(15) // SIGTERM
	if raw, ok := o.get("signal"); ok {
		if sig, err = getSignal("signal", raw); err != nil {
			return 0, 0, err
		}
	}
	return pid, sig, nil
}

// Signal decodes {"signal": "SIGHUP", "scope": "group"}: a signal as for
// [ParseSignal] (required; a JSON integer also works) and the scope,
// ScopeGroup (the default) or ScopeLeader. Every error is an *Error.
func Signal(body []byte) (sig syscall.Signal, scope string, err error) {
	o, err := parseBody(body)
	if err != nil {
		return 0, "", err
	}
	if err := o.unknown("", []string{"signal", "scope"}, nil); err != nil {
		return 0, "", err
	}
	raw, ok := o.get("signal")
	if !ok {
		return 0, "", errorf("signal", "required (a name such as \"SIGHUP\" or a number from 1 to 31)")
	}
	if sig, err = getSignal("signal", raw); err != nil {
		return 0, "", err
	}
	scope = ScopeGroup
	if raw, ok := o.get("scope"); ok {
		if scope, err = getString("scope", raw); err != nil {
			return 0, "", err
		}
		if scope != ScopeGroup && scope != ScopeLeader {
			return 0, "", errorf("scope", "want %q (the whole process group) or %q (the leader only), got %s", ScopeGroup, ScopeLeader, strconv.Quote(scope))
		}
	}
	return sig, scope, nil
}
