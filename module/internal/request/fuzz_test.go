package request

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// seedBodies are the fuzzers' starting points: every shape, and a few
// near misses.
func seedBodies() []string {
	return []string{
		`{"command":"ls","arguments":["-la","/tmp"]}`,
		`{"command":"echo","arguments":["$PATH"]}`,
		`{"command":"ls /foo/bar","shell":true}`,
		`{"command":"sleep","arguments":["10"],"timeout":1}`,
		`{"command": "ls", "arguments": ["-la", "/tmp"], "shell": false, "timeout": "1.5mins"}`,
		`{"command":"true","timeout":"1m30s","arguments":null}`,
		`{"command":"cat","env":{"FOO":"bar"},"cwd":"/tmp","user":"nobody","stdin":"aGVsbG8K","grace":"10secs",` +
			`"labels":{"team":"infra"},"idempotency_key":"req-42"}`,
		`{"value":"ls -la /tmp"}`,
		`{"value":"/bin/ls","shell":false,"arguments":["ls","-la"],"user":"nobody","uris":[]}`,
		`{"value":"sleep 10","environment":{"variables":[{"name":"EXECUTE_TIMEOUT_SEC","value":"5"},{"name":"A","value":"1","type":"VALUE"}]}}`,
		`{"value":"ls","environment":{"variables":[{"name":"A","type":"SECRET","secret":{"type":"VALUE","value":{"data":"eA=="}}}]}}`,
		`{"value":"ls","uris":[{"value":"http://example.com/x","extract":true}]}`,
		`{"value":"l\u00e9\ud83d\ude00s","shell":false,"arguments":["\ud800"]}`,
		`{"command":"l\u0000s"}`,
		`{"comand":"ls"}`,
		`{"command":"ls"} {}`,
		`{"pid": 1234, "signal": "SIGTERM", "scope": "group"}`,
		`{"pid": 1.5}`,
		``,
		`[`,
		`{"value":"ls","shell":fals`,
	}
}

func checkError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %q is not an *Error", err, err)
	}
	if e.Msg == "" {
		t.Fatalf("empty message in %#v", e)
	}
	if strings.Contains(e.Msg, "decoder read this body differently") {
		t.Fatalf("the validator and mesos-go disagree: %v", err)
	}
}

func checkCommand(t *testing.T, c Command, lim Limits) {
	t.Helper()
	nul := func(what, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("%s %q contains a NUL byte", what, s)
		}
	}
	if c.Path == "" || len(c.Args) == 0 {
		t.Fatalf("empty Path or Args: %#v", c)
	}
	nul("Path", c.Path)
	for _, a := range c.Args {
		nul("argument", a)
	}
	for k, v := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			t.Fatalf("bad variable name %q", k)
		}
		nul("variable", v)
	}
	for k, v := range c.Labels {
		nul("label", k)
		nul("label", v)
	}
	nul("Cwd", c.Cwd)
	nul("User", c.User)
	nul("IdempotencyKey", c.IdempotencyKey)
	if c.Cwd != "" && !strings.HasPrefix(c.Cwd, "/") {
		t.Fatalf("relative Cwd %q", c.Cwd)
	}
	if c.Timeout < 0 || c.Grace < 0 {
		t.Fatalf("negative Timeout or Grace: %#v", c)
	}
	if lim.MaxTimeout > 0 && c.Timeout > lim.MaxTimeout {
		t.Fatalf("Timeout %v above MaxTimeout %v", c.Timeout, lim.MaxTimeout)
	}
	if c.Shell {
		if !lim.AllowShell {
			t.Fatalf("shell command accepted without AllowShell")
		}
		if c.Path != "/bin/sh" || len(c.Args) != 3 || c.Args[0] != "/bin/sh" || c.Args[1] != "-c" {
			t.Fatalf("malformed shell command %#v", c)
		}
	} else if c.Form != FormCommandInfo && c.Args[0] != c.Path {
		t.Fatalf("argv[0] %q is not Path %q", c.Args[0], c.Path)
	}
	if len(c.Args) > lim.maxArgs() {
		t.Fatalf("%d arguments above %d", len(c.Args), lim.maxArgs())
	}
	if len(c.Stdin) > lim.maxStdin() {
		t.Fatalf("%d bytes of stdin above %d", len(c.Stdin), lim.maxStdin())
	}
	switch c.Form {
	case FormExecute, FormCommandInfo, FormTasks:
	default:
		t.Fatalf("bad Form %q", c.Form)
	}
}

