package request

import (
	"syscall"
	"testing"
	"time"
)

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
		err  string
	}{
		{in: "SIGTERM", want: 15},
		{in: "TERM", want: 15},
		{in: "sigterm", want: 15},
		{in: "SigTerm", want: 15},
		{in: "15", want: 15},
		{in: "1", want: 1},
		{in: "HUP", want: 1},
		{in: "SIGKILL", want: 9},
		{in: "STKFLT", want: 16},
		{in: "SIGCHLD", want: 17},
		{in: "SIGWINCH", want: 28},
		{in: "IO", want: 29},
		{in: "PWR", want: 30},
		{in: "SIGSYS", want: 31},
		{in: "31", want: 31},
		{in: "0", err: `signal number "0" is out of range (want 1 to 31, or a name such as "SIGTERM")`},
		{in: "32", err: `signal number "32" is out of range (want 1 to 31, or a name such as "SIGTERM")`},
		{in: "015", want: 15},
		{in: "99999999999999999999", err: `signal number "99999999999999999999" is out of range (want 1 to 31, or a name such as "SIGTERM")`},
		{in: "-9", err: `unknown signal "-9" (want a name such as "SIGTERM", "TERM" or "HUP", or a number from 1 to 31)`},
		{in: "", err: `unknown signal "" (want a name such as "SIGTERM", "TERM" or "HUP", or a number from 1 to 31)`},
		{in: "SIG", err: `unknown signal "SIG" (want a name such as "SIGTERM", "TERM" or "HUP", or a number from 1 to 31)`},
		{in: "SIGSIGTERM", err: `unknown signal "SIGSIGTERM" (want a name such as "SIGTERM", "TERM" or "HUP", or a number from 1 to 31)`},
		{in: " TERM", err: `unknown signal " TERM" (want a name such as "SIGTERM", "TERM" or "HUP", or a number from 1 to 31)`},
		{in: "SIGRTMIN", err: `unknown signal "SIGRTMIN" (want a name such as "SIGTERM", "TERM" or "HUP", or a number from 1 to 31)`},
	} {
		got, err := ParseSignal(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseSignal(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestSignalNameRoundTrip(t *testing.T) {
	want := map[syscall.Signal]string{1: "SIGHUP", 2: "SIGINT", 9: "SIGKILL", 15: "SIGTERM", 16: "SIGSTKFLT", 19: "SIGSTOP", 31: "SIGSYS"}
	for sig, name := range want {
		if got := SignalName(sig); got != name {
			t.Errorf("SignalName(%d) = %q, want %q", sig, got, name)
		}
	}
	for n := 1; n <= 31; n++ {
		sig := syscall.Signal(n)
		got, err := ParseSignal(SignalName(sig))
		if err != nil || got != sig {
			t.Errorf("ParseSignal(SignalName(%d)) = %v, %v", n, got, err)
		}
	}
	if got := SignalName(0); got != "signal 0" {
		t.Errorf("SignalName(0) = %q", got)
	}
	if got := SignalName(40); got != "signal 40" {
		t.Errorf("SignalName(40) = %q", got)
	}
}

func TestPid(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
		err  string
	}{
		{body: `{"pid": 1234}`, want: 1234},
		{body: `{"pid":1}`, want: 1},
		{body: `{"pid":2147483647}`, want: 2147483647},
		{body: `{"pid":4194305}`, want: 4194305},
		{body: `{"pid":2147483648}`, err: `pid: 2147483648 is above the maximum process id 2147483647`},
		{body: `{"pid":99999999999999999999999}`, err: `pid: 99999999999999999999999 is above the maximum process id 2147483647`},
		{body: `{"pid":1.5}`, err: `pid: want a positive integer, got 1.5`},
		{body: `{"pid":1e3}`, err: `pid: want a positive integer, got 1e3`},
		{body: `{"pid":"12"}`, err: `pid: want a positive integer, got a string`},
		{body: `{"pid":-3}`, err: `pid: want a positive integer, got -3`},
		{body: `{"pid":0}`, err: `pid: want a positive integer, got 0`},
		{body: `{"pid":null}`, err: `pid: required (the process id, e.g. {"pid": 1234})`},
		{body: `{}`, err: `pid: required (the process id, e.g. {"pid": 1234})`},
		{body: `{"pid":1,"sig":9}`, err: `unknown field "sig" (known: pid)`},
		{body: ``, err: `empty body: want a JSON object`},
		{body: `{"pid":1}{"pid":2}`, err: `unexpected data after the JSON object at offset 9; send exactly one object`},
		{body: `[1]`, err: `want a JSON object, got an array`},
	} {
		got, err := Pid([]byte(tc.body))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Pid(%s) = %v, %v; want error %q", tc.body, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Pid(%s) = %v, %v; want %d", tc.body, got, err, tc.want)
		}
	}
}

