// Package hosttest runs the real bin/modhost and module binaries in
// end-to-end tests: it builds them with -race, starts the host on a free
// loopback port with a fresh work_dir, waits for its "listening" line,
// talks HTTP to it and stops it (SIGTERM, then SIGKILL) when the test ends.
// A race report in the output of the host or a module fails the test.
package hosttest

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RaceEnv stops the race detector's one-second sleep at exit (it lets
// other goroutines report), which would otherwise add a second to every
// host and module stop. Races are still reported, and fail the test.
const RaceEnv = "GORACE=atexit_sleep_ms=0"

// Module is the import path of this repository's module.
const Module = "github.com/execmod/execmod"

// Binaries is the body of an end-to-end package's TestMain: it builds each
// package (a path below Module, e.g. "/host") with -race into a fresh
// temporary folder, as the named binary, calls run with that folder and
// removes the folder when run returns. It returns run's exit code, or 1
// (having said why) when a build fails:
//
//	func TestMain(m *testing.M) {
//		os.Exit(hosttest.Binaries(map[string]string{"modhost": "/host"}, func(dir string) int {
//			bins = dir
//			return m.Run()
//		}))
//	}
func Binaries(pkgs map[string]string, run func(dir string) int) int {
	dir, err := os.MkdirTemp("", "execmod-bins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	full := make(map[string]string, len(pkgs))
	for name, pkg := range pkgs {
		full[name] = Module + pkg
	}
	if err := Build(dir, full); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return run(dir)
}

// RemoteJSON is a modules.json loading the remote-execute binary at path,
// as org_execmod_RemoteExecution, with params as key, value pairs.
func RemoteJSON(path string, params ...string) string {
	var ps []string
	for i := 0; i+1 < len(params); i += 2 {
		ps = append(ps, fmt.Sprintf(`{"key":%q,"value":%q}`, params[i], params[i+1]))
	}
	return fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":"org_execmod_RemoteExecution","parameters":[%s]}]}]}`,
		path, strings.Join(ps, ","))
}

// Build builds each package (an import path) into dir with -race, as the
// named binary. It is meant for TestMain (see Binaries).
func Build(dir string, pkgs map[string]string) error {
	for name, pkg := range pkgs {
		cmd := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, name), pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", pkg, err)
		}
	}
	return nil
}

// Host is a running bin/modhost.
type Host struct {
	T       *testing.T
	Cmd     *exec.Cmd
	URL     string // http://127.0.0.1:port
	WorkDir string
	Logs    *LogWatch     // the host's stderr, line by line
	Exited  chan struct{} // closed once the host has exited and been reaped
}

// Start starts the modhost binary on a free loopback port with a fresh
// work_dir unless args give one and waits for its "listening" line.
// It is stopped with SIGTERM at cleanup.
func Start(t *testing.T, modhost string, env []string, args ...string) *Host {
	t.Helper()
	work := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--work_dir="); ok {
			work = v
		}
	}
	if work == "" {
		work = ShortTemp(t)
		args = append([]string{"--work_dir=" + work}, args...)
	}
	h := Launch(t, modhost, env, append([]string{"--port=0"}, args...)...)
	h.WorkDir = work
	line, err := h.Logs.Wait(regexp.MustCompile(`listening: addr=(\S+)`), h.Exited)
	if err != nil {
		t.Fatalf("host did not start: %v\n%s", err, h.Logs)
	}
	h.URL = "http://" + line[1]
	return h
}

// Launch starts the modhost binary with exactly args and does not wait
// for it to listen. The host is stopped at cleanup, and killed if the test
// binary dies first.
func Launch(t *testing.T, modhost string, env []string, args ...string) *Host {
	t.Helper()
	cmd := exec.Command(modhost, args...)
	cmd.Env = append(append(os.Environ(), RaceEnv), env...)
	// The host dies with the test binary even when cleanup never runs (a
	// test timeout panics past it); its modules die with the host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &Host{T: t, Cmd: cmd, Logs: newLogWatch(t), Exited: make(chan struct{})}
	go func() {
		h.Logs.consume(stderr)
		_ = cmd.Wait()
		close(h.Exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.Exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-h.Exited
			t.Errorf("host did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("host log:\n%s", h.Logs)
		}
	})
	return h
}

// Run runs the modhost binary to completion (for start-up failures) and
// returns its exit code and stderr.
func Run(t *testing.T, modhost string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, modhost, args...)
	var out strings.Builder
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), RaceEnv)
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

