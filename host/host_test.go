package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/execmod/execmod/internal/hosttest"
)

func TestLoadFromFileAndProvision(t *testing.T) {
	dir := t.TempDir()
	desc := descriptorFile(t, dir, testmodJSON("org_execmod_Test", "id", "first", "empty", ""))
	sandbox := t.TempDir()
	h := startHost(t, []string{"EXECMOD_TEST_SECRET=hunter2", "MESOS_HOSTNAME=agent-7"},
		"--modules=file://"+desc, "--sandbox_directory="+sandbox)

	// The module's logs (its slog Logger and the standard log package)
	// are in the host's log under the module's name, at their level.
	for _, re := range []string{
		`\[INFO\]  modhost\.org_execmod_Test: provisioned: work_dir=/`,
		`\[INFO\]  modhost\.org_execmod_Test: provisioned with \d+ flags`,
	} {
		if _, err := h.Logs.Wait(regexp.MustCompile(re), h.Exited); err != nil {
			t.Errorf("module log line %s: %v", re, err)
		}
	}

	code, body := h.Get("/testmod/env?x=1")
	if code != 200 {
		t.Fatalf("GET /testmod/env = %d %s", code, body)
	}
	env := hosttest.Decode(t, body)
	flags := env["flags"].(map[string]any)
	workDir := flags["work_dir"].(string)
	for name, want := range map[string]string{"sandbox_directory": sandbox, "hostname": "agent-7", "port": "0", "ip": "127.0.0.1"} {
		if flags[name] != want {
			t.Errorf("flag %s = %v, want %q", name, flags[name], want)
		}
	}
	if env["work_dir"] != workDir || env["sandbox_dir"] != sandbox {
		t.Errorf("Env.WorkDir/SandboxDir = %v/%v, want %s/%s", env["work_dir"], env["sandbox_dir"], workDir, sandbox)
	}
	if want := filepath.Join(workDir, "modules", "org_execmod_Test"); env["data_dir"] != want {
		t.Errorf("data_dir = %v, want %s", env["data_dir"], want)
	}
	if fi, err := os.Stat(env["data_dir"].(string)); err != nil || !fi.IsDir() {
		t.Errorf("data dir not created: %v", err)
	}
	params := env["params"].(map[string]any)
	if params["id"] != "first" || params["empty"] != "" || env["name"] != "org_execmod_Test" {
		t.Errorf("params/name = %v %v", params, env["name"])
	}
	if env["path"] != "/env" || env["query"] != "x=1" {
		t.Errorf("module saw path %v query %v, want /env x=1", env["path"], env["query"])
	}
	environ := map[string]string{}
	for _, kv := range env["environ"].([]any) {
		if s := kv.(string); strings.Contains(s, "hunter2") || strings.HasPrefix(s, "MESOS_") {
			t.Errorf("host environment leaked into the module: %s", s)
		}
		k, v, _ := strings.Cut(kv.(string), "=")
		environ[k] = v
	}
	// AutoMTLS: go-plugin hands the module the host's client certificate;
	// the module's socket is in the host's folder for it, not in $TMPDIR.
	if !strings.Contains(environ["PLUGIN_CLIENT_CERT"], "BEGIN CERTIFICATE") {
		t.Errorf("no AutoMTLS client certificate in the module's environment")
	}
	if want := filepath.Join(workDir, "sock", "0"); environ["PLUGIN_UNIX_SOCKET_DIR"] != want {
		t.Errorf("PLUGIN_UNIX_SOCKET_DIR = %q, want %s", environ["PLUGIN_UNIX_SOCKET_DIR"], want)
	}
	// What the module prints to stdout and stderr after the handshake is
	// in the host's log under its name, not lost.
	from := h.Logs.Len()
	if code, body := h.Do("POST", "/testmod/print", nil); code != 200 {
		t.Fatalf("POST /testmod/print = %d %s", code, body)
	}
	for _, re := range []string{`modhost\.org_execmod_Test.*plain stdout line from the module`, `modhost\.org_execmod_Test.*plain stderr line from the module`} {
		if _, err := h.Logs.WaitFrom(from, regexp.MustCompile(re), h.Exited); err != nil {
			t.Errorf("module output in the host's log: %v", err)
		}
	}
}

