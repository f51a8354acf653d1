package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/execmod/execmod/internal/wire"
)

// bins holds the binaries TestMain builds: modhost, testmodule, hello.
var bins string

func TestMain(m *testing.M) {
	if exe := os.Getenv("EXECMOD_TEST_ORPHAN"); exe != "" {
		os.Exit(orphan(exe))
	}
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "execmod-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		for name, pkg := range map[string]string{"modhost": ".", "testmodule": "./internal/testmodule", "hello": "../examples/hello"} {
			cmd := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, name), pkg)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
				return 1
			}
		}
		bins = dir
		return m.Run()
	}())
}

// raceEnv stops the race detector's one-second sleep at exit (it lets
// other goroutines report), which would otherwise add a second to every
// host and module stop. Races are still reported, and fail the test.
const raceEnv = "GORACE=atexit_sleep_ms=0"

// orphan is the test binary impersonating a host that dies without
// killing its module: it starts the module as a host would (but without
// Pdeathsig), waits for the go-plugin handshake line, prints the module's
// pid and exits.
func orphan(exe string) int {
	cmd := exec.Command(exe)
	cmd.Env = []string{wire.Handshake.MagicCookieKey + "=" + wire.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=" + strconv.Itoa(wire.ProtocolVersion), raceEnv}
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err == nil {
		_, err = bufio.NewReader(out).ReadString('\n')
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orphan:", err)
		return 1
	}
	fmt.Println(cmd.Process.Pid)
	return 0
}

// host is a running bin/modhost.
type host struct {
	t       *testing.T
	cmd     *exec.Cmd
	URL     string
	WorkDir string
	logs    *logWatch
	exited  chan struct{}
}

// startHost starts bin/modhost on a free loopback port with a fresh
// work_dir and waits for its "listening" line. It is stopped with SIGTERM
// at cleanup.
func startHost(t *testing.T, env []string, args ...string) *host {
	t.Helper()
	work := shortTemp(t)
	h := launch(t, env, append([]string{"--port=0", "--work_dir=" + work}, args...)...)
	h.WorkDir = work
	line, err := h.logs.wait(regexp.MustCompile(`listening: addr=(\S+)`), h.exited)
	if err != nil {
		t.Fatalf("host did not start: %v\n%s", err, h.logs)
	}
	h.URL = "http://" + line[1]
	return h
}

func launch(t *testing.T, env []string, args ...string) *host {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, "modhost"), args...)
	cmd.Env = append(append(os.Environ(), raceEnv), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, cmd: cmd, logs: newLogWatch(t), exited: make(chan struct{})}
	go func() {
		h.logs.consume(stderr)
		_ = cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-h.exited
			t.Errorf("host did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("host log:\n%s", h.logs)
		}
	})
	return h
}

// runHost runs bin/modhost to completion (for start-up failures) and
// returns its exit code and stderr.
func runHost(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bins, "modhost"), args...)
	var out strings.Builder
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), raceEnv)
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

func (h *host) get(path string) (int, string) {
	h.t.Helper()
	return h.do("GET", path, nil)
}

func (h *host) do(method, path string, body io.Reader) (int, string) {
	h.t.Helper()
	resp, b := h.request(method, path, body)
	return resp.StatusCode, b
}

// request is do with the whole response (its body already read).
func (h *host) request(method, path string, body io.Reader) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, string(b)
}

// modulePid asks the test module for its pid.
func (h *host) modulePid() int {
	h.t.Helper()
	code, body := h.get("/testmod/pid")
	pid, err := strconv.Atoi(strings.TrimSpace(body))
	if code != 200 || err != nil {
		h.t.Fatalf("GET /testmod/pid = %d %q", code, body)
	}
	return pid
}

// logWatch collects a process's log lines and lets a test wait for one.
type logWatch struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced on every new line
	done  bool
}

func newLogWatch(t *testing.T) *logWatch { return &logWatch{t: t, added: make(chan struct{})} }

func (l *logWatch) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "WARNING: DATA RACE") {
			l.t.Errorf("the race detector reported a race in the host or a module (see the log)")
		}
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		close(l.added)
		l.added = make(chan struct{})
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.done = true
	close(l.added)
	l.added = make(chan struct{})
	l.mu.Unlock()
}

// wait returns the submatches of the first line (from the start of the
// log) that matches re, waiting for it until the process exits.
func (l *logWatch) wait(re *regexp.Regexp, exited <-chan struct{}) ([]string, error) {
	return l.waitFrom(0, re, exited)
}

func (l *logWatch) waitFrom(from int, re *regexp.Regexp, exited <-chan struct{}) ([]string, error) {
	seen := from
	for {
		l.mu.Lock()
		for ; seen < len(l.lines); seen++ {
			if m := re.FindStringSubmatch(l.lines[seen]); m != nil {
				l.mu.Unlock()
				return m, nil
			}
		}
		added, done := l.added, l.done
		l.mu.Unlock()
		if done {
			return nil, fmt.Errorf("log ended without a line matching %q", re)
		}
		select {
		case <-added:
		case <-time.After(60 * time.Second):
			return nil, fmt.Errorf("no line matching %q within 60s", re)
		}
	}
}

func (l *logWatch) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *logWatch) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitGone waits until pid has exited (or is a zombie), without polling:
// a pidfd becomes readable when its process exits.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 30_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd: %v", err)
		}
		if n == 0 {
			t.Fatalf("%s (pid %d) still running 30s later", what, pid)
		}
		return
	}
}

// shortTemp is a temporary directory with a short path: unix socket paths
// under work_dir must stay below 108 bytes whatever the test's name.
func shortTemp(t *testing.T) string {
	dir, err := os.MkdirTemp("", "mh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// descriptor writes a modules.json naming the given executables as
// name=path pairs, each with params, and returns its path.
func descriptorFile(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "modules.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testmodJSON(name string, params ...string) string {
	var ps []string
	for i := 0; i+1 < len(params); i += 2 {
		ps = append(ps, fmt.Sprintf(`{"key":%q,"value":%q}`, params[i], params[i+1]))
	}
	return fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":%q,"parameters":[%s]}]}]}`,
		filepath.Join(bins, "testmodule"), name, strings.Join(ps, ","))
}

func decode(t *testing.T, body string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, body)
	}
	return v
}