// Get is Do for GET.
func (h *Host) Get(path string) (int, string) {
	h.T.Helper()
	return h.Do("GET", path, nil)
}

// Do sends a request to the host and returns the status and body.
func (h *Host) Do(method, path string, body io.Reader) (int, string) {
	h.T.Helper()
	resp, b := h.Request(method, path, body)
	return resp.StatusCode, b
}

// requestGuard bounds one request of Do or Request: a guard against a
// hang, so that a broken host fails its test instead of the whole run.
const requestGuard = 2 * time.Minute

// Request is Do with the whole response (its body already read).
func (h *Host) Request(method, path string, body io.Reader) (*http.Response, string) {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(h.T.Context(), requestGuard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.URL+path, body)
	if err != nil {
		h.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.T.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, string(b)
}

// LogWatch collects a process's log lines and lets a test wait for one.
type LogWatch struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced on every new line
	done  bool
}

func newLogWatch(t *testing.T) *LogWatch { return &LogWatch{t: t, added: make(chan struct{})} }

func (l *LogWatch) consume(r io.Reader) {
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
	l.mu.Unlock()
}

// Wait waits for a line matching re and returns its submatches.
func (l *LogWatch) Wait(re *regexp.Regexp, exited <-chan struct{}) ([]string, error) {
	return l.WaitFrom(0, re, exited)
}

// WaitFrom is Wait for lines from index from on (see Len).
func (l *LogWatch) WaitFrom(from int, re *regexp.Regexp, exited <-chan struct{}) ([]string, error) {
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

// Len is the number of lines so far.
func (l *LogWatch) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *LogWatch) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// WaitGone waits (on a pidfd, without polling) until pid has exited; it
// fails the test after 30 s.
func WaitGone(t *testing.T, pid int, what string) {
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

// ShortTemp is a temporary directory with a short path: unix socket paths
// under work_dir must stay below 108 bytes whatever the test's name.
func ShortTemp(t *testing.T) string {
	dir, err := os.MkdirTemp("", "mh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// gateGuard bounds how long a release waits for the command to open its
// FIFO: a guard against a hang, not a delay.
const gateGuard = time.Minute

// Gate makes a FIFO at path (a fresh one when path is "") for a command to
// block on by reading it, and returns its path and release, which lets
// the command go on: release opens the FIFO for writing, waiting for the
// command to have opened it (at most a minute, then the test fails
// instead of hanging) and closes it, so that the command reads end of
// file. release is safe to
// call twice; at cleanup it runs without waiting, so a test that failed
// before its command opened the FIFO is not held up.
func Gate(t *testing.T, path string) (string, func()) {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "gate")
	}
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	open := func(flags int) error {
		f, err := os.OpenFile(path, os.O_WRONLY|flags, 0)
		if err == nil {
			f.Close() // the command reads end of file and goes on
		}
		return err
	}
	release := func() {
		t.Helper()
		once.Do(func() {
			opened := make(chan error, 1)
			go func() { opened <- open(0) }()
			select {
			case err := <-opened:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(gateGuard):
				// Open the read end ourselves so that the writer's open returns.
				if r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					<-opened
					r.Close()
				}
				t.Fatalf("no command opened %s within %s", path, gateGuard)
			}
		})
	}
	t.Cleanup(func() {
		once.Do(func() { _ = open(syscall.O_NONBLOCK) }) // ENXIO: nobody reads it; nothing to release
	})
	return path, release
}

// Tmpfs mounts a tmpfs of size bytes on a fresh short directory (fit for
// a work_dir) and unmounts it when the test ends; mount it before starting
// a host on it, so that the host has stopped by then. Mounting needs
// root: elsewhere the test is skipped, saying so.
func Tmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := ShortTemp(t)
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a small tmpfs, to fill it, needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs to fill (%v)", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the test's tmpfs: %v", err)
		}
	})
	return dir
}

// FillDisk fills the file system of dir with dir/.filler until ENOSPC;
// free (also run at cleanup; safe twice) removes it again.
func FillDisk(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, ".filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for err == nil {
		_, err = f.Write(buf)
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v", dir, err)
	}
	freed := false
	free = func() {
		if !freed {
			freed = true
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(free)
	return free
}

// Decode decodes a JSON object or fails the test.
func Decode(t *testing.T, body string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, body)
	}
	return v
}
