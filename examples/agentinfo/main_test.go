package main

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execmod/execmod/sdk/sdktest"
)

func call(t *testing.T, srv *sdktest.Server, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	resp, err := srv.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestInfo(t *testing.T) {
	srv := sdktest.NewServer(t, "agentinfo", &agentinfo{}, sdktest.Flags("hostname", "agent7.example", "port", "5051"))
	status, body := call(t, srv, "GET", "/agentinfo/", "")
	var got struct {
		WorkDir    string            `json:"work_dir"`
		SandboxDir string            `json:"sandbox_dir"`
		DataDir    string            `json:"data_dir"`
		Hostname   string            `json:"hostname"`
		Flags      map[string]string `json:"flags"`
	}
	if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil {
		t.Fatalf("GET /agentinfo/ = %d %s (%v)", status, body, err)
	}
	if got.WorkDir != srv.WorkDir || got.SandboxDir != srv.SandboxDir || got.DataDir != srv.DataDir {
		t.Errorf("dirs = %q %q %q, want %q %q %q", got.WorkDir, got.SandboxDir, got.DataDir, srv.WorkDir, srv.SandboxDir, srv.DataDir)
	}
	if got.Hostname != "agent7.example" || got.Flags["port"] != "5051" || got.Flags["work_dir"] != srv.WorkDir {
		t.Errorf("hostname %q, flags %v: the agent's flags did not reach the module", got.Hostname, got.Flags)
	}
}

func TestNotes(t *testing.T) {
	srv := sdktest.NewServer(t, "agentinfo", &agentinfo{})
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/agentinfo/notes/todo.txt", "", 404, "no note named todo.txt\n"},
		{"PUT", "/agentinfo/notes/todo.txt", "drain agent7\n", 204, ""},
		{"GET", "/agentinfo/notes/todo.txt", "", 200, "drain agent7\n"},
		{"PUT", "/agentinfo/notes/todo.txt", "", 204, ""},
		{"GET", "/agentinfo/notes/todo.txt", "", 200, ""},
		{"PUT", "/agentinfo/notes/max", strings.Repeat("x", 64<<10), 204, ""},
		{"PUT", "/agentinfo/notes/big", strings.Repeat("x", 64<<10+1), 413, "a note is at most 64 KiB\n"},
		{"GET", "/agentinfo/notes/big", "", 404, "no note named big\n"},
		{"PUT", "/agentinfo/notes/" + strings.Repeat("n", 64), "x", 204, ""},
		{"DELETE", "/agentinfo/notes/todo.txt", "", 405, `{"error":"method DELETE is not allowed on /agentinfo/notes/todo.txt (allowed: GET, HEAD, PUT)"}` + "\n"},
	} {
		if status, body := call(t, srv, tc.method, tc.path, tc.body); status != tc.status || body != tc.want {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, status, body, tc.status, tc.want)
		}
	}
}

func TestBadNamesAreRefused(t *testing.T) {
	srv := sdktest.NewServer(t, "agentinfo", &agentinfo{})
	for _, name := range []string{
		"..%2Fx", "..%2F..%2Fescape", "%2E%2E", "%2E", ".hidden", "a%20b", "a%5Cb", "%C3%A9t%C3%A9",
		strings.Repeat("n", 65),
	} {
		for _, method := range []string{"PUT", "GET"} {
			status, body := call(t, srv, method, "/agentinfo/notes/"+name, "x")
			if status != 400 || !strings.HasPrefix(body, "a note's name is") {
				t.Errorf("%s notes/%s = %d %q, want 400", method, name, status, body)
			}
		}
	}
}

// Notes land in <DataDir>/notes and nowhere else, whatever the name: the
// work and sandbox directories stay empty. (A plain "../escape" never even
// reaches the module: the host's ServeMux cleans the path first.)
func TestNotesStayUnderDataDir(t *testing.T) {
	srv := sdktest.NewServer(t, "agentinfo", &agentinfo{})
	for _, name := range []string{"a", "b.md", "..%2Fescape", "../escape", "..%2F..%2Fescape"} {
		call(t, srv, "PUT", "/agentinfo/notes/"+name, "note "+name)
	}
	var files []string
	for _, dir := range []string{srv.WorkDir, srv.SandboxDir, srv.DataDir} {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, path)
			}
			return err
		})
	}
	want := []string{filepath.Join(srv.DataDir, "notes", "a"), filepath.Join(srv.DataDir, "notes", "b.md")}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Errorf("files = %v, want %v", files, want)
	}
	if b, err := os.ReadFile(want[1]); err != nil || string(b) != "note b.md" {
		t.Errorf("%s = %q, %v", want[1], b, err)
	}
}
