package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/internal/audit"
	"github.com/execmod/execmod/sdk"
	"github.com/execmod/execmod/sdk/sdktest"
)

// testPolicy: ops may do anything; mallory may run nothing; everyone else
// may run echo and sleep, and view and kill their own tasks.
const testPolicy = `{
  "permissive": false,
  "run_remote_commands": [
    {"principals": {"values": ["ops"]}, "commands": {"type": "ANY"}},
    {"principals": {"values": ["mallory"]}, "commands": {"type": "NONE"}},
    {"principals": {"type": "ANY"}, "commands": {"values": ["echo **", "sleep *"]}}
  ],
  "run_remote_shell": [{"principals": {"values": ["ops"]}}],
  "run_remote_commands_as_user": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
  "view_remote_tasks": [
    {"principals": {"values": ["ops"]}, "owners": {"type": "ANY"}},
    {"principals": {"type": "ANY"}, "owners": {"values": ["self"]}}
  ],
  "kill_remote_tasks": [
    {"principals": {"values": ["ops"]}, "owners": {"type": "ANY"}},
    {"principals": {"type": "ANY"}, "owners": {"values": ["self"]}}
  ]
}`

// principalHeader is how these tests say who a request is from: the
// in-process host authenticates each request as the principal it names
// (the real host authenticates with --http_credentials instead).
const principalHeader = "X-Test-Principal"

// aclServer serves the module through the real plugin protocol in this
// process, with the host's --acls flag set to acls and each request
// authenticated as its X-Test-Principal header says ("" when absent).
type aclServer struct {
	url, dataDir string
}

