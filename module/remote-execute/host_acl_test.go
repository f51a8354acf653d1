package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execmod/execmod/module/internal/audit"
)

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
		req, _ := http.NewRequestWithContext(t.Context(), "POST", h.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
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
	path := filepath.Join(h.WorkDir, "modules", "org_execmod_RemoteExecution", audit.FileName)
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

func jsonNum(v any) string { b, _ := json.Marshal(v); return string(b) }
