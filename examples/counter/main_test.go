package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/execmod/execmod/sdk"
	"github.com/execmod/execmod/sdk/sdktest"
)

func call(t *testing.T, srv *sdktest.Server, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	resp, err := srv.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestRoutes(t *testing.T) {
	c := &counter{}
	srv := sdktest.NewServer(t, "counter", c)
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/counter/", 200, "0\n"},
		{"POST", "/counter/hit", 200, "1\n"},
		{"POST", "/counter/hit", 200, "2\n"},
		{"GET", "/counter/", 200, "2\n"},
		{"GET", "/counter/hit", 405, `{"error":"method GET is not allowed on /counter/hit (allowed: POST)"}` + "\n"},
		{"GET", "/counter/other", 404, `{"error":"no route for GET /counter/other (GET /help lists them)"}` + "\n"},
	} {
		if status, body := call(t, srv, tc.method, tc.path); status != tc.status || body != tc.body {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, status, body, tc.status, tc.body)
		}
	}
	if got := c.Metrics(); len(got) != 1 || got["hits"] != 2 {
		t.Errorf("Metrics() = %v, want map[hits:2]", got)
	}
}

// The count is saved by Close and loaded by the next Provision on the same
// DataDir: each subtest's server is stopped (and Close run) when it ends.
func TestCountSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	t.Run("first run", func(t *testing.T) {
		srv := sdktest.NewServer(t, "counter", &counter{}, sdktest.DataDir(dir))
		for range 3 {
			call(t, srv, "POST", "/counter/hit")
		}
	})
	b, err := os.ReadFile(filepath.Join(dir, "count"))
	if err != nil || string(b) != "3\n" {
		t.Fatalf("count file = %q, %v; want \"3\\n\"", b, err)
	}
	t.Run("second run", func(t *testing.T) {
		srv := sdktest.NewServer(t, "counter", &counter{}, sdktest.DataDir(dir))
		if status, body := call(t, srv, "POST", "/counter/hit"); status != 200 || body != "4\n" {
			t.Errorf("POST /counter/hit = %d %q, want 200 \"4\\n\"", status, body)
		}
	})
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("DataDir holds %d files, want only count", len(entries))
	}
}

func TestBadCountFileStopsStart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "count"), []byte("many\n"), 0o600)
	err := (&counter{}).Provision(t.Context(), sdk.Env{DataDir: dir})
	if err == nil {
		t.Fatal("Provision succeeded on a count file that holds no number")
	}
}
