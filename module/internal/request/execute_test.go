package request

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testLimits = Limits{MaxTimeout: time.Hour, AllowShell: true}

type commandCase struct {
	name string
	body string
	lim  *Limits // testLimits when nil
	want Command
	err  string
}

func runCommandCases(t *testing.T, decode func([]byte, Limits) (Command, error), cases []commandCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lim := testLimits
			if tc.lim != nil {
				lim = *tc.lim
			}
			got, err := decode([]byte(tc.body), lim)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("body %s: got %+v, want error %q", tc.body, got, tc.err)
				}
				if err.Error() != tc.err {
					t.Fatalf("body %s:\n got error %q\nwant error %q", tc.body, err.Error(), tc.err)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %T is not an *Error", err)
				}
				if !reflect.DeepEqual(got, Command{}) {
					t.Fatalf("error with a non-zero Command %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("body %s: unexpected error %q", tc.body, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("body %s:\n got %#v\nwant %#v", tc.body, got, tc.want)
			}
		})
	}
}

func argv(path string, args ...string) Command {
	return Command{Path: path, Args: append([]string{path}, args...), Form: FormExecute}
}

func shell(line string) Command {
	return Command{Path: "/bin/sh", Args: []string{"/bin/sh", "-c", line}, Shell: true, Form: FormExecute}
}

func with(c Command, f func(*Command)) Command { f(&c); return c }