func TestLoadInlineAndModulesDir(t *testing.T) {
	t.Run("inline", func(t *testing.T) {
		h := startHost(t, nil, "--modules="+testmodJSON("inline_mod"))
		if code, body := h.Get("/testmod/pid"); code != 200 {
			t.Fatalf("GET /testmod/pid = %d %s", code, body)
		}
	})
	t.Run("modules_dir", func(t *testing.T) {
		dir := t.TempDir()
		// Relative "file" paths resolve against each descriptor's directory.
		rel, err := filepath.Rel(dir, filepath.Join(bins, "hello"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "10-hello.json"), fmt.Appendf(nil,
			`{"libraries":[{"file":%q,"modules":[{"name":"org_execmod_Hello","parameters":[{"key":"greeting","value":"Hi"}]}]}]}`, rel), 0o644)
		os.WriteFile(filepath.Join(dir, "20-test.json"), []byte(testmodJSON("dir_mod")), 0o644)
		h := startHost(t, nil, "--modules_dir="+dir)
		if code, body := h.Get("/hello/dir"); code != 200 || body != "Hi, dir!\n" {
			t.Errorf("GET /hello/dir = %d %q", code, body)
		}
		if code, _ := h.Get("/testmod/pid"); code != 200 {
			t.Errorf("GET /testmod/pid = %d", code)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	two := fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":"a"},{"name":"b"}]}]}`, filepath.Join(bins, "testmodule"))
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown key", []string{`--modules={"libraries":[{"fiel":"x","modules":[]}]}`},
			[]string{"Error loading modules:", `unknown key "fiel"`}},
		{"missing file", []string{`--modules={"libraries":[{"file":"/nonexistent/mod","modules":[{"name":"m"}]}]}`},
			[]string{"Error loading modules:", "/nonexistent/mod"}},
		{"provision fails", []string{"--modules=" + testmodJSON("bad", "fail", "parameter 'x' must be a number")},
			[]string{"Error loading modules:", "parameter 'x' must be a number"}},
		{"route conflict", []string{"--modules=" + two},
			[]string{"Error loading modules:", "both mount /testmod/", "a (", "b (", "give one of them another id"}},
		{"both modules flags", []string{"--modules={}", "--modules_dir=" + dir},
			[]string{"--modules", "--modules_dir"}},
		{"unknown flag", []string{"--prot=1"},
			[]string{"unknown flag --prot", "modhost --help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runHost(t, append([]string{"--port=0", "--work_dir=" + hosttest.ShortTemp(t)}, tc.args...)...)
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestHelpFlag(t *testing.T) {
	code, _ := runHost(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit code %d", code)
	}
}

func TestServerSentEventsStreamThrough(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("sse"))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a guard against a hang
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.URL+"/testmod/sse?n=3", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	for i := 1; i <= 3; i++ {
		if i > 1 {
			// The module sends event i only after this release: reading
			// event i-1 first proves it was not held back in a buffer.
			if code, body := h.Do("POST", "/testmod/sse/release", nil); code != 200 {
				t.Fatalf("release = %d %s", code, body)
			}
		}
		line, err := r.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
			t.Fatalf("event %d: %q, %v", i, line, err)
		}
		if blank, _ := r.ReadString('\n'); blank != "\n" {
			t.Fatalf("event %d not terminated: %q", i, blank)
		}
	}
}

func TestRequestBodies(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("bodies"), "--max_request_body=1MB")
	t.Run("streamed upload under the limit", func(t *testing.T) {
		data := bytes.Repeat([]byte("0123456789abcdef"), 60_000) // 960,000 bytes, many chunks
		sum := sha256.Sum256(data)
		code, body := h.Do("POST", "/testmod/sha256", bytes.NewReader(data))
		if want := fmt.Sprintf("%s %d\n", hex.EncodeToString(sum[:]), len(data)); code != 200 || body != want {
			t.Errorf("= %d %q, want 200 %q", code, body, want)
		}
	})
	t.Run("100 MiB with Content-Length", func(t *testing.T) {
		const size = 100 << 20
		req, _ := http.NewRequestWithContext(t.Context(), "POST", h.URL+"/testmod/sha256", io.LimitReader(zeros{}, size))
		req.ContentLength = size
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(body), "request body too large") {
			t.Errorf("= %d %s, want 413", resp.StatusCode, body)
		}
	})
	t.Run("chunked over the limit", func(t *testing.T) {
		// No Content-Length: the limit is found mid-stream.
		req, _ := http.NewRequestWithContext(t.Context(), "POST", h.URL+"/testmod/sha256", io.NopCloser(io.LimitReader(zeros{}, 3<<20)))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("= %d %s, want 413", resp.StatusCode, body)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestHandlerPanicIs500AndModuleSurvives(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("panics"))
	pid := modulePid(h)
	code, body := h.Get("/testmod/panic")
	if code != 500 || !strings.Contains(body, "internal error") {
		t.Errorf("GET /testmod/panic = %d %q", code, body)
	}
	if _, err := h.Logs.Wait(regexp.MustCompile(`handler panic.*test panic`), h.Exited); err != nil {
		t.Error(err)
	}
	if again := modulePid(h); again != pid {
		t.Errorf("module restarted after a handler panic: pid %d -> %d", pid, again)
	}
}

func TestClientDisconnectCancelsHandler(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("cancel"))
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.URL+"/testmod/block", nil)
	resp, err := http.DefaultClient.Do(req) // returns once the handler flushed its head
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	if code, body := h.Get("/testmod/cancelled"); code != 200 || body != "cancelled 1\n" {
		t.Errorf("GET /testmod/cancelled = %d %q", code, body)
	}
}

func TestCrashRestartAndFailed(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("crashy"))
	for crash := 1; crash <= 5; crash++ {
		pid := modulePid(h)
		from := h.Logs.Len()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		hosttest.WaitGone(t, pid, "killed module")
		if crash == 5 {
			break
		}
		re := regexp.MustCompile(`module serving: .*restarts=` + strconv.Itoa(crash) + `\b`)
		if _, err := h.Logs.WaitFrom(from, re, h.Exited); err != nil {
			t.Fatalf("crash %d: %v", crash, err)
		}
		if again := modulePid(h); again == pid {
			t.Fatalf("crash %d: same pid %d after restart", crash, pid)
		}
	}
	if _, err := h.Logs.Wait(regexp.MustCompile(`module failed: not restarting`), h.Exited); err != nil {
		t.Fatal(err)
	}
	resp, body := h.Request("GET", "/testmod/pid", nil)
	if resp.StatusCode != 503 || !strings.Contains(hosttest.Decode(t, body)["error"].(string), "failed: it crashed 5 times") || resp.Header.Get("Retry-After") != "" {
		t.Errorf("GET on a failed module = %d %q (Retry-After %q), want 503 saying it failed, without Retry-After",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	code, body := h.Get("/state")
	mods := hosttest.Decode(t, body)["modules"].([]any)
	st := mods[0].(map[string]any)
	if code != 200 || st["state"] != "failed" || st["restarts"] != float64(4) {
		t.Errorf("/state module = %v", st)
	}
}

// A killed module's routes answer 503 with a JSON error while it is down,
// and serve again once it is back. The module's restart is held in
// Provision (see testmodule's gate_restarts) so that "down" is a state the
// test can observe, not a race.
func TestCrashedModuleAnswers503UntilRestarted(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("gated", "gate_restarts", "1"))
	_, release := hosttest.Gate(t, filepath.Join(h.WorkDir, "modules", "gated", "gate"))
	pid := modulePid(h)
	from := h.Logs.Len()
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Logs.WaitFrom(from, regexp.MustCompile(`module crashed; restarting`), h.Exited); err != nil {
		t.Fatal(err)
	}
	resp, body := h.Request("GET", "/testmod/pid", nil)
	if resp.StatusCode != 503 || !strings.Contains(hosttest.Decode(t, body)["error"].(string), "restarting") || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("GET while the module is down = %d %q (Retry-After %q), want 503 saying it restarts, with Retry-After: 1",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	code, body := h.Get("/state")
	if st := hosttest.Decode(t, body)["modules"].([]any)[0].(map[string]any); code != 200 || st["state"] != "restarting" {
		t.Errorf("/state while down: %v", st)
	}
	release() // lets the restart finish Provision
	if _, err := h.Logs.WaitFrom(from, regexp.MustCompile(`module serving: .*restarts=1\b`), h.Exited); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 to serving again: %v (including the test's own steps)", time.Since(killed))
	if again := modulePid(h); again == pid {
		t.Errorf("same pid %d after restart", pid)
	}
}

func TestHostSIGTERMStopsModulesAndTheirChildren(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("term"))
	pid := modulePid(h)
	code, body := h.Do("POST", "/testmod/spawn", nil)
	child, err := strconv.Atoi(strings.TrimSpace(body))
	if code != 200 || err != nil {
		t.Fatalf("spawn = %d %q", code, body)
	}
	if err := h.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-h.Exited
	if ec := h.Cmd.ProcessState.ExitCode(); ec != 0 {
		t.Errorf("host exit code %d after SIGTERM, want 0", ec)
	}
	hosttest.WaitGone(t, pid, "module")
	hosttest.WaitGone(t, child, "module's child")
	if b, err := os.ReadFile(filepath.Join(h.WorkDir, "modules", "term", "closed")); err != nil || string(b) != "closed\n" {
		t.Errorf("the module's io.Closer did not run at shutdown: %q %v", b, err)
	}
}

// A module whose host is gone exits by itself, even without the Pdeathsig
// the host sets: the SDK watches its parent.
func TestModuleExitsWhenOrphaned(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), hosttest.RaceEnv, "EXECMOD_TEST_ORPHAN="+filepath.Join(bins, "testmodule"),
		"EXECMOD_TEST_ORPHAN_SOCKETS="+t.TempDir())
	out, err := cmd.Output()
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || perr != nil {
		t.Fatalf("starting an orphaned module: %v %q", err, out)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	hosttest.WaitGone(t, pid, "orphaned module")
}

func TestHostSIGKILLTakesModulesDown(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("kill"))
	pid := modulePid(h)
	if err := h.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.Exited
	hosttest.WaitGone(t, pid, "module of a SIGKILLed host")
}

