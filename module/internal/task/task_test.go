package task

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		script   string
		code     int
		signaled bool
	}{
		{"exit 0", 0, false},
		{"exit 3", 3, false},
		{"exit 255", 255, false},
		{"kill -9 $$", 9, true},
		{"kill -TERM $$", 15, true},
	} {
		t.Run(c.script, func(t *testing.T) {
			t.Parallel()
			_, r := run(t, sh(t, c.script))
			if r.ExitCode != c.code || r.Signaled != c.signaled {
				t.Errorf("ExitCode %d Signaled %v, want %d %v", r.ExitCode, r.Signaled, c.code, c.signaled)
			}
			if c.signaled && r.Signal != syscall.Signal(c.code) {
				t.Errorf("Signal %v, want %d", r.Signal, c.code)
			}
			if !c.signaled && r.Signal != 0 {
				t.Errorf("Signal %v, want 0", r.Signal)
			}
			if r.TimedOut || r.Killed || r.KillEscalated || r.OutputCut {
				t.Errorf("unexpected flags: %+v", r)
			}
			if r.StartedAt.IsZero() || r.EndedAt.Before(r.StartedAt) {
				t.Errorf("StartedAt %v EndedAt %v", r.StartedAt, r.EndedAt)
			}
		})
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCaptureBinaryStdoutStderrStdin(t *testing.T) {
	t.Parallel()
	outData := randomBytes(300_000, 1)
	errData := randomBytes(200_000, 2)
	dir := t.TempDir()
	outFile := filepath.Join(dir, "out")
	if err := os.WriteFile(outFile, outData, 0o600); err != nil {
		t.Fatal(err)
	}
	s := sh(t, `cat "$0"; cat >&2`)
	s.Args = append(s.Args, outFile)
	s.Stdin = errData
	tk, r := run(t, s)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d", r.ExitCode)
	}
	if got := readAll(t, tk.Stdout()); !bytes.Equal(got, outData) {
		t.Errorf("stdout: %d bytes differ from the %d written", len(got), len(outData))
	}
	if got := readAll(t, tk.Stderr()); !bytes.Equal(got, errData) {
		t.Errorf("stderr (from stdin): %d bytes differ from the %d written", len(got), len(errData))
	}
	if info := tk.Stdout().Info(); info != (OutputInfo{Total: 300_000, Stored: 300_000}) {
		t.Errorf("stdout info %+v", info)
	}
}

func TestStdinNilAndEmpty(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{nil, {}} {
		s := newSpec(t, "cat")
		s.Stdin = in
		tk, r := run(t, s)
		if r.ExitCode != 0 || tk.Stdout().Info().Total != 0 {
			t.Errorf("stdin %v: exit %d, %d bytes out", in, r.ExitCode, tk.Stdout().Info().Total)
		}
	}
}

func TestArgsVerbatim(t *testing.T) {
	t.Parallel()
	tk, _ := run(t, newSpec(t, "echo", "$PATH", "a  b", "*", "'q'"))
	if got, want := string(readAll(t, tk.Stdout())), "$PATH a  b * 'q'\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestArgv0(t *testing.T) {
	t.Parallel()
	s := newSpec(t, "sh", "-c", `echo "$0"`, "custom-argv0")
	tk, _ := run(t, s)
	if got := string(readAll(t, tk.Stdout())); got != "custom-argv0\n" {
		t.Errorf("got %q", got)
	}
}

func TestEnvNotInherited(t *testing.T) {
	t.Parallel()
	if os.Getenv("HOME") == "" && os.Getenv("PATH") == "" {
		t.Skip("the test process has no environment to leak")
	}
	s := newSpec(t, "env")
	s.Env = []string{"ONLY=this"}
	tk, r := run(t, s)
	if got := string(readAll(t, tk.Stdout())); got != "ONLY=this\n" || r.ExitCode != 0 {
		t.Errorf("env printed %q (exit %d), want only ONLY=this", got, r.ExitCode)
	}
	s = newSpec(t, "env")
	s.Env = nil
	tk, _ = run(t, s)
	if got := readAll(t, tk.Stdout()); len(got) != 0 {
		t.Errorf("nil Env: env printed %q, want nothing", got)
	}
}