func newACLServer(t *testing.T, acls string) *aclServer {
	t.Helper()
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	h, stopped, err := sdk.ServeInProcess(ctx, "remote", &module{}, sdk.InProcess{
		Flags:   map[string]string{"acls": acls, "work_dir": t.TempDir(), "sandbox_directory": t.TempDir()},
		DataDir: data, LogLevel: "ERROR",
		Principal: func(r *http.Request) string { return r.Header.Get(principalHeader) },
	})
	if err != nil {
		cancel()
		t.Fatalf("the module did not start: %v", err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &aclServer{url: hs.URL, dataDir: data}
}

// do sends a request as principal and decodes the JSON answer (nil for
// an empty one).
func (s *aclServer) do(t *testing.T, principal, method, path, body string) (int, map[string]any) {
	t.Helper()
	code, b := httpDo(t, s.url, principal, method, path, body)
	if len(b) == 0 || b[0] != '{' {
		return code, nil
	}
	return code, hosttest.Decode(t, string(b))
}

func httpDo(t *testing.T, base, principal, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if principal != "" {
		req.Header.Set(principalHeader, principal)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// auditLines reads the audit log.
func auditLines(t *testing.T, dataDir string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		out = append(out, hosttest.Decode(t, sc.Text()))
	}
	return out
}

// lastAudit is the newest audit line with action and principal.
func lastAudit(t *testing.T, dataDir, action, principal string) map[string]any {
	t.Helper()
	ls := auditLines(t, dataDir)
	for i := len(ls) - 1; i >= 0; i-- {
		if ls[i]["action"] == action && ls[i]["principal"] == principal {
			return ls[i]
		}
	}
	t.Fatalf("no audit line for %s by %q in %v", action, principal, ls)
	return nil
}

// Running: each action allows and denies, the 403 and the audit line name
// the deciding rule, and policy/check answers as the real request does.
func TestACLRun(t *testing.T) {
	s := newACLServer(t, testPolicy)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, principal, body string
		allowed               bool
		rule                  string
		msg                   string
	}{
		{"a command the policy lists", "alice", `{"command":"echo","arguments":["hi"]}`, true, "run_remote_commands[2]", ""},
		{"the unauthenticated principal matches ANY", "", `{"command":"echo"}`, true, "run_remote_commands[2]", ""},
		{"a command nobody listed", "alice", `{"command":"rm","arguments":["-rf","/nonexistent"]}`, false,
			"permissive=false (no rule matched)", `principal "alice" may not run /`},
		{"one argument too many for sleep *", "alice", `{"command":"sleep","arguments":["1","2"]}`, false,
			"permissive=false (no rule matched)", "/sleep 1 2"},
		{"a principal who may run nothing", "mallory", `{"command":"echo","arguments":["hi"]}`, false,
			"run_remote_commands[1]", `principal "mallory" may not run`},
		{"ops may run anything", "ops", `{"command":"true"}`, true, "run_remote_commands[0]", ""},
		{"a shell for alice", "alice", `{"command":"echo hi","shell":true}`, false,
			"permissive=false (no rule matched)", `principal "alice" may not run shell commands`},
		{"a shell for ops", "ops", `{"command":"echo hi","shell":true}`, true, "run_remote_shell[0], run_remote_commands[0]", ""},
		{"a user for alice", "alice", fmt.Sprintf(`{"command":"echo","user":%q}`, me.Username), false,
			"permissive=false (no rule matched)", fmt.Sprintf("may not run commands as user %q", me.Username)},
		{"a user for ops", "ops", fmt.Sprintf(`{"command":"echo","user":%q}`, me.Username), true,
			"run_remote_commands[0], run_remote_commands_as_user[0]", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, check := s.do(t, tc.principal, "POST", "/remote/policy/check", tc.body)
			if code != 200 || check["allowed"] != tc.allowed || check["rule"] != tc.rule || len(check["checks"].([]any)) == 0 {
				t.Errorf("policy/check = %d %v, want allowed=%t by %s", code, check, tc.allowed, tc.rule)
			}
			code, m := s.do(t, tc.principal, "POST", "/remote/tasks", tc.body)
			line := lastAudit(t, s.dataDir, audit.Run, tc.principal)
			if line["rule"] != tc.rule || line["decision"] != map[bool]string{true: "allow", false: "deny"}[tc.allowed] {
				t.Errorf("audit line %v, want rule %s", line, tc.rule)
			}
			if !tc.allowed {
				if code != 403 || m["rule"] != tc.rule || !strings.Contains(m["error"].(string), tc.msg) ||
					!strings.Contains(m["error"].(string), tc.rule) {
					t.Errorf("POST /remote/tasks = %d %v, want 403 by %s saying %q", code, m, tc.rule, tc.msg)
				}
				if line["task_id"] != nil {
					t.Errorf("a refused request has a task: %v", line)
				}
				return
			}
			if code != 201 && code != 202 {
				t.Fatalf("POST /remote/tasks = %d %v", code, m)
			}
			if line["task_id"] != m["id"] || !strings.HasPrefix(line["command"].(string), "/") {
				t.Errorf("audit line %v for task %v: want its id and the resolved executable", line, m)
			}
		})
	}

	// The seed route is authorized the same way.
	if code, m := s.do(t, "alice", "POST", "/remote/execute", `{"command":"ls"}`); code != 403 || m["rule"] != "permissive=false (no rule matched)" {
		t.Errorf("POST /remote/execute ls as alice = %d %v", code, m)
	}
	if code, m := s.do(t, "alice", "POST", "/remote/execute", `{"command":"echo","arguments":["x"]}`); code != 200 || m["result"] != "OK" {
		t.Errorf("POST /remote/execute echo as alice = %d %v", code, m)
	}

	// The audit line says as whom and where a command runs.
	cwd := t.TempDir()
	if code, m := s.do(t, "ops", "POST", "/remote/tasks", fmt.Sprintf(`{"command":"pwd","user":%q,"cwd":%q}`, me.Username, cwd)); code != 201 {
		t.Errorf("ops runs pwd as %s in %s = %d %v", me.Username, cwd, code, m)
	}
	if line := lastAudit(t, s.dataDir, audit.Run, "ops"); line["user"] != me.Username || line["cwd"] != cwd || line["decision"] != "allow" {
		t.Errorf("audit of a run with a user and a cwd: %v, want user %s cwd %s", line, me.Username, cwd)
	}

	// A PATH of the caller's choosing does not widen "/bin/..." rules:
	// what is judged is the file that would run.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "uptime"), []byte("#!/bin/sh\necho pwned\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, m := s.do(t, "alice", "POST", "/remote/policy/check", fmt.Sprintf(`{"command":"uptime","env":{"PATH":%q}}`, dir))
	if m["command"] != filepath.Join(dir, "uptime") {
		t.Errorf("policy/check did not judge the file on the caller's PATH: %v", m)
	}

	if _, err := audit.Verify(filepath.Join(s.dataDir, audit.FileName)); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}

// Viewing and killing: owners, "self", ops, and the unauthenticated
// principal, on every route that reads or stops a task.
func TestACLViewAndKill(t *testing.T) {
	s := newACLServer(t, testPolicy)
	code, m := s.do(t, "alice", "POST", "/remote/tasks", `{"command":"sleep","arguments":["300"]}`)
	if code != 201 {
		t.Fatalf("start = %d %v", code, m)
	}
	id, pid := m["id"].(string), int(m["pid"].(float64))
	code, m = s.do(t, "bob", "POST", "/remote/tasks", `{"command":"echo","arguments":["bob"]}`)
	if code != 201 {
		t.Fatalf("start = %d %v", code, m)
	}
	bobs := m["id"].(string)
	const noRule = "permissive=false (no rule matched)"

	for _, path := range []string{"/remote/tasks/" + id, "/remote/tasks/" + id + "/stdout", "/remote/tasks/" + id + "?wait=1s"} {
		if code, m := s.do(t, "bob", "GET", path, ""); code != 403 || m["rule"] != noRule || !strings.Contains(m["error"].(string), `owned by "alice"`) {
			t.Errorf("GET %s as bob = %d %v", path, code, m)
		}
		if code, _ := s.do(t, "alice", "GET", path, ""); code != 200 {
			t.Errorf("GET %s as alice = %d", path, code)
		}
		if code, _ := s.do(t, "ops", "GET", path, ""); code != 200 {
			t.Errorf("GET %s as ops = %d", path, code)
		}
	}
	if code, m := s.do(t, "bob", "POST", "/remote/task", fmt.Sprintf(`{"pid":%d}`, pid)); code != 403 || m["rule"] != noRule {
		t.Errorf("POST /remote/task as bob = %d %v", code, m)
	}
	if code, m := s.do(t, "", "GET", "/remote/tasks/"+id, ""); code != 403 {
		t.Errorf("GET as the unauthenticated principal = %d %v (self never matches it)", code, m)
	}
	line := lastAudit(t, s.dataDir, audit.View, "bob")
	if line["decision"] != "deny" || line["rule"] != noRule || line["owner"] != "alice" || line["task_id"] != id {
		t.Errorf("audit of a refused view: %v", line)
	}

	ids := func(principal string) []string {
		_, m := s.do(t, principal, "GET", "/remote/tasks", "")
		var out []string
		for _, task := range m["tasks"].([]any) {
			out = append(out, task.(map[string]any)["id"].(string))
		}
		return out
	}
	if got := ids("bob"); len(got) != 1 || got[0] != bobs {
		t.Errorf("bob lists %v, want only %s", got, bobs)
	}
	if got := ids("ops"); len(got) != 2 {
		t.Errorf("ops lists %v, want both tasks", got)
	}
	if _, m := s.do(t, "bob", "GET", "/remote/task", ""); len(m["ids"].([]any)) != 1 || m["ids"].([]any)[0] != bobs {
		t.Errorf("GET /remote/task as bob = %v", m)
	}

	// Killing: bob may not, by any route; alice may.
	for _, tc := range []struct{ method, path, body string }{
		{"DELETE", "/remote/tasks/" + id, ""},
		{"POST", "/remote/tasks/" + id + "/signal", `{"signal":"SIGHUP"}`},
		{"POST", "/remote/kill", fmt.Sprintf(`{"pid":%d}`, pid)},
	} {
		if code, m := s.do(t, "bob", tc.method, tc.path, tc.body); code != 403 || m["rule"] != noRule {
			t.Errorf("%s %s as bob = %d %v", tc.method, tc.path, code, m)
		}
	}
	line = lastAudit(t, s.dataDir, audit.Kill, "bob")
	if line["decision"] != "deny" || line["rule"] != noRule || line["task_id"] != id || line["pid"] != float64(pid) {
		t.Errorf("audit of a refused kill: %v", line)
	}
	if line = lastAudit(t, s.dataDir, audit.Signal, "bob"); line["signal"] != "SIGHUP" || line["decision"] != "deny" {
		t.Errorf("audit of a refused signal: %v", line)
	}
	if code, m := s.do(t, "alice", "DELETE", "/remote/tasks/"+id, ""); code != 202 {
		t.Errorf("DELETE as alice = %d %v", code, m)
	}
	line = lastAudit(t, s.dataDir, audit.Kill, "alice")
	if line["decision"] != "allow" || line["rule"] != "kill_remote_tasks[1]" {
		t.Errorf("audit of alice's kill: %v", line)
	}
	if code, m := s.do(t, "alice", "GET", "/remote/tasks/"+id+"?wait=60s", ""); code != 200 || m["state"] != "killed" {
		t.Errorf("after the kill: %d %v", code, m)
	}
	// ops purges bob's finished task.
	s.do(t, "bob", "GET", "/remote/tasks/"+bobs+"?wait=60s", "")
	if code, m := s.do(t, "ops", "DELETE", "/remote/tasks/"+bobs, ""); code != 204 {
		t.Errorf("DELETE bob's task as ops = %d %v", code, m)
	}
	if line = lastAudit(t, s.dataDir, audit.Purge, "ops"); line["rule"] != "kill_remote_tasks[0]" || line["owner"] != "bob" {
		t.Errorf("audit of the purge: %v", line)
	}

	// Each task's end is a line, with its outcome.
	var end map[string]any
	for _, l := range auditLines(t, s.dataDir) {
		if l["action"] == audit.End && l["task_id"] == id {
			end = l
		}
	}
	if o, _ := end["outcome"].(map[string]any); o == nil || o["state"] != "killed" || o["signal"] != "SIGTERM" || end["pid"] != float64(pid) {
		t.Errorf("end line of the killed task: %v", end)
	}

	// An idempotency key does not hand out another principal's task.
	body := `{"command":"echo","arguments":["k"],"idempotency_key":"shared"}`
	if code, _ := s.do(t, "alice", "POST", "/remote/tasks", body); code != 201 {
		t.Fatalf("alice's keyed task = %d", code)
	}
	if code, m := s.do(t, "bob", "POST", "/remote/tasks", body); code != 403 {
		t.Errorf("bob replaying alice's key = %d %v, want 403", code, m)
	}
}

// The audit log never holds an environment value, verifies, and Verify
// finds an edited line.
func TestAuditLogThroughTheModule(t *testing.T) {
	srv := sdktest.NewServer(t, "remote", &module{}, sdktest.Principal("alice"), sdktest.Flags("acls", testPolicy))
	const secret = "hunter2-do-not-log"
	body := fmt.Sprintf(`{"command":"echo","arguments":["visible"],"env":{"API_TOKEN":%q}}`, secret)
	code, b := httpDo(t, srv.URL, "", "POST", "/remote/tasks", body)
	m := hosttest.Decode(t, string(b))
	if code != 201 {
		t.Fatalf("start = %d %s", code, b)
	}
	httpDo(t, srv.URL, "", "GET", "/remote/tasks/"+m["id"].(string)+"?wait=60s", "")
	code, b = httpDo(t, srv.URL, "", "POST", "/remote/tasks", fmt.Sprintf(`{"command":"rm","env":{"API_TOKEN":%q}}`, secret))
	if code != 403 || !strings.Contains(string(b), "permissive=false") {
		t.Errorf("rm = %d %s", code, b)
	}

	path := filepath.Join(srv.DataDir, audit.FileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Errorf("an environment value reached the audit log:\n%s", raw)
	}
	ls := auditLines(t, srv.DataDir)
	if len(ls) != 3 { // run, end, refused run
		t.Fatalf("%d audit lines, want 3:\n%s", len(ls), raw)
	}
	run, end, refused := ls[0], ls[1], ls[2]
	if run["principal"] != "alice" || run["env_keys"].([]any)[0] != "API_TOKEN" || run["remote_addr"] == nil ||
		run["route"] != "POST /remote/tasks" || run["pid"] == nil {
		t.Errorf("run line: %v", run)
	}
	if o := end["outcome"].(map[string]any); end["action"] != audit.End || o["state"] != "exited" || o["exit_code"] != 0.0 || o["stdout_bytes"] != 8.0 || o["duration_ms"] == nil {
		t.Errorf("end line: %v", end)
	}
	if refused["decision"] != "deny" || refused["env_keys"].([]any)[0] != "API_TOKEN" {
		t.Errorf("refused line: %v", refused)
	}
	if _, err := audit.Verify(path); err != nil {
		t.Fatal(err)
	}

	// Someone edits the command of the first line.
	edited := bytes.Replace(raw, []byte(`"arguments":["echo","visible"]`), []byte(`"arguments":["echo","harmless"]`), 1)
	if bytes.Equal(edited, raw) {
		t.Fatal("nothing to edit")
	}
	if err := os.WriteFile(path, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	var ce *audit.ChainError
	if _, err := audit.Verify(path); !errors.As(err, &ce) || ce.Line != 1 {
		t.Errorf("Verify after an edit of line 1 = %v", err)
	}
}

// Bad ACLs stop the module's start with every problem.
func TestACLBadPolicy(t *testing.T) {
	_, _, err := sdk.ServeInProcess(t.Context(), "remote", &module{}, sdk.InProcess{
		Flags:   map[string]string{"acls": `{"run_remote_comands": [], "run_remote_shell": [{"principals": {"type": "ALL"}}]}`},
		DataDir: t.TempDir(),
	})
	for _, want := range []string{"run_remote_comands: unknown action", `run_remote_shell[0].principals.type: want "ANY", "NONE" or "SOME"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start with bad ACLs: %v; want %q", err, want)
		}
	}
}

// Through the real host, without --acls: everything is allowed and
// audited as the unauthenticated principal, in the module's data
// directory under work_dir (TestACLEachActionThroughTheHost has the
// host with --acls and credentials).
func TestAuditThroughHost(t *testing.T) {
	h := startRemote(t, nil)
	_, id := execute(t, h, `{"command":"echo","arguments":["hi"]}`)
	waitTask(t, h, id)
	path := filepath.Join(h.WorkDir, "modules", "org_execmod_RemoteExecution", audit.FileName)
	if _, err := audit.Verify(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var run map[string]any
	if err := json.Unmarshal(raw[:bytes.IndexByte(raw, '\n')], &run); err != nil {
		t.Fatal(err)
	}
	if run["action"] != audit.Run || run["principal"] != "" || run["rule"] != "no ACLs (everything allowed)" || run["task_id"] != id {
		t.Errorf("first audit line through the host: %v", run)
	}
}