// SIGTERM while a crashed module's restart is held in Provision: the host
// stops at once instead of waiting out --module_start_timeout, and the
// half-started module is gone.
func TestStopDuringRestart(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("stuck", "gate_restarts", "1"), "--module_start_timeout=10mins")
	hosttest.Gate(t, filepath.Join(h.WorkDir, "modules", "stuck", "gate")) // never released: the restart stays stuck
	pid := modulePid(h)
	from := h.Logs.Len()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m, err := h.Logs.WaitFrom(from, regexp.MustCompile(`waiting at the gate: pid=(\d+)`), h.Exited)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := strconv.Atoi(m[1])
	if err := h.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Exited:
	case <-time.After(time.Minute): // a guard: without the fix it waits 10 minutes
		t.Fatal("the host is still running a minute after SIGTERM: it waits for the stuck restart")
	}
	if ec := h.Cmd.ProcessState.ExitCode(); ec != 0 {
		t.Errorf("host exit code %d, want 0", ec)
	}
	hosttest.WaitGone(t, next, "module stuck in its restart")
}

// SIGTERM lets a request in flight finish (here an upload the client is
// still sending), and cuts one that outlives --drain_timeout.
func TestHostSIGTERMDrainsInFlight(t *testing.T) {
	t.Run("finishes", func(t *testing.T) {
		h := startHost(t, nil, "--modules="+testmodJSON("drain"))
		pr, pw := io.Pipe()
		req, _ := http.NewRequestWithContext(t.Context(), "POST", h.URL+"/testmod/sha256", pr)
		type result struct {
			code int
			body string
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- result{resp.StatusCode, string(b), err}
		}()
		if _, err := pw.Write([]byte("first half, ")); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Logs.Wait(regexp.MustCompile(`sha256: request started`), h.Exited); err != nil {
			t.Fatal(err)
		}
		if err := h.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Logs.Wait(regexp.MustCompile(`shutting down`), h.Exited); err != nil {
			t.Fatal(err)
		}
		if _, err := pw.Write([]byte("second half")); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		sum := sha256.Sum256([]byte("first half, second half"))
		if r := <-done; r.err != nil || r.code != 200 || r.body != fmt.Sprintf("%s 23\n", hex.EncodeToString(sum[:])) {
			t.Errorf("the request in flight during shutdown = %d %q %v, want 200 with the whole body's digest", r.code, r.body, r.err)
		}
		<-h.Exited
		if ec := h.Cmd.ProcessState.ExitCode(); ec != 0 {
			t.Errorf("host exit code %d, want 0", ec)
		}
	})
	t.Run("cut at the drain timeout", func(t *testing.T) {
		h := startHost(t, nil, "--modules="+testmodJSON("drain"), "--drain_timeout=1secs")
		req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/testmod/block", nil)
		resp, err := http.DefaultClient.Do(req) // the handler has flushed its head and blocks
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := h.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Error("a request cut by the drain timeout read as complete")
		}
		<-h.Exited
		if ec := h.Cmd.ProcessState.ExitCode(); ec != 0 {
			t.Errorf("host exit code %d, want 0", ec)
		}
		if _, err := h.Logs.Wait(regexp.MustCompile(`requests still in flight after the drain timeout`), h.Exited); err != nil {
			t.Error(err)
		}
	})
}