func TestDir(t *testing.T) {
	t.Parallel()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := newSpec(t, "pwd")
	s.Dir = dir
	tk, _ := run(t, s)
	if got := string(readAll(t, tk.Stdout())); got != dir+"\n" {
		t.Errorf("pwd %q, want %q", got, dir)
	}
	tk, _ = run(t, newSpec(t, "pwd"))
	if got := string(readAll(t, tk.Stdout())); got != "/\n" {
		t.Errorf("default dir %q, want /", got)
	}
	// A relative Path is relative to Dir.
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s = newSpec(t, "./hello")
	s.Dir = dir
	tk, _ = run(t, s)
	if got := string(readAll(t, tk.Stdout())); got != "hi\n" {
		t.Errorf("./hello printed %q", got)
	}
}

// childrenOfSelf lists every process whose parent is the test process,
// zombies included.
func childrenOfSelf(t *testing.T) []procStat {
	self := os.Getpid()
	return scan(t, func(st procStat) bool { return st.PPid == self })
}

// TestStartErrors is not parallel: it checks that the test process has no
// child at all after the failed starts.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage", "\x01\x02\x03 not a program", 0o755)
	noInterp := write("nointerp", "#!/nonexistent/interpreter\n", 0o755)
	plain := write("plain", "#!/bin/sh\n", 0o644)
	for _, c := range []struct {
		name   string
		edit   func(*Spec)
		class  error
		op     string
		substr string
	}{
		{"not found", func(s *Spec) { s.Path, s.Args = "nosuch", []string{"nosuch"} },
			ErrNotFound, "path", `executable file not found: "nosuch" on PATH /usr/bin:/bin`},
		{"not found default PATH", func(s *Spec) { s.Path, s.Args, s.Env = "nosuch", nil, nil },
			ErrNotFound, "path", `executable file not found: "nosuch" on PATH /usr/local/bin:/usr/bin:/bin`},
		{"absolute not found", func(s *Spec) { s.Path = "/nope/bin/x" },
			ErrNotFound, "path", "executable file not found: /nope/bin/x"},
		{"not executable", func(s *Spec) { s.Path = "/etc/passwd" },
			ErrPermission, "path", "permission denied: /etc/passwd is not executable"},
		{"not executable on PATH", func(s *Spec) { s.Path, s.Env = "plain", []string{"PATH=" + dir} },
			ErrPermission, "path", "permission denied: " + plain + " is not executable"},
		{"directory", func(s *Spec) { s.Path = "/etc" },
			ErrPermission, "path", "permission denied: /etc is a directory"},
		{"bad dir", func(s *Spec) { s.Dir = "/nope" },
			ErrBadDir, "dir", `working directory "/nope": no such file or directory`},
		{"dir is a file", func(s *Spec) { s.Dir = "/etc/passwd" },
			ErrBadDir, "dir", `working directory "/etc/passwd": not a directory`},
		{"relative dir", func(s *Spec) { s.Dir = "tmp" },
			ErrBadDir, "dir", `working directory "tmp": not an absolute path`},
		{"unknown user", func(s *Spec) { s.User = "nosuchuser-xyz" },
			ErrBadUser, "user", `unknown user "nosuchuser-xyz"`},
		{"exec format", func(s *Spec) { s.Path = garbage },
			ErrExecFormat, "exec", "exec format error: " + garbage},
		{"missing interpreter", func(s *Spec) { s.Path = noInterp },
			ErrNotFound, "exec", "executable file not found: " + noInterp},
		{"no command", func(s *Spec) { s.Path, s.Args = "", nil },
			ErrNotFound, "path", "no command given"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, "true")
			c.edit(&s)
			_, perr := Prepare(s)
			tk, err := Start(s)
			if err == nil {
				wait(t, tk)
				t.Fatalf("Start succeeded")
			}
			switch {
			case c.op == "exec" && perr != nil: // only exec can tell
				t.Errorf("Prepare: %v, want it to pass", perr)
			case c.op != "exec" && (perr == nil || perr.Error() != err.Error()):
				t.Errorf("Prepare: %v, want Start's error %v", perr, err)
			}
			var se *StartError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *StartError", err, err)
			}
			if !errors.Is(err, c.class) {
				t.Errorf("error %q is not %v", err, c.class)
			}
			if se.Op != c.op {
				t.Errorf("Op %q, want %q", se.Op, c.op)
			}
			if !strings.HasPrefix(err.Error(), "task: start: ") || !strings.Contains(err.Error(), c.substr) {
				t.Errorf("error %q does not say %q", err, c.substr)
			}
			if entries, _ := os.ReadDir(s.OutputDir); len(entries) != 0 {
				t.Errorf("spool files left in %s: %v", s.OutputDir, entries)
			}
		})
	}
	if kids := childrenOfSelf(t); len(kids) != 0 {
		t.Errorf("children left after failed starts: %+v", kids)
	}
}