func fuzzCommand(f *testing.F, decode func([]byte, Limits) (Command, error)) {
	for _, s := range seedBodies() {
		f.Add([]byte(s), true, uint16(3600))
	}
	f.Add([]byte(`{"command":"ls","shell":true}`), false, uint16(0))
	f.Fuzz(func(t *testing.T, body []byte, allowShell bool, maxTimeout uint16) {
		lim := Limits{MaxTimeout: time.Duration(maxTimeout) * time.Second, AllowShell: allowShell, MaxArgs: 64, MaxArgBytes: 4096, MaxStdin: 256}
		c, err := decode(body, lim)
		c2, err2 := decode(body, lim)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || !reflect.DeepEqual(c, c2) {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			checkError(t, err)
			if !reflect.DeepEqual(c, Command{}) {
				t.Fatalf("error %q with a non-zero Command", err)
			}
			return
		}
		checkCommand(t, c, lim)
	})
}

func FuzzExecute(f *testing.F) { fuzzCommand(f, Execute) }

func FuzzTask(f *testing.F) { fuzzCommand(f, Task) }

// FuzzUnmarshalCommandInfo feeds mesos-go's ffjson-generated decoder
// arbitrary bytes, which Execute never does (it validates first): a panic
// must come back as an error.
func FuzzUnmarshalCommandInfo(f *testing.F) {
	for _, s := range seedBodies() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := unmarshalCommandInfo(body); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
		}
	})
}

func FuzzPid(f *testing.F) {
	for _, s := range append(seedBodies(), `{"pid":2147483647}`, `{"pid":-0}`, `{"pid":0e0}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pid, err := Pid(body)
		if err != nil {
			checkError(t, err)
			return
		}
		if pid <= 0 || pid > math.MaxInt32 {
			t.Fatalf("pid %d out of range", pid)
		}
	})
}

func FuzzKill(f *testing.F) {
	for _, s := range append(seedBodies(), `{"pid":1,"signal":9}`, `{"pid":1,"signal":"sigkill"}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pid, sig, err := Kill(body)
		if err != nil {
			checkError(t, err)
			return
		}
		if pid <= 0 || pid > math.MaxInt32 || sig < 1 || sig > 31 {
			t.Fatalf("pid %d, signal %d out of range", pid, sig)
		}
	})
}

func FuzzSignal(f *testing.F) {
	for _, s := range append(seedBodies(), `{"signal":"HUP","scope":"leader"}`, `{"signal":1}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sig, scope, err := Signal(body)
		if err != nil {
			checkError(t, err)
			return
		}
		if sig < 1 || sig > 31 || scope != ScopeGroup && scope != ScopeLeader {
			t.Fatalf("signal %d, scope %q", sig, scope)
		}
	})
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"SIGTERM", "TERM", "sigterm", "15", "0", "32", "SIGRTMIN+1", "", "sig", "0015"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignal(s)
		if err != nil {
			checkError(t, err)
			return
		}
		if sig < 1 || sig > 31 {
			t.Fatalf("ParseSignal(%q) = %d", s, sig)
		}
		if back, err := ParseSignal(SignalName(sig)); err != nil || back != sig {
			t.Fatalf("ParseSignal(SignalName(%d)) = %d, %v", sig, back, err)
		}
		if !strings.EqualFold(strings.TrimPrefix(strings.ToUpper(s), "SIG"), strings.TrimPrefix(SignalName(sig), "SIG")) &&
			strings.Trim(s, "0123456789") != "" {
			t.Fatalf("ParseSignal(%q) = %s", s, SignalName(sig))
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "1m30s", "30secs", "1.5mins", "100ms", "2hrs", "1days", "2weeks", "-5s", "0", "", "1.2.3secs",
		".5secs", "9223372036854775807ns", "9223372036854775808ns", "2562047hrs", "1e3s", "+5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			checkError(t, err)
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
		if n, _ := mesosUnit(s); n == 0 {
			if want, err := time.ParseDuration(s); err != nil || want != d {
				t.Fatalf("ParseDuration(%q) = %v, time.ParseDuration: %v, %v", s, d, want, err)
			}
		}
	})
}