func TestExecuteSeedForm(t *testing.T) {
	noShell := Limits{MaxTimeout: time.Hour}
	noMax := Limits{AllowShell: true}
	small := Limits{MaxArgs: 3, MaxArgBytes: 20, AllowShell: true}
	runCommandCases(t, Execute, []commandCase{
		// The seed README's examples.
		{name: "readme ls", body: `{"command":"ls","arguments":["-la","/tmp"]}`, want: argv("ls", "-la", "/tmp")},
		{name: "readme verbatim", body: `{"command":"echo","arguments":["$PATH"]}`, want: argv("echo", "$PATH")},
		{name: "readme shell", body: `{"command":"ls /foo/bar","shell":true}`, want: shell("ls /foo/bar")},
		{name: "readme timeout", body: `{"command":"sleep","arguments":["10"],"timeout":1}`,
			want: with(argv("sleep", "10"), func(c *Command) { c.Timeout = time.Second })},

		{name: "full", body: `{"command": "ls", "arguments": ["-la", "/tmp"], "shell": false, "timeout": 5}`,
			want: with(argv("ls", "-la", "/tmp"), func(c *Command) { c.Timeout = 5 * time.Second })},
		{name: "no arguments", body: `{"command":"true"}`, want: argv("true")},
		{name: "empty arguments", body: `{"command":"true","arguments":[]}`, want: argv("true")},
		{name: "empty argument", body: `{"command":"printf","arguments":["%s\n",""]}`, want: argv("printf", "%s\n", "")},
		{name: "nulls are absent", body: `{"command":"true","arguments":null,"shell":null,"timeout":null}`, want: argv("true")},
		{name: "shell empty arguments", body: `{"command":"echo $HOME","shell":true,"arguments":[]}`, want: shell("echo $HOME")},
		{name: "unicode", body: `{"command":"echo","arguments":["h\u00e9llo","日本"]}`, want: argv("echo", "héllo", "日本")},
		{name: "whitespace around", body: " \n\t{\"command\":\"true\"}\r\n ", want: argv("true")},
		{name: "timeout fraction", body: `{"command":"true","timeout":1.5}`,
			want: with(argv("true"), func(c *Command) { c.Timeout = 1500 * time.Millisecond })},
		{name: "timeout exponent", body: `{"command":"true","timeout":6e1}`,
			want: with(argv("true"), func(c *Command) { c.Timeout = time.Minute })},
		{name: "timeout zero", body: `{"command":"true","timeout":0}`, want: argv("true")},
		{name: "timeout go", body: `{"command":"true","timeout":"1m30s"}`,
			want: with(argv("true"), func(c *Command) { c.Timeout = 90 * time.Second })},
		{name: "timeout mesos secs", body: `{"command":"true","timeout":"30secs"}`,
			want: with(argv("true"), func(c *Command) { c.Timeout = 30 * time.Second })},
		{name: "timeout mesos mins", body: `{"command":"true","timeout":"1.5mins"}`,
			want: with(argv("true"), func(c *Command) { c.Timeout = 90 * time.Second })},
		{name: "timeout mesos ms", body: `{"command":"true","timeout":"100ms"}`,
			want: with(argv("true"), func(c *Command) { c.Timeout = 100 * time.Millisecond })},
		{name: "timeout at max", body: `{"command":"true","timeout":3600}`,
			want: with(argv("true"), func(c *Command) { c.Timeout = time.Hour })},
		{name: "timeout no max", lim: &noMax, body: `{"command":"true","timeout":"2hrs"}`,
			want: with(argv("true"), func(c *Command) { c.Timeout = 2 * time.Hour })},
		{name: "args at limit", lim: &small, body: `{"command":"a","arguments":["b","c"]}`, want: argv("a", "b", "c")},

		{name: "empty body", body: ``, err: `empty body: want a JSON object`},
		{name: "blank body", body: " \n ", err: `empty body: want a JSON object`},
		{name: "array", body: `["ls"]`, err: `want a JSON object, got an array`},
		{name: "string", body: `"ls"`, err: `want a JSON object, got a string`},
		{name: "null", body: `null`, err: `want a JSON object, got null`},
		{name: "syntax", body: `{"command":ls}`, err: `invalid JSON at offset 11: invalid character 'l' looking for beginning of value`},
		{name: "trailing comma", body: `{"command":"ls",}`, err: `invalid JSON at offset 16: invalid character '}' looking for beginning of object key string`},
		{name: "truncated", body: `{"command":"ls"`, err: `invalid JSON: the body ends before the object is complete (15 bytes)`},
		{name: "trailing object", body: `{"command":"ls"} {}`, err: `unexpected data after the JSON object at offset 17; send exactly one object`},
		{name: "trailing junk", body: `{"command":"ls"}x`, err: `unexpected data after the JSON object at offset 16; send exactly one object`},
		{name: "invalid utf8", body: "{\"command\":\"l\xffs\"}", err: `body is not valid UTF-8 (at offset 13); JSON must be UTF-8 text`},
		{name: "lone surrogate", body: `{"command":"echo","arguments":["a\ud800"]}`,
			err: `invalid JSON string at offset 33: unpaired UTF-16 surrogate escape \ud800 (send valid Unicode text)`},
		{name: "lone low surrogate", body: `{"command":"echo","arguments":["\\\udc00"]}`,
			err: `invalid JSON string at offset 34: unpaired UTF-16 surrogate escape \udc00 (send valid Unicode text)`},
		{name: "surrogate pair", body: `{"command":"echo","arguments":["\\\ud83d\ude00\\ud800"]}`, want: argv("echo", `\😀\ud800`)},
		{name: "deep", body: `{"command":"ls","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, err: `JSON nested more than 32 levels deep`},
		{name: "duplicate", body: `{"command":"ls","command":"rm"}`, err: `duplicate field "command" (send each field once)`},
		{name: "unknown", body: `{"comand":"ls"}`, err: `unknown field "comand" (known: command, arguments, shell, timeout)`},
		{name: "task field", body: `{"command":"ls","env":{}}`, err: `unknown field "env": "env" is accepted only by POST /remote/tasks (known here: command, arguments, shell, timeout)`},
		{name: "mixed forms", body: `{"command":"ls","value":"ls"}`, err: `unknown field "value": "value" belongs to the Mesos CommandInfo form, which cannot be mixed with "command"; send one form or the other`},
		{name: "missing command", body: `{}`, err: `command: required (the executable to run, e.g. "ls")`},
		{name: "null command", body: `{"command":null}`, err: `command: required (the executable to run, e.g. "ls")`},
		{name: "empty command", body: `{"command":""}`, err: `command: must not be empty (the executable to run, e.g. "ls")`},
		{name: "command type", body: `{"command":["ls"]}`, err: `command: want a string, got an array`},
		{name: "command NUL", body: `{"command":"l\u0000s"}`, err: `command: contains a NUL byte`},
		{name: "argument NUL", body: `{"command":"ls","arguments":["a","b","c\u0000"]}`, err: `arguments[2]: contains a NUL byte`},
		{name: "key NUL", body: `{"comm\u0000and":"ls"}`, err: `field name "comm\x00and" contains a NUL byte`},
		{name: "arguments type", body: `{"command":"ls","arguments":5}`, err: `arguments: want an array of strings, got a number`},
		{name: "arguments string", body: `{"command":"ls","arguments":"-la"}`, err: `arguments: want an array of strings, got a string`},
		{name: "argument type", body: `{"command":"ls","arguments":["-l",1]}`, err: `arguments[1]: want a string, got a number`},
		{name: "argument null", body: `{"command":"ls","arguments":[null]}`, err: `arguments[0]: want a string, got null`},
		{name: "shell type", body: `{"command":"ls","shell":"yes"}`, err: `shell: want a boolean (true or false), got a string`},
		{name: "shell with arguments", body: `{"command":"ls","shell":true,"arguments":["-la"]}`,
			err: `arguments: not allowed with "shell": true; put the whole command line in "command" (e.g. {"command": "ls -la /tmp", "shell": true}) or send "shell": false`},
		{name: "shell not allowed", lim: &noShell, body: `{"command":"ls /foo/bar","shell":true}`,
			err: `shell: running commands through /bin/sh is disabled on this agent (parameter allow_shell); send "shell": false and give the program and its arguments separately (in the Mesos CommandInfo form "shell" defaults to true)`},
		{name: "timeout above max", body: `{"command":"true","timeout":90000}`, err: `timeout: 90000 seconds is above the maximum of 1h0m0s (parameter max_timeout)`},
		{name: "timeout string above max", body: `{"command":"true","timeout":"61m"}`, err: `timeout: "61m" is above the maximum of 1h0m0s (parameter max_timeout)`},
		{name: "timeout negative", body: `{"command":"true","timeout":-1}`, err: `timeout: must not be negative, got -1 (send a number of seconds, or 0 for the default)`},
		{name: "timeout negative string", body: `{"command":"true","timeout":"-5s"}`, err: `timeout: negative duration "-5s" (want zero or more)`},
		{name: "timeout huge", lim: &noMax, body: `{"command":"true","timeout":1e300}`, err: `timeout: 1e300 seconds is too large (the maximum is 2562047h47m16.854775807s)`},
		{name: "timeout tiny", body: `{"command":"true","timeout":1e-12}`, err: `timeout: 1e-12 seconds is less than a nanosecond (send 0 for the default)`},
		{name: "timeout bool", body: `{"command":"true","timeout":true}`, err: `timeout: want a number of seconds or a duration string such as "30s", got a boolean`},
		{name: "timeout no unit", body: `{"command":"true","timeout":"30"}`, err: `timeout: duration "30" has no unit (want e.g. "30s" or "30secs"), or send the JSON number 30 for seconds`},
		{name: "timeout bad", body: `{"command":"true","timeout":"soon"}`, err: `timeout: invalid duration "soon" (want Go syntax such as "30s" or "1m30s", or Mesos syntax such as "30secs", "1.5mins", "100ms" or "2hrs")`},
		{name: "timeout empty", body: `{"command":"true","timeout":""}`, err: `timeout: empty duration (want e.g. "30s", "1m30s", "30secs" or "1.5mins")`},
		{name: "too many args", lim: &small, body: `{"command":"a","arguments":["b","c","d"]}`, err: `arguments: argv has 4 entries (the program and its arguments), above the maximum of 3 (parameter max_args)`},
		{name: "too many bytes", lim: &small, body: `{"command":"aaaaaaaaaa","arguments":["bbbbbbbbbb"]}`, err: `arguments: the command line and environment take 22 bytes, above the maximum of 20 (parameter max_arg_bytes)`},
		{name: "default max args", lim: &Limits{}, body: `{"command":"a","arguments":[` + strings.Repeat(`"",`, 4096) + `""]}`,
			err: `arguments: argv has 4098 entries (the program and its arguments), above the maximum of 4096 (parameter max_args)`},
	})
}

func TestExecuteCommandInfoForm(t *testing.T) {
	noShell := Limits{MaxTimeout: time.Hour}
	ci := func(c Command) Command { c.Form = FormCommandInfo; return c }
	runCommandCases(t, Execute, []commandCase{
		{name: "shell default true", body: `{"value":"ls -la /tmp"}`, want: ci(shell("ls -la /tmp"))},
		{name: "shell true ignores arguments", body: `{"value":"echo hi","shell":true,"arguments":["x","y"]}`, want: ci(shell("echo hi"))},
		{name: "execlp argv", body: `{"value":"/bin/ls","shell":false,"arguments":["ls","-la"]}`,
			want: Command{Path: "/bin/ls", Args: []string{"ls", "-la"}, Form: FormCommandInfo}},
		{name: "execlp no arguments", body: `{"value":"/bin/true","shell":false}`,
			want: Command{Path: "/bin/true", Args: []string{"/bin/true"}, Form: FormCommandInfo}},
		{name: "execlp empty arguments", body: `{"value":"/bin/true","shell":false,"arguments":[]}`,
			want: Command{Path: "/bin/true", Args: []string{"/bin/true"}, Form: FormCommandInfo}},
		{name: "user", body: `{"value":"id","user":"nobody"}`, want: ci(with(shell("id"), func(c *Command) { c.User = "nobody" }))},
		{name: "empty uris", body: `{"value":"id","uris":[]}`, want: ci(shell("id"))},
		{name: "environment", body: `{"value":"env","environment":{"variables":[{"name":"FOO","value":"bar"},{"name":"EMPTY","value":"","type":"VALUE"}]}}`,
			want: ci(with(shell("env"), func(c *Command) { c.Env = map[string]string{"FOO": "bar", "EMPTY": ""} }))},
		{name: "execute timeout", body: `{"value":"sleep 10","environment":{"variables":[{"name":"EXECUTE_TIMEOUT_SEC","value":"5"},{"name":"A","value":"1"}]}}`,
			want: ci(with(shell("sleep 10"), func(c *Command) { c.Timeout = 5 * time.Second; c.Env = map[string]string{"A": "1"} }))},
		{name: "execute timeout fraction", body: `{"value":"sleep 10","environment":{"variables":[{"name":"EXECUTE_TIMEOUT_SEC","value":"0.25"}]}}`,
			want: ci(with(shell("sleep 10"), func(c *Command) { c.Timeout = 250 * time.Millisecond }))},
		{name: "empty environment", body: `{"value":"id","environment":{}}`, want: ci(shell("id"))},
		{name: "type number", body: `{"value":"id","environment":{"variables":[{"name":"A","value":"1","type":1}]}}`,
			want: ci(with(shell("id"), func(c *Command) { c.Env = map[string]string{"A": "1"} }))},

		{name: "unknown", body: `{"value":"id","uri":[]}`, err: `unknown field "uri" (known: uris, environment, shell, value, arguments, user)`},
		{name: "timeout hint", body: `{"value":"id","timeout":5}`,
			err: `unknown field "timeout": in the Mesos CommandInfo form the timeout is the environment variable EXECUTE_TIMEOUT_SEC (e.g. "environment": {"variables": [{"name": "EXECUTE_TIMEOUT_SEC", "value": "30"}]})`},
		{name: "shell not allowed by default", lim: &noShell, body: `{"value":"ls"}`, err: ErrShellNotAllowed.Error()},
		{name: "null value", body: `{"value":null}`, err: `value: required (the command line, e.g. "ls -la /tmp"; with "shell": false the executable, e.g. "/bin/ls")`},
		{name: "empty value", body: `{"value":""}`, err: `value: must not be empty (the command line, e.g. "ls -la /tmp"; with "shell": false the executable, e.g. "/bin/ls")`},
		{name: "value type", body: `{"value":1}`, err: `value: want a string, got a number`},
		{name: "arguments type", body: `{"value":"ls","shell":false,"arguments":[1]}`, err: `arguments[0]: want a string, got a number`},
		{name: "uris", body: `{"value":"ls","uris":[{"value":"http://example.com/x"}]}`,
			err: `uris: fetching URIs is not supported; put the files on the agent beforehand and leave "uris" out (or empty)`},
		{name: "uris type", body: `{"value":"ls","uris":"x"}`, err: `uris: want an array of URIs, got a string`},
		{name: "secret type", body: `{"value":"ls","environment":{"variables":[{"name":"A","type":"SECRET","secret":{"type":"REFERENCE","reference":{"name":"s"}}}]}}`,
			err: `environment.variables[0]: secret environment variables are not supported; send the value itself, as {"name": ..., "value": ...}`},
		{name: "secret field", body: `{"value":"ls","environment":{"variables":[{"name":"A","value":"x","secret":{}}]}}`,
			err: `environment.variables[0]: secret environment variables are not supported; send the value itself, as {"name": ..., "value": ...}`},
		{name: "variable type unknown", body: `{"value":"ls","environment":{"variables":[{"name":"A","value":"x","type":"UNKNOWN"}]}}`,
			err: `environment.variables[0].type: want "VALUE" (or leave it out), got "UNKNOWN"`},
		{name: "variable unknown field", body: `{"value":"ls","environment":{"variables":[{"name":"A","val":"x"}]}}`,
			err: `environment.variables[0]: unknown field "val" (known: name, type, value, secret)`},
		{name: "environment unknown field", body: `{"value":"ls","environment":{"vars":[]}}`,
			err: `environment: unknown field "vars" (known: variables)`},
		{name: "environment type", body: `{"value":"ls","environment":[]}`,
			err: `environment: want an object such as {"variables": [{"name": "FOO", "value": "bar"}]}, got an array`},
		{name: "variables type", body: `{"value":"ls","environment":{"variables":{}}}`,
			err: `environment.variables: want an array of {"name": ..., "value": ...} objects, got an object`},
		{name: "variable missing value", body: `{"value":"ls","environment":{"variables":[{"name":"A"}]}}`,
			err: `environment.variables[0].value: required for variable "A" (send "" for an empty value)`},
		{name: "variable missing name", body: `{"value":"ls","environment":{"variables":[{"value":"a"}]}}`,
			err: `environment.variables[0].name: required (the variable name, e.g. "FOO")`},
		{name: "variable name with =", body: `{"value":"ls","environment":{"variables":[{"name":"A=B","value":"a"}]}}`,
			err: `environment.variables[0].name: variable name "A=B" contains '=' (send the name and the value separately)`},
		{name: "variable empty name", body: `{"value":"ls","environment":{"variables":[{"name":"","value":"a"}]}}`,
			err: `environment.variables[0].name: empty variable name`},
		{name: "variable NUL", body: `{"value":"ls","environment":{"variables":[{"name":"A","value":"a\u0000"}]}}`,
			err: `environment.variables[0].value: contains a NUL byte`},
		{name: "duplicate variable", body: `{"value":"ls","environment":{"variables":[{"name":"A","value":"1"},{"name":"A","value":"2"}]}}`,
			err: `environment.variables[1].name: duplicate variable "A" (set each variable once)`},
		{name: "execute timeout zero", body: `{"value":"ls","environment":{"variables":[{"name":"EXECUTE_TIMEOUT_SEC","value":"0"}]}}`,
			err: `EXECUTE_TIMEOUT_SEC: want a positive number of seconds such as "30", got "0" (leave the variable out for the default)`},
		{name: "execute timeout bad", body: `{"value":"ls","environment":{"variables":[{"name":"EXECUTE_TIMEOUT_SEC","value":"5s"}]}}`,
			err: `EXECUTE_TIMEOUT_SEC: want a positive number of seconds such as "30" or "1.5", got "5s"`},
		{name: "execute timeout above max", body: `{"value":"ls","environment":{"variables":[{"name":"EXECUTE_TIMEOUT_SEC","value":"90000"}]}}`,
			err: `EXECUTE_TIMEOUT_SEC: 90000 seconds is above the maximum of 1h0m0s (parameter max_timeout)`},
	})
}

func TestTask(t *testing.T) {
	task := func(c Command) Command { c.Form = FormTasks; return c }
	tiny := Limits{MaxStdin: 4, AllowShell: true}
	runCommandCases(t, Task, []commandCase{
		{name: "seed fields", body: `{"command":"ls","arguments":["-la"],"shell":false,"timeout":"5s"}`,
			want: task(with(argv("ls", "-la"), func(c *Command) { c.Timeout = 5 * time.Second }))},
		{name: "shell", body: `{"command":"ls | wc -l","shell":true}`, want: task(shell("ls | wc -l"))},
		{name: "everything", body: `{"command":"cat","env":{"FOO":"bar","EMPTY":""},"cwd":"/tmp","user":"nobody",
			"stdin":"aGVsbG8K","grace":"10secs","labels":{"team":"infra","app.v-1_x":""},"idempotency_key":"req 42"}`,
			want: task(with(argv("cat"), func(c *Command) {
				c.Env = map[string]string{"FOO": "bar", "EMPTY": ""}
				c.Cwd, c.User, c.Stdin, c.Grace = "/tmp", "nobody", []byte("hello\n"), 10*time.Second
				c.Labels = map[string]string{"team": "infra", "app.v-1_x": ""}
				c.IdempotencyKey = "req 42"
			}))},
		{name: "empty maps", body: `{"command":"true","env":{},"labels":{}}`, want: task(argv("true"))},
		{name: "empty cwd", body: `{"command":"true","cwd":""}`, want: task(argv("true"))},
		{name: "stdin at limit", lim: &tiny, body: `{"command":"cat","stdin":"YWJjZA=="}`,
			want: task(with(argv("cat"), func(c *Command) { c.Stdin = []byte("abcd") }))},
		{name: "grace number", body: `{"command":"true","grace":2}`,
			want: task(with(argv("true"), func(c *Command) { c.Grace = 2 * time.Second }))},
		{name: "grace not capped", body: `{"command":"true","grace":"2hrs"}`,
			want: task(with(argv("true"), func(c *Command) { c.Grace = 2 * time.Hour }))},

		{name: "commandinfo", body: `{"value":"ls"}`,
			err: `unknown field "value": the Mesos CommandInfo form is accepted only by POST /remote/execute; here send "command" and "arguments"`},
		{name: "unknown", body: `{"command":"ls","envs":{}}`,
			err: `unknown field "envs" (known: command, arguments, shell, timeout, env, cwd, user, stdin, grace, labels, idempotency_key)`},
		{name: "missing command", body: `{"env":{}}`, err: `command: required (the executable to run, e.g. "ls")`},
		{name: "env type", body: `{"command":"ls","env":["A=1"]}`, err: `env: want an object of strings, got an array`},
		{name: "env value type", body: `{"command":"ls","env":{"A":1}}`, err: `env.A: want a string, got a number`},
		{name: "env name =", body: `{"command":"ls","env":{"A=B":"1"}}`, err: `env["A=B"]: variable name "A=B" contains '=' (send the name and the value separately)`},
		{name: "env empty name", body: `{"command":"ls","env":{"":"1"}}`, err: `env[""]: empty variable name`},
		{name: "env NUL", body: `{"command":"ls","env":{"A":"\u0000"}}`, err: `env.A: contains a NUL byte`},
		{name: "env duplicate", body: `{"command":"ls","env":{"A":"1","A":"2"}}`, err: `env: duplicate field "A" (send each field once)`},
		{name: "cwd relative", body: `{"command":"ls","cwd":"tmp"}`, err: `cwd: "tmp" is not an absolute path (want e.g. "/tmp", or leave cwd out for the default)`},
		{name: "cwd type", body: `{"command":"ls","cwd":1}`, err: `cwd: want a string, got a number`},
		{name: "user type", body: `{"command":"ls","user":false}`, err: `user: want a string, got a boolean`},
		{name: "stdin bad", body: `{"command":"cat","stdin":"hello"}`,
			err: `stdin: not valid base64 (want the standard encoding with padding, e.g. "aGVsbG8K" for "hello\n"): illegal base64 data at input byte 4`},
		{name: "stdin too big", lim: &tiny, body: `{"command":"cat","stdin":"YWJjZGU="}`, err: `stdin: 5 bytes is above the maximum of 4 (parameter max_stdin)`},
		{name: "grace negative", body: `{"command":"true","grace":-1}`, err: `grace: must not be negative, got -1 (send a number of seconds, or 0 for the default)`},
		{name: "grace bad", body: `{"command":"true","grace":"x"}`,
			err: `grace: invalid duration "x" (want Go syntax such as "30s" or "1m30s", or Mesos syntax such as "30secs", "1.5mins", "100ms" or "2hrs")`},
		{name: "label name", body: `{"command":"true","labels":{"a b":"x"}}`, err: `labels["a b"]: label names may contain only letters, digits, '.', '_' and '-'`},
		{name: "label empty name", body: `{"command":"true","labels":{"":"x"}}`, err: `labels[""]: label names are 1 to 63 characters long, this one has 0`},
		{name: "label long name", body: `{"command":"true","labels":{"` + strings.Repeat("a", 64) + `":"x"}}`,
			err: `labels.` + strings.Repeat("a", 64) + `: label names are 1 to 63 characters long, this one has 64`},
		{name: "label long value", body: `{"command":"true","labels":{"a":"` + strings.Repeat("x", 256) + `"}}`,
			err: `labels.a: the value has 256 bytes, above the maximum of 255`},
		{name: "label value type", body: `{"command":"true","labels":{"a":1}}`, err: `labels.a: want a string, got a number`},
		{name: "too many labels", body: `{"command":"true","labels":{` + manyLabels(65) + `}}`, err: `labels: 65 labels is above the maximum of 64`},
		{name: "key empty", body: `{"command":"true","idempotency_key":""}`, err: `idempotency_key: must be 1 to 128 printable ASCII characters, got 0 bytes`},
		{name: "key long", body: `{"command":"true","idempotency_key":"` + strings.Repeat("k", 129) + `"}`,
			err: `idempotency_key: must be 1 to 128 printable ASCII characters, got 129 bytes`},
		{name: "key non-ASCII", body: `{"command":"true","idempotency_key":"k\u00e9"}`,
			err: `idempotency_key: must be printable ASCII (byte 1 is 0xc3); use e.g. a UUID`},
		{name: "key control", body: `{"command":"true","idempotency_key":"a\tb"}`,
			err: `idempotency_key: must be printable ASCII (byte 1 is 0x09); use e.g. a UUID`},
		{name: "arg bytes count env", lim: &Limits{MaxArgBytes: 10}, body: `{"command":"ab","env":{"C":"12345"}}`,
			err: `arguments: the command line and environment take 11 bytes, above the maximum of 10 (parameter max_arg_bytes)`},
	})
}

func manyLabels(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"l` + strings.Repeat("x", i) + `":"v"`)
	}
	return b.String()
}

func TestErrShellNotAllowed(t *testing.T) {
	for _, body := range []string{`{"command":"ls","shell":true}`, `{"value":"ls"}`} {
		_, err := Execute([]byte(body), Limits{})
		if !errors.Is(err, ErrShellNotAllowed) {
			t.Errorf("%s: got %v, want ErrShellNotAllowed", body, err)
		}
		if !strings.Contains(err.Error(), "allow_shell") {
			t.Errorf("%s: %q does not name allow_shell", body, err)
		}
	}
	_, err := Task([]byte(`{"command":"ls","shell":true}`), Limits{})
	if !errors.Is(err, ErrShellNotAllowed) {
		t.Errorf("Task: got %v, want ErrShellNotAllowed", err)
	}
	_, err = Execute([]byte(`{"command":""}`), Limits{})
	if errors.Is(err, ErrShellNotAllowed) {
		t.Errorf("errors.Is matched an unrelated error")
	}
}

func TestErrorString(t *testing.T) {
	if got := (&Error{Field: "a", Msg: "b"}).Error(); got != "a: b" {
		t.Errorf("got %q", got)
	}
	if got := (&Error{Msg: "b"}).Error(); got != "b" {
		t.Errorf("got %q", got)
	}
}

// TestNoPanicRecovers shows that a panic in the mesos-go decoder becomes an
// error, and FuzzUnmarshalCommandInfo that none escapes on any input.
func TestNoPanicRecovers(t *testing.T) {
	err := noPanic([]byte(`{}`), func([]byte) error { panic("ffjson-generated: unreachable, please report bug.") })
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Msg, "unreachable") {
		t.Fatalf("got %v", err)
	}
	if _, err := unmarshalCommandInfo([]byte(`{"value":`)); err == nil {
		t.Fatal("truncated body decoded")
	}
	ci, err := unmarshalCommandInfo([]byte(`{"value":"ls","shell":false}`))
	if err != nil || ci.GetValue() != "ls" || ci.GetShell() {
		t.Fatalf("got %+v, %v", ci, err)
	}
}