// What Prepare checked can change before Start: an executable removed in
// between is exec's ENOENT, mapped to the same class, and nothing is left.
func TestPreparedStartAfterRemoval(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newSpec(t, script)
	p, err := Prepare(s)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path() != script {
		t.Errorf("Path = %q, want %q", p.Path(), script)
	}
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	tk, err := p.Start()
	if err == nil {
		wait(t, tk)
		t.Fatal("Start of a removed executable succeeded")
	}
	var se *StartError
	if !errors.As(err, &se) || se.Op != "exec" || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), script) {
		t.Errorf("error %v (op %v), want an exec error of class ErrNotFound naming %s", err, se, script)
	}
	if kids := childrenOfSelf(t); len(kids) != 0 {
		t.Errorf("children left after a failed start: %+v", kids)
	}
	if ents, _ := os.ReadDir(s.OutputDir); len(ents) != 0 {
		t.Errorf("spool files left: %v", ents)
	}
}

func TestUserSwitch(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, name := range []string{"nobody", "65534"} {
		s := newSpec(t, "id", "-u")
		s.User = name
		tk, r := run(t, s)
		if got := string(readAll(t, tk.Stdout())); got != "65534\n" || r.ExitCode != 0 {
			t.Errorf("User %q: id -u printed %q exit %d", name, got, r.ExitCode)
		}
	}
	// A working directory the user may not enter fails in the child; the
	// exec failure is mapped.
	s := newSpec(t, "id")
	s.User, s.Dir = "nobody", t.TempDir()
	if err := os.Chmod(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Start(s)
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), `as user "nobody"`) {
		t.Errorf("Start in a 0700 root directory as nobody: %v", err)
	}
}

func TestResolveUserNotRoot(t *testing.T) {
	t.Parallel()
	// As uid 65534 (nobody): itself is fine, anyone else is refused.
	for _, name := range []string{"nobody", "65534"} {
		if cred, err := resolveUser(name, 65534); err != nil || cred != nil {
			t.Errorf("resolveUser(%q) as nobody: %v %v, want no switch", name, cred, err)
		}
	}
	_, err := resolveUser("root", 65534)
	if !errors.Is(err, ErrBadUser) || !errors.Is(err, ErrPermission) ||
		err.Error() != `task: start: running as user "root" needs this service to run as root` {
		t.Errorf("resolveUser(root) as nobody: %v", err)
	}
	if _, err := resolveUser("nosuchuser-xyz", 65534); !errors.Is(err, ErrBadUser) {
		t.Errorf("unknown user: %v", err)
	}
}

