package acl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustParse(t testing.TB, s string) *ACLs {
	t.Helper()
	a, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return a
}

// The examples of Mesos's docs/authorization.md and the reference notes,
// transposed to these actions, with Mesos's answers.
func TestMesosSemantics(t *testing.T) {
	type q struct {
		principal string
		object    Object
		allowed   bool
		rule      string
	}
	for _, tc := range []struct {
		name   string
		action Action
		policy string
		qs     []q
	}{
		{"the reference's view_flags example: nobody sees the flags", ViewFlags,
			`{"view_flags": [{"principals": {"type": "ANY"}, "flags": {"type": "NONE"}}]}`,
			[]q{{"ops", NoObject, false, "view_flags[0]"}, {"", NoObject, false, "view_flags[0]"}}},
		{"get_endpoints: ops may read /metrics/snapshot, others fall through to permissive", GetEndpoints,
			`{"permissive": false, "get_endpoints": [{"principals": {"values": ["ops"]}, "paths": {"values": ["/metrics/snapshot"]}}]}`,
			[]q{{"ops", Value("/metrics/snapshot"), true, "get_endpoints[0]"},
				{"ops", Value("/flags"), false, "permissive=false (no rule matched)"},
				{"dev", Value("/metrics/snapshot"), false, "permissive=false (no rule matched)"},
				{"", Value("/metrics/snapshot"), false, "permissive=false (no rule matched)"}}},
		{"principals NONE: nobody may run as root (Mesos: no principal can run tasks as root)", RunRemoteCommandsAsUser,
			`{"run_remote_commands_as_user": [{"principals": {"type": "NONE"}, "users": {"values": ["root"]}}]}`,
			[]q{{"ops", Value("root"), false, "run_remote_commands_as_user[0]"},
				{"", Value("root"), false, "run_remote_commands_as_user[0]"},
				{"ops", Value("nobody"), true, "permissive=true (no rule matched)"}}},
		{"object NONE: a principal who may do nothing; order matters", RunRemoteCommandsAsUser,
			`{"run_remote_commands_as_user": [
				{"principals": {"values": ["admin"]}, "users": {"type": "ANY"}},
				{"principals": {"values": ["guest", "admin"]}, "users": {"type": "NONE"}},
				{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}]}`,
			[]q{{"admin", Value("root"), true, "run_remote_commands_as_user[0]"},
				{"guest", Value("nobody"), false, "run_remote_commands_as_user[1]"},
				{"ops", Value("nobody"), true, "run_remote_commands_as_user[2]"},
				{"ops", Value("root"), true, "permissive=true (no rule matched)"},
				{"", Value("nobody"), true, "run_remote_commands_as_user[2]"}}},
		{"the unauthenticated principal matches only ANY (and NONE)", RunRemoteShell,
			`{"permissive": false, "run_remote_shell": [{"principals": {"values": ["ops"]}}, {"principals": {"type": "ANY"}, "shells": {"type": "NONE"}}]}`,
			[]q{{"ops", NoObject, true, "run_remote_shell[0]"}, {"", NoObject, false, "run_remote_shell[1]"}, {"dev", NoObject, false, "run_remote_shell[1]"}}},
		{"owners: self, a list, and tasks nobody owns", KillRemoteTasks,
			`{"permissive": false, "kill_remote_tasks": [
				{"principals": {"values": ["ops"]}, "owners": {"type": "ANY"}},
				{"principals": {"type": "ANY"}, "owners": {"values": ["self", "ci"]}}]}`,
			[]q{{"alice", Value("alice"), true, "kill_remote_tasks[1]"},
				{"alice", Value("ci"), true, "kill_remote_tasks[1]"},
				{"alice", Value("bob"), false, "permissive=false (no rule matched)"},
				{"alice", NoObject, false, "permissive=false (no rule matched)"},
				{"ops", NoObject, true, "kill_remote_tasks[0]"},
				{"", Value("self"), false, "permissive=false (no rule matched)"},
				{"", NoObject, false, "permissive=false (no rule matched)"}}},
		{"no rules for the action: permissive decides", ViewRemoteTasks, `{"permissive": false}`,
			[]q{{"ops", Value("ops"), false, "permissive=false (no rule matched)"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustParse(t, tc.policy)
			for _, q := range tc.qs {
				d := a.Evaluate(tc.action, q.principal, q.object)
				if d.Allowed != q.allowed || d.Rule != q.rule {
					t.Errorf("%s by %q on %v = %+v, want allowed=%t by %s", tc.action, q.principal, q.object, d, q.allowed, q.rule)
				}
			}
		})
	}
}

func TestCommandPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		exe     string
		args    []string
		want    bool
	}{
		{"/usr/bin/uptime", "/usr/bin/uptime", nil, true},
		{"/usr/bin/uptime", "/usr/bin/uptime", []string{"-p"}, false},
		{"/usr/bin/uptime", "/tmp/usr/bin/uptime", nil, false},
		{"/usr/bin/systemctl status *", "/usr/bin/systemctl", []string{"status", "nginx"}, true},
		{"/usr/bin/systemctl status *", "/usr/bin/systemctl", []string{"status"}, false},
		{"/usr/bin/systemctl status *", "/usr/bin/systemctl", []string{"status", "a", "b"}, false},
		{"/usr/bin/systemctl status *", "/usr/bin/systemctl", []string{"stop", "nginx"}, false},
		{"/usr/bin/systemctl status *", "/usr/bin/systemctl", []string{"status", "a/b"}, false}, // * stops at /
		{"/usr/bin/journalctl -u * **", "/usr/bin/journalctl", []string{"-u", "x"}, true},
		{"/usr/bin/journalctl -u * **", "/usr/bin/journalctl", []string{"-u", "x", "-n", "5; rm -rf /"}, true},
		{"/usr/bin/journalctl -u * **", "/usr/bin/journalctl", []string{"-u"}, false},
		{"/bin/ls **", "/bin/ls", nil, true},
		{"/bin/ls **", "/bin/ls", []string{"-la", "/tmp"}, true},
		{"uptime", "/usr/bin/uptime", nil, true},
		{"uptime", "/home/x/uptime", nil, true},
		{"uptime", "/usr/bin/uptimes", nil, false},
		{"/usr/bin/*", "/usr/bin/id", nil, true},
		{"/usr/bin/*", "/usr/bin/x/id", nil, false},
		{"/bin/cat /var/log/*", "/bin/cat", []string{"/var/log/syslog"}, true},
		{"/bin/cat /var/log/*", "/bin/cat", []string{"/var/log/x/y"}, false},
		{"/usr/bin/echo 'a b' \\*", "/usr/bin/echo", []string{"a b", "*"}, true},
		{"/usr/bin/echo 'a b' \\*", "/usr/bin/echo", []string{"a b", "x"}, false},
		{`/usr/bin/echo "say \"hi\"" '**'`, "/usr/bin/echo", []string{`say "hi"`, "**"}, true},
		{`/usr/bin/echo "say \"hi\"" '**'`, "/usr/bin/echo", []string{`say "hi"`, "x"}, false},
		{"/usr/bin/echo ''", "/usr/bin/echo", []string{""}, true},
		{"/usr/bin/echo [ab]?", "/usr/bin/echo", []string{"bz"}, true},
	} {
		p, err := parseCommandPattern(tc.pattern)
		if err != nil {
			t.Errorf("%q: %v", tc.pattern, err)
			continue
		}
		if got := p.match(tc.exe, tc.args); got != tc.want {
			t.Errorf("%q matching %s %q = %t, want %t", tc.pattern, tc.exe, tc.args, got, tc.want)
		}
	}
	for _, bad := range []string{"", "   ", "** x", "/bin/ls ** -l", "bin/ls", "/usr/bin/../bin/ls", "/bin/ls [", "/bin/ls 'x", `/bin/ls "x`, `/bin/ls \`} {
		if _, err := parseCommandPattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

func TestRunRemoteCommands(t *testing.T) {
	a := mustParse(t, `{
		"permissive": false,
		"run_remote_commands": [
			{"principals": {"values": ["ops"]}, "commands": {"type": "ANY"}},
			{"principals": {"values": ["mallory"]}, "commands": {"type": "NONE"}},
			{"principals": {"type": "ANY"}, "commands": {"values": ["/usr/bin/uptime", "/usr/bin/systemctl status *"]}}
		]}`)
	for _, tc := range []struct {
		principal string
		exe       string
		args      []string
		allowed   bool
		rule      string
	}{
		{"ops", "/bin/rm", []string{"-rf", "/"}, true, "run_remote_commands[0]"},
		{"mallory", "/usr/bin/uptime", nil, false, "run_remote_commands[1]"},
		{"alice", "/usr/bin/uptime", nil, true, "run_remote_commands[2]"},
		{"", "/usr/bin/uptime", nil, true, "run_remote_commands[2]"},
		{"alice", "/usr/bin/systemctl", []string{"stop", "sshd"}, false, "permissive=false (no rule matched)"},
	} {
		d := a.Evaluate(RunRemoteCommands, tc.principal, Command(tc.exe, tc.args))
		if d.Allowed != tc.allowed || d.Rule != tc.rule {
			t.Errorf("%q running %s %q = %+v, want %t by %s", tc.principal, tc.exe, tc.args, d, tc.allowed, tc.rule)
		}
	}
	if d := (*ACLs)(nil).Evaluate(RunRemoteCommands, "", Command("/bin/rm", nil)); !d.Allowed || d.Rule != NoACLs {
		t.Errorf("nil ACLs: %+v", d)
	}
	if d := a.Evaluate("launch_rockets", "ops", NoObject); d.Allowed {
		t.Errorf("unknown action allowed: %+v", d)
	}
}

// Every problem at once, each with its JSON path.
func TestParseErrors(t *testing.T) {
	_, err := Parse([]byte(`{
		"permissive": "no",
		"run_remote_comands": [],
		"run_remote_commands": [
			{"principals": {"values": ["ops", ""]}, "commands": {"values": ["/bin/ls ** x"]}},
			{"principals": {"type": "ALL"}, "commands": {"type": "ANY", "values": ["x"]}},
			{"commands": {"values": []}},
			{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}
		],
		"view_flags": [{"principals": {"type": "ANY"}, "flags": {"values": ["port"]}}],
		"get_endpoints": [{"principals": {"type": "ANY"}, "paths": {"values": ["metrics"]}, "paths": {"type": "ANY"}}],
		"kill_remote_tasks": {"principals": {"type": "ANY"}},
		"run_remote_shell": [{"principals": {"vals": ["x"]}}]
	}`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`permissive: want true or false, not "no"`,
		`run_remote_comands: unknown action: neither one modhost enforces (permissive, get_endpoints, kill_remote_tasks, run_remote_commands`,
		`run_remote_commands[0].principals.values[1]: a principal cannot be empty`,
		`run_remote_commands[0].commands.values[0]: "/bin/ls ** x": ** (any further arguments) may only be the last word`,
		`run_remote_commands[1].principals.type: want "ANY", "NONE" or "SOME", not "ALL"`,
		`run_remote_commands[1].commands: "values" with type ANY`,
		`run_remote_commands[2].commands.values: an empty list matches nothing`,
		`run_remote_commands[2]: missing "principals"`,
		`run_remote_commands[3].users: unknown field (a run_remote_commands rule has "principals" and "commands")`,
		`run_remote_commands[3]: missing "commands"`,
		`view_flags[0].flags: only {"type": "ANY"} or {"type": "NONE"} is allowed here`,
		`get_endpoints[0].paths.values[0]: "metrics": a path starts with '/'`,
		`get_endpoints[0].paths: duplicate key`,
		`kill_remote_tasks: want a list of rules`,
		`run_remote_shell[0].principals.vals: unknown field`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, bad := range []string{``, `[]`, `{"permissive": true} {}`, `{"permissive": true`, `null`, `{"run_remote_shell": null}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestLoad(t *testing.T) {
	const doc = `{"permissive": false, "run_remote_shell": [{"principals": {"values": ["ops"]}}]}`
	file := filepath.Join(t.TempDir(), "acls.json")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{doc, "  " + doc, file, "file://" + file} {
		a, err := Load(v)
		if err != nil {
			t.Errorf("Load(%q): %v", v, err)
			continue
		}
		if a.Permissive || len(a.Rules[RunRemoteShell]) != 1 || a.Rules[RunRemoteShell][0].Object.Type != Any {
			t.Errorf("Load(%q) = %+v", v, a)
		}
	}
	for v, want := range map[string]string{
		"acls.json":                  "neither file://PATH",
		"file://acls.json":           "must be absolute",
		"/no/such/acls.json":         "no such file",
		`{"permissive": 1}`:          "--acls (inline JSON): permissive",
		"file://" + file + ".absent": "no such file",
	} {
		if _, err := Load(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%q) = %v, want an error with %q", v, err, want)
		}
	}
	if err := os.WriteFile(file, []byte(`{"view_task": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), "(file "+file+"): view_task: unknown action") {
		t.Errorf("a bad file: %v", err)
	}
}

// What MarshalJSON writes, Parse reads back to the same policy.
func TestRoundTrip(t *testing.T) {
	a := mustParse(t, `{"permissive": false,
		"run_remote_commands": [{"principals": {"type": "SOME", "values": ["a"]}, "commands": {"values": ["/bin/ls **", "id"]}}],
		"run_remote_shell": [{"principals": {"type": "NONE"}}],
		"view_remote_tasks": [{"principals": {"type": "ANY"}, "owners": {"values": ["self"]}}]}`)
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if a2 := mustParse(t, string(b)); !reflect.DeepEqual(a, a2) {
		t.Errorf("round trip through %s:\n%+v\n%+v", b, a, a2)
	}
}

// An agent's ACL file holds Mesos actions modhost does not enforce: they
// are accepted, listed in Unenforced, and decide nothing; a key that is
// not a Mesos action at all is still an error, with its path, and so is
// a Mesos action whose value is not a list of rules.
func TestMesosActionsNotEnforced(t *testing.T) {
	a := mustParse(t, `{"permissive": false,
		"run_tasks": [{"principals": {"values": ["marathon"]}, "users": {"values": ["nobody"]}}],
		"register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
		"view_tasks": [],
		"view_flags": [{"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}}]}`)
	if want := []Action{"register_frameworks", "run_tasks", "view_tasks"}; !reflect.DeepEqual(a.Unenforced, want) {
		t.Errorf("Unenforced = %v, want %v", a.Unenforced, want)
	}
	if len(a.Rules) != 1 || len(a.Rules[ViewFlags]) != 1 {
		t.Errorf("rules = %+v, want view_flags only", a.Rules)
	}
	if d := a.Evaluate("run_tasks", "marathon", Value("nobody")); d.Allowed {
		t.Errorf("an unenforced action decided: %+v", d)
	}
	if d := a.Evaluate(ViewFlags, "ops", NoObject); !d.Allowed || d.Rule != "view_flags[0]" {
		t.Errorf("view_flags beside unenforced actions: %+v", d)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if a2 := mustParse(t, string(b)); !reflect.DeepEqual(a, a2) {
		t.Errorf("round trip through %s:\n%+v\n%+v", b, a, a2)
	}

	_, err = Parse([]byte(`{"run_task": [], "run_tasks": {"principals": {"type": "ANY"}}, "view_tasks": [1], "launch_rockets": []}`))
	for _, want := range []string{
		`run_task: unknown action: neither one modhost enforces`,
		`launch_rockets: unknown action`,
		`run_tasks: want a list of rules`,
		`view_tasks[0]: want an object, not 1`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// /metrics is known by two names: a rule naming either matches it.
func TestValuesObject(t *testing.T) {
	a := mustParse(t, `{"permissive": true, "get_endpoints": [
		{"principals": {"values": ["bob"]}, "paths": {"values": ["/metrics/snapshot"]}},
		{"principals": {"values": ["eve"]}, "paths": {"values": ["/metrics"]}},
		{"principals": {"type": "ANY"}, "paths": {"type": "NONE"}}]}`)
	metrics := Values("/metrics", "/metrics/snapshot")
	for _, tc := range []struct {
		principal string
		object    Object
		rule      string
	}{
		{"bob", metrics, "get_endpoints[0]"},
		{"eve", metrics, "get_endpoints[1]"},
		{"eve", Value("/metrics/snapshot"), "get_endpoints[2]"},
		{"bob", Values(), "get_endpoints[2]"},
	} {
		if d := a.Evaluate(GetEndpoints, tc.principal, tc.object); d.Rule != tc.rule {
			t.Errorf("%s on %v: %+v, want %s", tc.principal, tc.object, d, tc.rule)
		}
	}
	if Values("", "/x").String() != "/x" || Values().String() != "(none)" {
		t.Errorf("Values: %v %v", Values("", "/x"), Values())
	}
}
