package request

import (
	"encoding/base64"
	"fmt"
	"path"
	"strings"
)

// Known fields of each form, in the order the messages list them.
func seedFields() []string { return []string{"command", "arguments", "shell", "timeout"} }

func taskFields() []string {
	return append(seedFields(), "env", "cwd", "user", "stdin", "grace", "labels", "idempotency_key")
}

// Execute decodes the body of POST /remote/execute: the seed form
// {"command", "arguments", "shell", "timeout"}, or the Mesos CommandInfo
// form when the body has the field "value" and not "command". See the
// package documentation for both. Every error is an *Error.
func Execute(body []byte, lim Limits) (Command, error) {
	o, err := parseBody(body)
	if err != nil {
		return Command{}, err
	}
	if o.has("value") && !o.has("command") {
		return commandInfo(body, o, lim)
	}
	hint := func(k string) string {
		if k == "value" {
			return `"value" belongs to the Mesos CommandInfo form, which cannot be mixed with "command"; send one form or the other`
		}
		if contains(taskFields(), k) {
			return fmt.Sprintf("%q is accepted only by POST /remote/tasks (known here: %s)", k, strings.Join(seedFields(), ", "))
		}
		return ""
	}
	if err := o.unknown("", seedFields(), hint); err != nil {
		return Command{}, err
	}
	c, err := seed(o, lim)
	if err != nil {
		return Command{}, err
	}
	c.Form = FormExecute
	return finish(c, lim)
}

// Task decodes the body of POST /remote/tasks, the REST form: the seed
// form's fields plus env, cwd, user, stdin, grace, labels and
// idempotency_key. Every error is an *Error.
func Task(body []byte, lim Limits) (Command, error) {
	o, err := parseBody(body)
	if err != nil {
		return Command{}, err
	}
	hint := func(k string) string {
		if k == "value" || k == "environment" || k == "uris" {
			return `the Mesos CommandInfo form is accepted only by POST /remote/execute; here send "command" and "arguments"`
		}
		return ""
	}
	if err := o.unknown("", taskFields(), hint); err != nil {
		return Command{}, err
	}
	c, err := seed(o, lim)
	if err != nil {
		return Command{}, err
	}
	c.Form = FormTasks
	if raw, ok := o.get("env"); ok {
		c.Env, err = getStringMap("env", raw, func(k, _ string) error { return checkEnvName(keyPath("env", k), k) })
		if err != nil {
			return Command{}, err
		}
	}
	if raw, ok := o.get("cwd"); ok {
		if c.Cwd, err = getString("cwd", raw); err != nil {
			return Command{}, err
		}
		if c.Cwd != "" && !path.IsAbs(c.Cwd) {
			return Command{}, errorf("cwd", "%q is not an absolute path (want e.g. \"/tmp\", or leave cwd out for the default)", c.Cwd)
		}
	}
	if raw, ok := o.get("user"); ok {
		if c.User, err = getString("user", raw); err != nil {
			return Command{}, err
		}
	}
	if raw, ok := o.get("stdin"); ok {
		s, err := getString("stdin", raw)
		if err != nil {
			return Command{}, err
		}
		max := lim.maxStdin()
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Command{}, errorf("stdin", `not valid base64 (want the standard encoding with padding, e.g. "aGVsbG8K" for "hello\n"): %v`, err)
		}
		if len(b) > max {
			return Command{}, errorf("stdin", "%d bytes is above the maximum of %d (parameter max_stdin)", len(b), max)
		}
		c.Stdin = b
	}
	if raw, ok := o.get("grace"); ok {
		if c.Grace, err = getDuration("grace", raw, 0); err != nil {
			return Command{}, err
		}
	}
	if raw, ok := o.get("labels"); ok {
		if c.Labels, err = getLabels(raw); err != nil {
			return Command{}, err
		}
	}
	if raw, ok := o.get("idempotency_key"); ok {
		if c.IdempotencyKey, err = getIdempotencyKey(raw); err != nil {
			return Command{}, err
		}
	}
	return finish(c, lim)
}

// seed decodes the fields shared by the seed and REST forms.
func seed(o object, lim Limits) (Command, error) {
	var c Command
	raw, ok := o.get("command")
	if !ok {
		return c, errorf("command", `required (the executable to run, e.g. "ls")`)
	}
	command, err := getString("command", raw)
	if err != nil {
		return c, err
	}
	if command == "" {
		return c, errorf("command", `must not be empty (the executable to run, e.g. "ls")`)
	}
	var args []string
	if raw, ok := o.get("arguments"); ok {
		if args, err = getStrings("arguments", raw); err != nil {
			return c, err
		}
	}
	if raw, ok := o.get("shell"); ok {
		if c.Shell, err = getBool("shell", raw); err != nil {
			return c, err
		}
	}
	if c.Shell {
		if !lim.AllowShell {
			return Command{}, ErrShellNotAllowed
		}
		if len(args) > 0 {
			return Command{}, errorf("arguments", `not allowed with "shell": true; put the whole command line in "command" `+
				`(e.g. {"command": "ls -la /tmp", "shell": true}) or send "shell": false`)
		}
		c.Path, c.Args = ShellPath, []string{ShellPath, "-c", command}
	} else {
		c.Path = command
		c.Args = append([]string{command}, args...)
	}
	if raw, ok := o.get("timeout"); ok {
		if c.Timeout, err = getDuration("timeout", raw, lim.MaxTimeout); err != nil {
			return Command{}, err
		}
	}
	return c, nil
}

func getLabels(raw []byte) (map[string]string, error) {
	const maxLabels, maxKey, maxValue = 64, 63, 255
	check := func(k, v string) error {
		if len(k) == 0 || len(k) > maxKey {
			return errorf(keyPath("labels", k), "label names are 1 to %d characters long, this one has %d", maxKey, len(k))
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return errorf(keyPath("labels", k), "label names may contain only letters, digits, '.', '_' and '-'")
			}
		}
		if len(v) > maxValue {
			return errorf(keyPath("labels", k), "the value has %d bytes, above the maximum of %d", len(v), maxValue)
		}
		return nil
	}
	o, err := getObject("labels", raw, "an object of strings")
	if err != nil {
		return nil, err
	}
	if len(o.keys) > maxLabels {
		return nil, errorf("labels", "%d labels is above the maximum of %d", len(o.keys), maxLabels)
	}
	return getStringMap("labels", raw, check)
}

func getIdempotencyKey(raw []byte) (string, error) {
	const max = 128
	s, err := getString("idempotency_key", raw)
	if err != nil {
		return "", err
	}
	if len(s) == 0 || len(s) > max {
		return "", errorf("idempotency_key", "must be 1 to %d printable ASCII characters, got %d bytes", max, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return "", errorf("idempotency_key", "must be printable ASCII (byte %d is 0x%02x); use e.g. a UUID", i, s[i])
		}
	}
	return s, nil
}