func TestTimeoutKillsTree(t *testing.T) {
	t.Parallel()
	s := sh(t, "sleep 300 & sleep 300")
	s.Timeout = 300 * time.Millisecond
	s.Grace = 5 * time.Second
	tk, r := run(t, s)
	if !r.TimedOut || r.Killed || r.KillEscalated || !r.Signaled || r.Signal != syscall.SIGTERM {
		t.Errorf("result %+v, want timed out by SIGTERM", r)
	}
	if d := r.EndedAt.Sub(r.StartedAt); d < s.Timeout || d > 4*time.Second {
		t.Errorf("ran %v with Timeout %v", d, s.Timeout)
	}
	assertGroupGone(t, tk.Pgid())
}

// readyTrapper is a command that ignores SIGTERM (as does its sleep,
// which inherits the ignored disposition) and says when it is ready.
const readyTrapper = `trap "" TERM; echo ready; sleep 300`

func TestKillEscalatesOnTrappedTerm(t *testing.T) {
	t.Parallel()
	s := sh(t, readyTrapper)
	s.Grace = 200 * time.Millisecond
	tk := start(t, s)
	waitOutput(t, tk.Stdout(), "ready\n")
	tk.Kill()
	r := wait(t, tk)
	if !r.Killed || !r.KillEscalated || r.TimedOut || r.Signal != syscall.SIGKILL || r.ExitCode != 9 {
		t.Errorf("result %+v, want killed with escalation", r)
	}
	assertGroupGone(t, tk.Pgid())
}

func TestTimeoutEscalates(t *testing.T) {
	t.Parallel()
	s := sh(t, readyTrapper)
	s.Timeout = 200 * time.Millisecond
	s.Grace = 200 * time.Millisecond
	tk, r := run(t, s)
	if !r.TimedOut || !r.KillEscalated || r.Killed || r.Signal != syscall.SIGKILL {
		t.Errorf("result %+v, want timed out with escalation", r)
	}
	assertGroupGone(t, tk.Pgid())
}

func TestLeaderExitKillsGroup(t *testing.T) {
	t.Parallel()
	for _, script := range []string{
		"sleep 300 & echo $!",                 // the child holds stdout
		"sleep 300 >/dev/null 2>&1 & echo $!", // it does not
		// A grandchild; the leader exits once it has printed.
		`mkfifo fifo; sh -c 'sleep 300 & echo $!; echo >fifo; wait' & read x <fifo`,
	} {
		t.Run(script, func(t *testing.T) {
			t.Parallel()
			s := sh(t, script)
			s.Dir = t.TempDir()
			tk := start(t, s)
			out := waitOutput(t, tk.Stdout(), "\n")
			pid, err := strconv.Atoi(strings.TrimSpace(out))
			if err != nil {
				t.Fatalf("pid line %q", out)
			}
			killOnCleanup(t, pid)
			r := wait(t, tk)
			if r.ExitCode != 0 || r.OutputCut || r.Killed {
				t.Errorf("result %+v", r)
			}
			if !waitGone(pid, 5*time.Second) {
				t.Errorf("background sleep %d survived its leader", pid)
			}
			assertGroupGone(t, tk.Pgid())
		})
	}
}

func TestEscapedHolderDoesNotHangWait(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "escaped.pid")
	t.Cleanup(func() { // kill the escaped process even if the test fails
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				killOnCleanup(t, pid)
			}
		}
	})
	// The escaped process writes its pid and holds stdout and stderr; the
	// leader exits once the pid file exists.
	s := sh(t, `setsid -f sh -c 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 300' "$0"
		while [ ! -e "$0" ]; do :; done; echo leader done`)
	s.Args = append(s.Args, pidFile)
	s.Drain = 200 * time.Millisecond
	tk, r := run(t, s)
	if !r.OutputCut || r.ExitCode != 0 {
		t.Errorf("result %+v, want exit 0 with OutputCut", r)
	}
	if got := string(readAll(t, tk.Stdout())); got != "leader done\n" {
		t.Errorf("stdout %q", got)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	st, err := readStat(pid)
	if err != nil || st.Pgrp == tk.Pgid() || !st.alive() {
		t.Errorf("escaped process %d: %+v %v; want alive outside group %d", pid, st, err, tk.Pgid())
	}
}

