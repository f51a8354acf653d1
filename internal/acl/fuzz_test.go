package acl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts survives a round
// trip through MarshalJSON.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"permissive": false}`,
		`{"run_remote_commands": [{"principals": {"values": ["a"]}, "commands": {"values": ["/bin/ls -l *", "id **", "/x 'a b' \\* \"q\\\"\""]}}]}`,
		`{"view_flags": [{"principals": {"type": "ANY"}, "flags": {"type": "NONE"}}]}`,
		`{"run_remote_shell": [{"principals": {"type": "NONE"}}], "kill_remote_tasks": [{"principals": {"type": "ANY"}, "owners": {"values": ["self"]}}]}`,
		`{"get_endpoints": [{"principals": {"type": "SOME", "values": ["x"]}, "paths": {"values": ["/metrics/snapshot"]}}]}`,
		`{"run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}], "view_tasks": []}`,
		`{"a": 1, "a": 2}`, `[`, `{"permissive": true} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data)
		if err != nil {
			if a != nil {
				t.Fatal("a policy with an error")
			}
			return
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", b, err)
		}
		if !reflect.DeepEqual(a, a2) {
			t.Fatalf("round trip changed the policy: %s", b)
		}
	})
}

// FuzzEvaluate checks Evaluate against a plain restatement of Mesos's
// rules on a fixed policy, for any principal, command and owner.
func FuzzEvaluate(f *testing.F) {
	a, err := Parse([]byte(`{"permissive": false,
		"run_remote_commands": [
			{"principals": {"values": ["mallory"]}, "commands": {"type": "NONE"}},
			{"principals": {"values": ["ops"]}, "commands": {"values": ["/bin/* **"]}},
			{"principals": {"type": "ANY"}, "commands": {"values": ["/usr/bin/systemctl status *", "uptime"]}}],
		"kill_remote_tasks": [
			{"principals": {"values": ["ops"]}, "owners": {"type": "ANY"}},
			{"principals": {"type": "ANY"}, "owners": {"values": ["self"]}}]}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("ops", "/bin/ls", "-l\x00/tmp", "bob")
	f.Add("", "/usr/bin/uptime", "", "")
	f.Add("alice", "/usr/bin/systemctl", "status\x00nginx", "alice")
	f.Add("mallory", "/usr/bin/uptime", "", "mallory")
	f.Fuzz(func(t *testing.T, principal, exe, args, owner string) {
		var argv []string
		if args != "" {
			argv = strings.Split(args, "\x00")
		}
		d := a.Evaluate(RunRemoteCommands, principal, Command(exe, argv))
		if d2 := a.Evaluate(RunRemoteCommands, principal, Command(exe, argv)); d2 != d {
			t.Fatal("not deterministic")
		}
		want := Decision{false, "permissive=false (no rule matched)"}
		switch {
		case principal == "mallory":
			want = Decision{false, "run_remote_commands[0]"}
		case principal == "ops" && strings.HasPrefix(exe, "/bin/") && !strings.Contains(exe[5:], "/"):
			want = Decision{true, "run_remote_commands[1]"}
		case (exe == "/usr/bin/systemctl" && len(argv) == 2 && argv[0] == "status" && !strings.Contains(argv[1], "/")) ||
			(exe[strings.LastIndexByte(exe, '/')+1:] == "uptime" && len(argv) == 0):
			want = Decision{true, "run_remote_commands[2]"}
		}
		if d != want {
			t.Fatalf("%q running %q %q = %+v, want %+v", principal, exe, argv, d, want)
		}

		k := a.Evaluate(KillRemoteTasks, principal, Value(owner))
		want = Decision{false, "permissive=false (no rule matched)"}
		switch {
		case principal == "ops":
			want = Decision{true, "kill_remote_tasks[0]"}
		case principal != "" && owner == principal:
			want = Decision{true, "kill_remote_tasks[1]"}
		}
		if k != want {
			t.Fatalf("%q killing a task of %q = %+v, want %+v", principal, owner, k, want)
		}
	})
}
