package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/internal/audit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Through the real host: basic authentication names the principal, the
// module authorizes it against --acls, and the audit log records both
// decisions in an intact chain.
func TestACLsThroughTheHost(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "credentials.json")
	if err := os.WriteFile(creds, []byte(`{"credentials":[{"principal":"alice","secret":"a:1"},{"principal":"bob","secret":"b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	acls := `{"permissive":false,"run_remote_commands":[` +
		`{"principals":{"values":["alice"]},"commands":{"type":"ANY"}},` +
		`{"principals":{"values":["bob"]},"commands":{"values":["echo *"]}}],` +
		`"view_remote_tasks":[{"principals":{"type":"ANY"},"owners":{"values":["self"]}}]}`
	h := startRemote(t, nil, "--http_credentials=file://"+creds, "--authenticate_http_readonly",
		"--authenticate_http_readwrite", "--acls="+acls)
	post := func(user, pass, path, body string) (int, map[string]any) {
		return basicDo(t, h, user, pass, "POST", path, body)
	}
	if code, _ := post("", "", "/remote/execute", `{"command":"ls"}`); code != 401 {
		t.Errorf("unauthenticated execute = %d, want 401", code)
	}
	if code, m := post("bob", "b", "/remote/execute", `{"command":"ls"}`); code != 403 || m["rule"] != "permissive=false (no rule matched)" {
		t.Errorf("bob runs ls = %d %v, want 403 naming the rule", code, m)
	}
	code, m := post("bob", "b", "/remote/execute", `{"command":"echo","arguments":["hi"]}`)
	if code != 200 {
		t.Fatalf("bob runs echo hi = %d %v", code, m)
	}
	if code, m := post("alice", "a:1", "/remote/task", `{"pid":`+jsonNum(m["pid"])+`}`); code != 403 {
		t.Errorf("alice reads bob's task = %d %v, want 403", code, m)
	}
	if code, m := post("alice", "a:1", "/remote/execute", `{"command":"ls"}`); code != 200 {
		t.Errorf("alice runs ls = %d %v", code, m)
	}
	path := auditPath(h)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"principal":"bob"`, `"decision":"deny"`, `"principal":"alice"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
	if _, err := audit.Verify(path); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}

// hostPolicy decides each action by a rule of its own, so that every
// answer can name the rule that decided: alice and bob may run anything,
// alice a shell and commands as the test's own user, bob neither; anyone
// may view and kill their own tasks, bob nobody else's.
func hostPolicy(me string) string {
	return fmt.Sprintf(`{"permissive": false,
  "run_remote_commands": [{"principals": {"values": ["alice", "bob"]}, "commands": {"type": "ANY"}}],
  "run_remote_shell": [{"principals": {"values": ["alice"]}}, {"principals": {"values": ["bob"]}, "shells": {"type": "NONE"}}],
  "run_remote_commands_as_user": [{"principals": {"values": ["alice"]}, "users": {"values": [%q]}},
    {"principals": {"values": ["bob"]}, "users": {"type": "NONE"}}],
  "view_remote_tasks": [{"principals": {"type": "ANY"}, "owners": {"values": ["self"]}},
    {"principals": {"values": ["bob"]}, "owners": {"type": "NONE"}}],
  "kill_remote_tasks": [{"principals": {"type": "ANY"}, "owners": {"values": ["self"]}},
    {"principals": {"values": ["bob"]}, "owners": {"type": "NONE"}}]
}`, me)
}

// Each action end to end through the real host with basic credentials:
// run_remote_shell, run_remote_commands_as_user, view_remote_tasks and
// kill_remote_tasks (kill and signal, one's own task and someone else's),
// and POST /remote/policy/check, which answers as the real request then
// does. Every decision names its rule in the answer (403 JSON), in the
// audit file and in the host's log, whose audit record is a complete
// copy of the file's line; the chain verifies and its tail is the last
// record the host logged.
func TestACLEachActionThroughTheHost(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "credentials.json")
	if err := os.WriteFile(creds, []byte(`{"credentials":[{"principal":"alice","secret":"a"},{"principal":"bob","secret":"b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startRemote(t, nil, "--http_credentials=file://"+creds, "--authenticate_http_readonly",
		"--authenticate_http_readwrite", "--acls="+hostPolicy(me.Username))
	secret := map[string]string{"alice": "a", "bob": "b"}
	do := func(who, method, path, body string) (int, map[string]any) {
		t.Helper()
		return basicDo(t, h, who, secret[who], method, path, body)
	}
	const noRule = "permissive=false (no rule matched)"
	cwd := t.TempDir()

	// Running: policy/check first, then the request itself.
	for _, tc := range []struct {
		name, who, body string
		rule            string // the deciding rule; denied unless wantTask
		msg             string // in the 403's error
		wantTask        bool
	}{
		{"bob may not run a shell", "bob", `{"command":"echo hi","shell":true}`,
			"run_remote_shell[1]", `principal "bob" may not run shell commands`, false},
		{"bob may not run as a user", "bob", fmt.Sprintf(`{"command":"echo","user":%q}`, me.Username),
			"run_remote_commands_as_user[1]", fmt.Sprintf(`may not run commands as user %q`, me.Username), false},
		{"alice may not run as a user nobody listed", "alice", `{"command":"echo","user":"nobody"}`,
			noRule, `principal "alice" may not run commands as user "nobody"`, false},
		{"alice may run a shell", "alice", `{"command":"exit 0","shell":true}`,
			"run_remote_shell[0], run_remote_commands[0]", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, check := do(tc.who, "POST", "/remote/policy/check", tc.body)
			if code != 200 || check["allowed"] != tc.wantTask || check["rule"] != tc.rule || check["principal"] != tc.who {
				t.Errorf("policy/check = %d %v, want allowed=%t by %s", code, check, tc.wantTask, tc.rule)
			}
			code, m := do(tc.who, "POST", "/remote/tasks", tc.body)
			line := lastAudit(t, dataDir(h), audit.Run, tc.who)
			if line["rule"] != tc.rule || line["decision"] != map[bool]string{true: "allow", false: "deny"}[tc.wantTask] {
				t.Errorf("audit line %v, want %s", line, tc.rule)
			}
			if tc.wantTask {
				if code != 201 && code != 202 || line["task_id"] != m["id"] {
					t.Errorf("POST /remote/tasks = %d %v; audit %v", code, m, line)
				}
				waitTaskAs(t, h, "alice", "a", m["id"].(string))
			} else if code != 403 || m["rule"] != tc.rule || !strings.Contains(fmt.Sprint(m["error"]), tc.msg) ||
				!strings.Contains(fmt.Sprint(m["error"]), "denied by "+tc.rule) {
				t.Errorf("POST /remote/tasks = %d %v, want 403 by %s saying %q", code, m, tc.rule, tc.msg)
			}
			auditInHostLog(t, h, line)
		})
	}

	// alice's task, as the test's user, in a directory of her choosing.
	code, m := do("alice", "POST", "/remote/tasks", fmt.Sprintf(`{"command":"sleep","arguments":["300"],"user":%q,"cwd":%q}`, me.Username, cwd))
	if code != 201 {
		t.Fatalf("alice starts sleep = %d %v", code, m)
	}
	id := m["id"].(string)
	run := lastAudit(t, dataDir(h), audit.Run, "alice")
	if run["task_id"] != id || run["user"] != me.Username || run["cwd"] != cwd ||
		run["rule"] != "run_remote_commands[0], run_remote_commands_as_user[0]" || run["remote_addr"] == nil {
		t.Errorf("audit of alice's run: %v", run)
	}
	if rec := auditInHostLog(t, h, run); rec["user"] != me.Username || rec["cwd"] != cwd || rec["task"] != id {
		t.Errorf("host log record of alice's run: %v", rec)
	}

	// Viewing: bob may not, alice may.
	for _, path := range []string{"/remote/tasks/" + id, "/remote/tasks/" + id + "/stdout"} {
		if code, m := do("bob", "GET", path, ""); code != 403 || m["rule"] != "view_remote_tasks[1]" ||
			!strings.Contains(fmt.Sprint(m["error"]), `principal "bob" may not view task `+id+`, owned by "alice" (denied by view_remote_tasks[1])`) {
			t.Errorf("bob GET %s = %d %v, want 403 by view_remote_tasks[1]", path, code, m)
		}
		line := lastAudit(t, dataDir(h), audit.View, "bob")
		if line["decision"] != "deny" || line["rule"] != "view_remote_tasks[1]" || line["owner"] != "alice" || line["task_id"] != id {
			t.Errorf("audit of bob's view: %v", line)
		}
		auditInHostLog(t, h, line)
		if code, _ := do("alice", "GET", path, ""); code != 200 {
			t.Errorf("alice GET %s = %d", path, code)
		}
	}

	// Signalling and killing: bob may not, alice may, her own task.
	for _, tc := range []struct {
		who, method, path, body, action, rule string
		status                                int
	}{
		{"bob", "POST", "/remote/tasks/" + id + "/signal", `{"signal":"SIGCONT"}`, audit.Signal, "kill_remote_tasks[1]", 403},
		{"bob", "DELETE", "/remote/tasks/" + id, "", audit.Kill, "kill_remote_tasks[1]", 403},
		{"alice", "POST", "/remote/tasks/" + id + "/signal", `{"signal":"SIGCONT"}`, audit.Signal, "kill_remote_tasks[0]", 200},
		{"alice", "DELETE", "/remote/tasks/" + id, "", audit.Kill, "kill_remote_tasks[0]", 202},
	} {
		code, m := do(tc.who, tc.method, tc.path, tc.body)
		if code != tc.status || tc.status == 403 && (m["rule"] != tc.rule || !strings.Contains(fmt.Sprint(m["error"]), "denied by "+tc.rule)) {
			t.Errorf("%s %s %s = %d %v, want %d by %s", tc.who, tc.method, tc.path, code, m, tc.status, tc.rule)
		}
		line := lastAudit(t, dataDir(h), tc.action, tc.who)
		if line["rule"] != tc.rule || line["decision"] != map[bool]string{true: "deny", false: "allow"}[tc.status == 403] ||
			line["task_id"] != id || tc.action == audit.Signal && line["signal"] != "SIGCONT" {
			t.Errorf("audit of %s's %s: %v", tc.who, tc.action, line)
		}
		auditInHostLog(t, h, line)
	}
	if task := waitTaskAs(t, h, "alice", "a", id); task["state"] != "killed" {
		t.Errorf("after alice's kill: %v", task)
	}

	// The task's end is the last line; the chain verifies up to it, and
	// the host's log holds it too: the tail is anchored outside the file.
	var end map[string]any
	for _, l := range auditLines(t, dataDir(h)) {
		end = l
	}
	if end["action"] != audit.End || end["task_id"] != id {
		t.Fatalf("last audit line %v, want the end of %s", end, id)
	}
	rec := auditInHostLog(t, h, end)
	tail, err := audit.Verify(auditPath(h))
	if err != nil {
		t.Fatal(err)
	}
	if rec["hash"] != tail.Hash || rec["seq"] != strconv.Itoa(tail.Lines) {
		t.Errorf("Verify's tail %+v, the host log's last record seq %s hash %s", tail, rec["seq"], rec["hash"])
	}
}

// A request refused by authentication never reaches the module, so it
// has no audit line; the host's log records it, at WARN.
func TestUnauthenticatedRequestsAreLoggedByTheHost(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "credentials.json")
	if err := os.WriteFile(creds, []byte(`{"credentials":[{"principal":"alice","secret":"a"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startRemote(t, nil, "--http_credentials=file://"+creds, "--authenticate_http_readwrite")
	if code, m := basicDo(t, h, "alice", "a", "POST", "/remote/tasks", `{"command":"true"}`); code != 201 {
		t.Fatalf("alice runs true = %d %v", code, m)
	}
	before := len(auditLines(t, dataDir(h)))
	from := h.Logs.Len()
	for _, tc := range []struct{ who, secret, reason string }{{"", "", "no credentials"}, {"alice", "wrong", "invalid credentials"}} {
		if code, _ := basicDo(t, h, tc.who, tc.secret, "POST", "/remote/execute", `{"command":"id"}`); code != 401 {
			t.Errorf("POST /remote/execute as %q = %d, want 401", tc.who, code)
		}
		re := regexp.MustCompile(`\[WARN\]  modhost: authentication failed: realm=mesos-agent-readwrite remote=127\.0\.0\.1:\d+ ` +
			`method=POST path=/remote/execute reason="` + tc.reason + `"$`)
		if _, err := h.Logs.WaitFrom(from, re, h.Exited); err != nil {
			t.Error(err)
		}
	}
	// The module has answered everything it was sent (the 401s were not);
	// a request it does see, after them, proves nothing of theirs was
	// written before it.
	basicDo(t, h, "alice", "a", "POST", "/remote/tasks", `{"command":"rm"}`)
	ls := auditLines(t, dataDir(h))
	for _, l := range ls[before:] {
		if l["route"] == "POST /remote/execute" {
			t.Errorf("a request refused by the host reached the audit log: %v", l)
		}
	}
}

// The remote module's routes as the host mounts them, with their realms:
// a change to the public surface or to what needs credentials is a
// reviewed diff of testdata/routes.golden (-update rewrites it).
func TestRemoteRouteTableGolden(t *testing.T) {
	h := startRemote(t, nil)
	line := regexp.MustCompile(`route: (\S+)\s+(/remote/\S*)\s+\S+\s+(\S+)\s*$`)
	var b strings.Builder
	for _, l := range strings.Split(h.Logs.String(), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			fmt.Fprintf(&b, "%-7s %-28s %s\n", m[1], m[2], m[3])
		}
	}
	got := b.String()
	golden := filepath.Join("testdata", "routes.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestRemoteRouteTableGolden -args -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("the remote module's routes changed (review, then -update):\n%s\nwant:\n%s", got, want)
	}
}

// basicDo sends a request with basic credentials (none when user is "")
// and decodes the JSON answer (nil for none).
func basicDo(t *testing.T, h *hosttest.Host, user, pass, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(t.Context(), method, h.URL+path, rd)
		req.Header.Set("Content-Type", "application/json")
	} else {
		req, err = http.NewRequestWithContext(t.Context(), method, h.URL+path, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// waitTaskAs long-polls a task as a principal until it has ended.
func waitTaskAs(t *testing.T, h *hosttest.Host, user, pass, id string) map[string]any {
	t.Helper()
	code, m := basicDo(t, h, user, pass, "GET", "/remote/tasks/"+id+"?wait=60s", "")
	if code != 200 || m["state"] == "running" || m["state"] == "queued" {
		t.Fatalf("task %s after a 60s wait: %d %v", id, code, m)
	}
	return m
}

func dataDir(h *hosttest.Host) string {
	return filepath.Join(h.WorkDir, "modules", "org_execmod_RemoteExecution")
}

func auditPath(h *hosttest.Host) string { return filepath.Join(dataDir(h), audit.FileName) }

// hclogField is one key=value of a host log line; a value with blanks or
// quotes is Go-quoted.
var hclogField = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// auditInHostLog waits for the host's log to hold the audit record of
// the audit file's line (found by its hash), checks that it is logged at
// WARN and holds every member of the line with the same value, and
// returns its fields.
func auditInHostLog(t *testing.T, h *hosttest.Host, line map[string]any) map[string]string {
	t.Helper()
	hash := line["hash"].(string)
	m, err := h.Logs.Wait(regexp.MustCompile(`^\S+ \[WARN\]  modhost\.org_execmod_RemoteExecution: audit: (.*\bhash=`+hash+`\b.*)$`), h.Exited)
	if err != nil {
		t.Fatalf("the audit record of %v is not in the host's log: %v", line, err)
	}
	rec := map[string]string{}
	for _, f := range hclogField.FindAllStringSubmatch(m[1], -1) {
		v := f[2]
		if strings.HasPrefix(v, `"`) {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
		}
		rec[f[1]] = v
	}
	same := func(key string, want any) {
		t.Helper()
		got, ok := rec[key]
		var equal bool
		switch w := want.(type) {
		case string:
			equal = got == w
		case float64:
			n, err := strconv.ParseFloat(got, 64)
			equal = err == nil && n == w
		case bool:
			equal = got == strconv.FormatBool(w)
		case []any:
			var g []any
			equal = json.Unmarshal([]byte(got), &g) == nil && fmt.Sprint(g) == fmt.Sprint(w)
		}
		if !ok || !equal {
			t.Errorf("host log record %v: %s = %q, want %v (line %v)", m[1], key, got, want, line)
		}
	}
	for k, v := range line {
		switch k {
		case "task_id":
			same("task", v)
		case "outcome":
			for ok, ov := range v.(map[string]any) {
				if ok == "signal" {
					ok = "exit_signal"
				}
				same(ok, ov)
			}
		default:
			same(k, v)
		}
	}
	return rec
}

func jsonNum(v any) string { b, _ := json.Marshal(v); return string(b) }