func TestKill(t *testing.T) {
	for _, tc := range []struct {
		body string
		pid  int
		sig  syscall.Signal
		err  string
	}{
		{body: `{"pid": 42, "signal": "SIGTERM"}`, pid: 42, sig: 15},
		{body: `{"pid": 42}`, pid: 42, sig: 15},
		{body: `{"pid": 42, "signal": null}`, pid: 42, sig: 15},
		{body: `{"pid": 42, "signal": "kill"}`, pid: 42, sig: 9},
		{body: `{"pid": 42, "signal": "9"}`, pid: 42, sig: 9},
		{body: `{"pid": 42, "signal": 9}`, pid: 42, sig: 9},
		{body: `{"signal": "KILL"}`, err: `pid: required (the process id, e.g. {"pid": 1234, "signal": "SIGTERM"})`},
		{body: `{"pid": 42, "signal": 0}`, err: `signal: signal number "0" is out of range (want 1 to 31, or a name such as "SIGTERM")`},
		{body: `{"pid": 42, "signal": 9.5}`, err: `signal: unknown signal "9.5" (want a name such as "SIGTERM", "TERM" or "HUP", or a number from 1 to 31)`},
		{body: `{"pid": 42, "signal": "SIGFOO"}`, err: `signal: unknown signal "SIGFOO" (want a name such as "SIGTERM", "TERM" or "HUP", or a number from 1 to 31)`},
		{body: `{"pid": 42, "signal": true}`, err: `signal: want a signal name such as "SIGTERM" or a number, got a boolean`},
		{body: `{"pid": 42, "signal": "TERM\u0000"}`, err: `signal: contains a NUL byte`},
		{body: `{"pid": 42, "scope": "group"}`, err: `unknown field "scope" (known: pid, signal)`},
		{body: `{"pid": -1}`, err: `pid: want a positive integer, got -1`},
	} {
		pid, sig, err := Kill([]byte(tc.body))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Kill(%s) = %v, %v, %v; want error %q", tc.body, pid, sig, err, tc.err)
			}
			continue
		}
		if err != nil || pid != tc.pid || sig != tc.sig {
			t.Errorf("Kill(%s) = %v, %v, %v; want %d, %d", tc.body, pid, sig, err, tc.pid, tc.sig)
		}
	}
}