func TestSignalScope(t *testing.T) {
	t.Parallel()
	// Leader and child each report SIGUSR1; their sleeps die of it.
	s := sh(t, `trap 'echo leader-usr1' USR1
		sh -c 'trap "echo child-usr1" USR1; echo ready; while :; do sleep 300 & wait $!; done' &
		while :; do sleep 300 & wait $!; done`)
	tk := start(t, s)
	waitOutput(t, tk.Stdout(), "ready\n")
	if err := tk.Signal(syscall.SIGUSR1, Leader); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, tk.Stdout(), "leader-usr1\n")
	if err := tk.Signal(syscall.SIGUSR1, Group); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tk.Stdout(), "two leader-usr1 and a child-usr1", func(s string) bool {
		return strings.Count(s, "leader-usr1\n") == 2 && strings.Contains(s, "child-usr1\n")
	})
	tk.Kill()
	wait(t, tk)
	got := string(readAll(t, tk.Stdout()))
	if n := strings.Count(got, "child-usr1\n"); n != 1 {
		t.Errorf("child saw SIGUSR1 %d times, want 1 (group only): %q", n, got)
	}
	if n := strings.Count(got, "leader-usr1\n"); n != 2 {
		t.Errorf("leader saw SIGUSR1 %d times, want 2: %q", n, got)
	}
	if err := tk.Signal(syscall.SIGUSR1, Group); !errors.Is(err, ErrEnded) {
		t.Errorf("Signal after the end: %v, want ErrEnded", err)
	}
	if err := tk.Signal(syscall.SIGUSR1, Leader); !errors.Is(err, ErrEnded) {
		t.Errorf("Signal after the end: %v, want ErrEnded", err)
	}
}

func TestKillTwiceAndConcurrentWait(t *testing.T) {
	t.Parallel()
	tk := start(t, newSpec(t, "sleep", "300"))
	var wg sync.WaitGroup
	results := make([]Result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			r, err := tk.Wait(ctx)
			if err != nil {
				t.Errorf("Wait: %v", err)
			}
			results[i] = r
		}()
	}
	tk.Kill()
	tk.Kill()
	wg.Wait()
	for _, r := range results[1:] {
		if r != results[0] {
			t.Errorf("Wait results differ: %+v vs %+v", r, results[0])
		}
	}
	if r := results[0]; !r.Killed || r.KillEscalated || r.Signal != syscall.SIGTERM {
		t.Errorf("result %+v, want killed by SIGTERM", r)
	}
	tk.Kill() // after the end: nothing happens
	if r := wait(t, tk); r != results[0] {
		t.Errorf("Wait after Kill after end: %+v", r)
	}
	select {
	case <-tk.Done():
	default:
		t.Error("Done not closed")
	}
}