// A request no route takes is answered in JSON like every other error,
// under a module's mount point as elsewhere; 405 keeps its Allow.
func TestUnmatchedRequestsAreJSON(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("unmatched"))
	for _, c := range []struct {
		method, path, allow, body string
		status                    int
	}{
		{"POST", "/testmod/env", "GET, HEAD", `{"error":"method POST is not allowed on /testmod/env (allowed: GET, HEAD)"}` + "\n", 405},
		{"GET", "/testmod/nothing", "", `{"error":"no route for GET /testmod/nothing (GET /help lists them)"}` + "\n", 404},
		{"DELETE", "/health", "GET, HEAD", `{"error":"method DELETE is not allowed on /health (allowed: GET, HEAD)"}` + "\n", 405},
	} {
		resp, body := h.Request(c.method, c.path, nil)
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Allow") != c.allow || body != c.body {
			t.Errorf("%s %s = %d %q Allow %q %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Allow"), body)
		}
	}
}

func TestAgentEndpointsAndHelp(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"))
	if code, body := h.Get("/health"); code != 200 || body != "" {
		t.Errorf("/health = %d %q", code, body)
	}
	code, body := h.Get("/flags")
	flags := hosttest.Decode(t, body)["flags"].(map[string]any)
	if code != 200 || flags["port"] != "0" || flags["work_dir"] == "" {
		t.Errorf("/flags = %d %v", code, flags)
	}
	code, body = h.Get("/version")
	if code != 200 || hosttest.Decode(t, body)["version"] == "" {
		t.Errorf("/version = %d %s", code, body)
	}

	req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/help/testmod/env", nil)
	req.Header.Set("User-Agent", "curl/8.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "### USAGE ###\n>        /testmod/env\n\n### TL;DR; ###\nReports the module's configuration.\n"
	if resp.StatusCode != 200 || !strings.HasPrefix(string(md), want) {
		t.Errorf("/help/testmod/env = %d\n%s\nwant prefix\n%s", resp.StatusCode, md, want)
	}
	routes := regexp.MustCompile(`route: (\S+)\s+(\S+)`)
	var table []string
	for _, line := range strings.Split(h.Logs.String(), "\n") {
		if m := routes.FindStringSubmatch(line); m != nil {
			table = append(table, m[1]+" "+m[2])
		}
	}
	for _, want := range []string{"GET /health", "GET /testmod/env", "POST /testmod/sha256"} {
		if !slices.Contains(table, want) {
			t.Errorf("route table logged at start lacks %q: %v", want, table)
		}
	}
}

// A module run by hand in debug mode (as under a debugger) prints a line
// that the host accepts with --reattach; the host serves it and leaves
// its process alone.
func TestReattachToDebugModule(t *testing.T) {
	cmd := exec.Command(filepath.Join(bins, "testmodule"))
	cmd.Env = append(os.Environ(), "EXECMOD_MODULE_DEBUG=1", hosttest.RaceEnv)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stderr)
	line := ""
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), "--reattach='"); ok {
			line = strings.TrimSuffix(after, "'")
			break
		}
	}
	if line == "" {
		t.Fatal("the debug module printed no --reattach line")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	h := startHost(t, nil, "--reattach="+line)
	if pid := modulePid(h); pid != cmd.Process.Pid {
		t.Errorf("served by pid %d, want the debug process %d", pid, cmd.Process.Pid)
	}
	if err := h.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-h.Exited
	// Still there, and still serving: a second host attaches to it.
	h2 := startHost(t, nil, "--reattach="+line)
	if pid := modulePid(h2); pid != cmd.Process.Pid {
		t.Errorf("second host served by pid %d, want the debug process %d", pid, cmd.Process.Pid)
	}
}

