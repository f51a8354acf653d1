package pythonecho_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/execmod/execmod/internal/hosttest"
)

// debianPackages are what module.py and gen.sh need from Debian for the
// interpreter named in module.py's first line.
const debianPackages = "python3-grpcio python3-grpc-tools python3-cryptography python3-protobuf"

// requireEnv=1 turns the skip for missing packages into a failure.
const requireEnv = "EXECMOD_REQUIRE_PYTHON"

// python returns the interpreter module.py's #! line names, or skips the
// test when it lacks the packages module.py and gen.sh import.
func python(t *testing.T, script string) string {
	t.Helper()
	f, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	interp, ok := strings.CutPrefix(strings.TrimSpace(line), "#!")
	if !ok || strings.ContainsAny(interp, " \t") {
		t.Fatalf("module.py's first line %q should be #! and an interpreter path", line)
	}
	out, err := exec.Command(interp, "-c", "import grpc, grpc_tools, cryptography, google.protobuf").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		skip := t.Skipf
		if os.Getenv(requireEnv) == "1" {
			skip = t.Fatalf // make test-python: a skip would hide that nothing ran
		}
		skip("skipping the Python module: %s cannot import what it needs (%v: %s); "+
			"install Debian's %s (make test-python does)", interp, err, lines[len(lines)-1], debianPackages)
	}
	return interp
}

// moduleScript is the absolute path of module.py.
func moduleScript(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs("module.py")
	if err != nil {
		t.Fatal(err)
	}
	return script
}

// setup generates the stubs with gen.sh and builds the host with -race.
func setup(t *testing.T) (script, modhost string) {
	t.Helper()
	script = moduleScript(t)
	interp := python(t, script)
	gen := exec.Command(filepath.Join(filepath.Dir(script), "gen.sh"))
	gen.Env = append(os.Environ(), "PYTHON="+interp)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, out)
	}
	bin := t.TempDir()
	if err := hosttest.Build(bin, map[string]string{"modhost": "github.com/execmod/execmod/host"}); err != nil {
		t.Fatal(err)
	}
	return script, filepath.Join(bin, "modhost")
}

// The module under the real host, loaded from its own modules.json as
// the README runs it (its "file", ./module.py, resolves next to it).
func TestPythonEchoUnderTheHost(t *testing.T) {
	_, modhost := setup(t)
	desc, err := filepath.Abs("modules.json")
	if err != nil {
		t.Fatal(err)
	}
	h := hosttest.Start(t, modhost, nil, "--modules=file://"+desc)

	// Logged before "listening", for which Start waited.
	if !regexp.MustCompile(`route: GET\s+/echo/hello/\{name\}\s+org_execmod_PythonEcho`).MatchString(h.Logs.String()) {
		t.Errorf("the route table lacks GET /echo/hello/{name}:\n%s", h.Logs)
	}
	// The module's own hclog JSON line, re-logged under its name.
	if _, err := h.Logs.Wait(regexp.MustCompile(`org_execmod_PythonEcho: python echo module ready: .*prefix="Hello from Python, "`), h.Exited); err != nil {
		t.Errorf("the module's log line: %v", err)
	}

	for _, tc := range []struct{ path, body string }{
		{"/echo/hello/world", "Hello from Python, world\n"},
		{"/echo/hello/a%2Fb", "Hello from Python, a/b\n"}, // one escaped segment, as Go's ServeMux
	} {
		if code, body := h.Get(tc.path); code != 200 || body != tc.body {
			t.Errorf("GET %s = %d %q, want 200 %q", tc.path, code, body, tc.body)
		}
	}
	for _, path := range []string{"/echo/nope", "/echo/hello/a/b"} {
		if code, body := h.Get(path); code != 404 {
			t.Errorf("GET %s = %d %q, want 404", path, code, body)
		}
	}

	// 1 MiB of random bytes, streamed through the module in 32 KiB parts.
	want := make([]byte, 1<<20)
	_, _ = rand.Read(want)
	req, err := http.NewRequestWithContext(t.Context(), "POST", h.URL+"/echo/", bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-execmod-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Errorf("POST /echo/ with 1 MiB = %d, %d bytes back, equal: %v", resp.StatusCode, len(got), bytes.Equal(got, want))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-execmod-test" {
		t.Errorf("POST /echo/ answered Content-Type %q, want the request's", ct)
	}

	// The Metrics RPC, prefixed by the host.
	_, body := h.Get("/metrics/snapshot")
	if n, _ := hosttest.Decode(t, body)["echo/echoed_bytes"].(float64); n < 1<<20 {
		t.Errorf("echo/echoed_bytes = %v, want at least 1 MiB: %s", n, body)
	}

	_, body = h.Get("/state")
	var state struct {
		Modules []struct {
			ID  string `json:"id"`
			Pid int    `json:"pid"`
		} `json:"modules"`
	}
	if err := json.Unmarshal([]byte(body), &state); err != nil || len(state.Modules) != 1 || state.Modules[0].Pid == 0 {
		t.Fatalf("/state modules: %v %s", err, body)
	}
	pid := state.Modules[0].Pid

	// Stopping the host stops the module through GRPCController.Shutdown,
	// without go-plugin's two-second wait and kill.
	if err := h.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-h.Exited
	hosttest.WaitGone(t, pid, "the Python module")
	if strings.Contains(h.Logs.String(), "plugin failed to exit gracefully") {
		t.Errorf("the module did not exit on Shutdown; the host killed it:\n%s", h.Logs)
	}
}

// Run by hand, or by a host of another protocol version, the module
// explains itself and exits 1, as Go modules do.
func TestPythonEchoRefusesToRunAlone(t *testing.T) {
	// The checks come before any import: no stubs needed.
	script := moduleScript(t)
	python(t, script)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"no cookie", nil, "the host starts it, you do not"},
		{"other protocol version", []string{"EXECMOD_MODULE_COOKIE=2f1b8c0e6d0a4c7b9e5f3a1d8c6b4e2f", "PLUGIN_PROTOCOL_VERSIONS=2,3"},
			"speaks execmod plugin protocol version 1, the host only 2,3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(script)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			if !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
				t.Errorf("stdout %q, stderr %q; want nothing on stdout and %q on stderr", &stdout, &stderr, tc.want)
			}
		})
	}
}