func TestWaitContext(t *testing.T) {
	t.Parallel()
	tk := start(t, newSpec(t, "sleep", "300"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tk.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v", err)
	}
}

// The peak RSS is the command's own, or 0 when Linux cannot tell it from
// ours: a small command reports 0 (the kernel's figure, the bound, is our
// own size), and one that maps more than we ever did reports what it
// mapped.
func TestRusage(t *testing.T) {
	t.Parallel()
	_, r := run(t, sh(t, `i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done`))
	if r.UserCPU+r.SysCPU <= 0 || r.MaxRSS != 0 || r.MaxRSSBound < 1<<20 {
		t.Errorf("a small command: rusage UserCPU %v SysCPU %v MaxRSS %d bound %d; want some CPU, MaxRSS 0 and a bound",
			r.UserCPU, r.SysCPU, r.MaxRSS, r.MaxRSSBound)
	}
	self, err := selfPeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	size := self + 64<<20
	s := newSpec(t, os.Args[0])
	s.Env = []string{childEnv + "=map", "TASK_TEST_MAP_BYTES=" + strconv.FormatInt(size, 10)}
	_, r = run(t, s)
	if r.ExitCode != 0 || r.MaxRSS < size || r.MaxRSS > size+self || r.MaxRSSBound != r.MaxRSS {
		t.Errorf("a command mapping %d MiB (ours: %d MiB): exit %d, MaxRSS %d MiB, bound %d MiB",
			size>>20, self>>20, r.ExitCode, r.MaxRSS>>20, r.MaxRSSBound>>20)
	}
}

func TestStartTicks(t *testing.T) {
	t.Parallel()
	tk := start(t, newSpec(t, "sleep", "300"))
	st, err := readStat(tk.Pid())
	if err != nil || tk.StartTicks() == 0 || st.StartTime != tk.StartTicks() || st.Pgrp != tk.Pgid() {
		t.Errorf("stat %+v %v, StartTicks %d Pgid %d", st, err, tk.StartTicks(), tk.Pgid())
	}
}

func TestKillGroup(t *testing.T) {
	t.Parallel()
	// A group nobody else kills: started with os/exec, not Start.
	cmd := exec.Command("sh", "-c", "sleep 300 & sleep 300 & echo ready; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGKILL)
		cmd.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	st, err := readStat(pgid)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := KillGroup(pgid, st.StartTime+1<<40); n != 0 || err != nil {
		t.Errorf("KillGroup with a later start time: %d %v, want 0", n, err)
	}
	if got := len(members(t, pgid)); got != 3 {
		t.Fatalf("group has %d live processes, want 3", got)
	}
	n, err := KillGroup(pgid, st.StartTime)
	if n != 3 || err != nil {
		t.Errorf("KillGroup: %d %v, want 3", n, err)
	}
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("leader ended with %v, want SIGKILL", err)
	}
	assertGroupGone(t, pgid)
	if n, err := KillGroup(pgid, st.StartTime); n != 0 || err != nil {
		t.Errorf("second KillGroup: %d %v", n, err)
	}
	if _, err := KillGroup(1, 0); err == nil {
		t.Error("KillGroup(1) accepted")
	}
	if _, err := KillGroup(syscall.Getpgrp(), 0); err == nil {
		t.Error("KillGroup of the test's own group accepted")
	}
}

// A task leads its session as well as its group: KillGroup also kills a
// job of the session that job control moved to a group of its own.
func TestKillGroupKillsTheSession(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("bash", "-c", "set -m; sleep 300 & echo $!; wait") // dash does no job control without a terminal
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-sid, syscall.SIGKILL)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	job, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("read %q, %v", line, err)
	}
	t.Cleanup(func() { syscall.Kill(job, syscall.SIGKILL) })
	jst, err := readStat(job)
	if err != nil || jst.Session != sid || jst.Pgrp == sid {
		t.Fatalf("the job: %+v %v; want session %d in another group", jst, err, sid)
	}
	fd, err := unix.PidfdOpen(job, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	st, err := readStat(sid)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := KillGroup(sid, st.StartTime); n != 2 || err != nil {
		t.Errorf("KillGroup: %d %v, want 2 (the shell and its job)", n, err)
	}
	if !exited(fd, testTimeout) {
		t.Error("the session's job outlived KillGroup")
	}
}

// TestKillGroupOfTask is the restart case: the group of a running task is
// recognised by Pgid and StartTicks.
func TestKillGroupOfTask(t *testing.T) {
	t.Parallel()
	tk := start(t, sh(t, "sleep 300 & echo ready; wait"))
	waitOutput(t, tk.Stdout(), "ready\n")
	if n, err := KillGroup(tk.Pgid(), tk.StartTicks()); n < 1 || err != nil {
		t.Errorf("KillGroup: %d %v", n, err)
	}
	if r := wait(t, tk); r.Signal != syscall.SIGKILL {
		t.Errorf("result %+v, want SIGKILL", r)
	}
	assertGroupGone(t, tk.Pgid())
}