// The mistakes a first-time module author makes get messages that say
// what happened and what to do.
func TestAuthorMistakes(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	desc := func(file string) string {
		return fmt.Sprintf(`--modules={"libraries":[{"file":%q,"modules":[{"name":"m"}]}]}`, file)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"stdout before Serve", []string{desc(script("chatty", "echo starting up; exec "+filepath.Join(bins, "testmodule")))},
			[]string{"Error loading modules:", "printed to stdout before sdk.Serve", "log to stderr"}},
		{"protocol version", []string{desc(script("future", "echo '1|99|unix|/nonexistent/sock|grpc|'; exec sleep 60"))},
			[]string{"Error loading modules:", "plugin protocol version 1", "rebuild the module"}},
		{"not a module", []string{desc(script("plain", "exit 3"))},
			[]string{"Error loading modules:", "exited or closed stdout before the plugin handshake", "sdk.Serve"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runHost(t, append([]string{"--port=0", "--work_dir=" + hosttest.ShortTemp(t), "--module_start_timeout=20secs"}, tc.args...)...)
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}

	// A module that never answers the handshake is killed at
	// --module_start_timeout, with a message saying so.
	t.Run("start timeout", func(t *testing.T) {
		pidFile := filepath.Join(dir, "slow.pid")
		code, stderr := runHost(t, "--port=0", "--work_dir="+hosttest.ShortTemp(t), "--module_start_timeout=1secs",
			desc(script("slow", "echo $$ > "+pidFile+"; exec sleep 300")))
		for _, w := range []string{"Error loading modules:", "did not complete the plugin handshake within 1s (--module_start_timeout)", "sdk.Serve"} {
			if code != 1 || !strings.Contains(stderr, w) {
				t.Errorf("exit %d, stderr lacks %q:\n%s", code, w, stderr)
			}
		}
		b, err := os.ReadFile(pidFile)
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil {
			t.Fatalf("the slow module's pid: %v %v", err, perr)
		}
		hosttest.WaitGone(t, pid, "module killed at its start timeout")
	})

	// Run by hand, a module says it is one and how to run it.
	cmd := exec.Command(filepath.Join(bins, "testmodule"))
	cmd.Env = []string{hosttest.RaceEnv}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), "is an execmod module") || !strings.Contains(string(out), "modhost --work_dir") {
		t.Errorf("a module run by hand: %v\n%s", err, out)
	}
}