func TestSignal(t *testing.T) {
	for _, tc := range []struct {
		body  string
		sig   syscall.Signal
		scope string
		err   string
	}{
		{body: `{"signal": "SIGHUP", "scope": "group"}`, sig: 1, scope: "group"},
		{body: `{"signal": "SIGHUP"}`, sig: 1, scope: "group"},
		{body: `{"signal": "int", "scope": "leader"}`, sig: 2, scope: "leader"},
		{body: `{"signal": 10, "scope": null}`, sig: 10, scope: "group"},
		{body: `{}`, err: `signal: required (a name such as "SIGHUP" or a number from 1 to 31)`},
		{body: `{"scope": "group"}`, err: `signal: required (a name such as "SIGHUP" or a number from 1 to 31)`},
		{body: `{"signal": "HUP", "scope": "all"}`, err: `scope: want "group" (the whole process group) or "leader" (the leader only), got "all"`},
		{body: `{"signal": "HUP", "scope": 1}`, err: `scope: want a string, got a number`},
		{body: `{"signal": "HUP", "pid": 1}`, err: `unknown field "pid" (known: signal, scope)`},
		{body: `{"signal": ["HUP"]}`, err: `signal: want a signal name such as "SIGTERM" or a number, got an array`},
	} {
		sig, scope, err := Signal([]byte(tc.body))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Signal(%s) = %v, %q, %v; want error %q", tc.body, sig, scope, err, tc.err)
			}
			continue
		}
		if err != nil || sig != tc.sig || scope != tc.scope {
			t.Errorf("Signal(%s) = %v, %q, %v; want %d, %q", tc.body, sig, scope, err, tc.sig, tc.scope)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "250us", want: 250 * time.Microsecond},
		{in: "30secs", want: 30 * time.Second},
		{in: "1.5mins", want: 90 * time.Second},
		{in: "100ms", want: 100 * time.Millisecond},
		{in: "2hrs", want: 2 * time.Hour},
		{in: "1days", want: 24 * time.Hour},
		{in: "2weeks", want: 14 * 24 * time.Hour},
		{in: "10ns", want: 10},
		{in: ".5secs", want: 500 * time.Millisecond},
		{in: "0.1secs", want: 100 * time.Millisecond},
		{in: "0.000000001secs", want: 1},
		{in: "2562047hrs", want: 2562047 * time.Hour},
		{in: "", err: `empty duration (want e.g. "30s", "1m30s", "30secs" or "1.5mins")`},
		{in: "30", err: `duration "30" has no unit (want e.g. "30s" or "30secs")`},
		{in: "-5s", err: `negative duration "-5s" (want zero or more)`},
		{in: "-5secs", err: `negative duration "-5secs" (want zero or more)`},
		{in: "5 secs", err: `invalid duration "5 secs" (want Go syntax such as "30s" or "1m30s", or Mesos syntax such as "30secs", "1.5mins", "100ms" or "2hrs")`},
		{in: "1.2.3secs", err: `invalid duration "1.2.3secs" (want Go syntax such as "30s" or "1m30s", or Mesos syntax such as "30secs", "1.5mins", "100ms" or "2hrs")`},
		{in: "secs", err: `invalid duration "secs" (want Go syntax such as "30s" or "1m30s", or Mesos syntax such as "30secs", "1.5mins", "100ms" or "2hrs")`},
		{in: "1min", err: `invalid duration "1min" (want Go syntax such as "30s" or "1m30s", or Mesos syntax such as "30secs", "1.5mins", "100ms" or "2hrs")`},
		{in: "NaNs", err: `invalid duration "NaNs" (want Go syntax such as "30s" or "1m30s", or Mesos syntax such as "30secs", "1.5mins", "100ms" or "2hrs")`},
		{in: "9999999999h", err: `duration "9999999999h" is too large (the maximum is 2562047h47m16.854775807s)`},
		{in: "2562048hrs", err: `duration "2562048hrs" is too large (the maximum is 2562047h47m16.854775807s)`},
		{in: "99999999999999999999weeks", err: `duration "99999999999999999999weeks" is too large (the maximum is 2562047h47m16.854775807s)`},
		{in: "1s\x00", err: `duration contains a NUL byte`},
	} {
		got, err := ParseDuration(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseDuration(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		in       []byte
		text     string
		encoding string
	}{
		{nil, "", "utf-8"},
		{[]byte("hello\n"), "hello\n", "utf-8"},
		{[]byte("héllo"), "héllo", "utf-8"},
		{[]byte{0xff, 0x00, 'a'}, "/wBh", "base64"},
		{[]byte("h\xc3"), "aMM=", "base64"},
	} {
		text, enc := Text(tc.in)
		if text != tc.text || enc != tc.encoding {
			t.Errorf("Text(%q) = %q, %q; want %q, %q", tc.in, text, enc, tc.text, tc.encoding)
		}
	}
}
