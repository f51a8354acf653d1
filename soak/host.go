package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// build builds modhost and remote-execute into dir (with -race if race).
func build(ctx context.Context, dir string, race bool, log io.Writer) error {
	const mod = "github.com/execmod/execmod"
	for name, pkg := range map[string]string{"modhost": mod + "/host", "remote-execute": mod + "/module/remote-execute"} {
		args := []string{"build"}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, "-o", filepath.Join(dir, name), pkg)...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", pkg, err)
		}
	}
	return nil
}

// logWatch keeps a process's log lines and lets the soak wait for one.
type logWatch struct {
	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced on every line
	done  bool
	copy  io.Writer // every line also goes here (the run's log file)
}

func newLogWatch(copy io.Writer) *logWatch {
	return &logWatch{added: make(chan struct{}), copy: copy}
}

func (l *logWatch) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		if l.copy != nil {
			fmt.Fprintln(l.copy, sc.Text())
		}
		close(l.added)
		l.added = make(chan struct{})
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.done = true
	close(l.added)
	l.mu.Unlock()
}

// waitFrom waits for a line from index from on that matches re, and
// returns its submatches and the index after it.
func (l *logWatch) waitFrom(ctx context.Context, from int, re *regexp.Regexp, timeout time.Duration) ([]string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for ; from < len(l.lines); from++ {
			if m := re.FindStringSubmatch(l.lines[from]); m != nil {
				l.mu.Unlock()
				return m, from + 1, nil
			}
		}
		added, done := l.added, l.done
		l.mu.Unlock()
		if done {
			return nil, from, fmt.Errorf("the log ended without a line matching %q", re)
		}
		select {
		case <-added:
		case <-deadline.C:
			return nil, from, fmt.Errorf("no line matching %q within %s", re, timeout)
		case <-ctx.Done():
			return nil, from, ctx.Err()
		}
	}
}

func (l *logWatch) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// grep returns the lines that contain s.
func (l *logWatch) grep(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// hostProc is one run of bin/modhost.
type hostProc struct {
	cmd    *exec.Cmd
	logs   *logWatch
	exited chan struct{} // closed once reaped
	addr   string        // 127.0.0.1:port
	// modulePid is the pid the last "module serving" line named; servedAt
	// is the index after that line.
	mu        sync.Mutex
	modulePid int
	servedAt  int
}

var (
	listeningRe = regexp.MustCompile(`listening: addr=(\S+)`)
	servingRe   = regexp.MustCompile(`module serving: .*pid=(\d+)`)
)

// startHost starts modhost with args and env (nothing else inherited),
// with Pdeathsig so that it dies with the soak, and waits until it
// listens. The caller must call stop.
func startHost(ctx context.Context, bin string, args, env []string, logCopy io.Writer) (*hostProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	// The host dies with the soak even if the soak is killed; its modules
	// die with the host (their own Pdeathsig), their commands with them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = logCopy
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &hostProc{cmd: cmd, logs: newLogWatch(logCopy), exited: make(chan struct{})}
	go func() {
		h.logs.consume(stderr)
		_ = cmd.Wait()
		close(h.exited)
	}()
	m, next, err := h.logs.waitFrom(ctx, 0, listeningRe, 90*time.Second)
	if err != nil {
		h.kill()
		return nil, fmt.Errorf("the host did not start: %w", err)
	}
	h.addr = m[1]
	// The module is serving before the host listens.
	sm, _, err := h.logs.waitFrom(ctx, 0, servingRe, time.Second)
	if err != nil {
		h.kill()
		return nil, fmt.Errorf("the host listens (log line %d) but no module is serving: %w", next, err)
	}
	h.modulePid, _ = strconv.Atoi(sm[1])
	h.servedAt = h.logs.len()
	return h, nil
}

// module returns the module's pid as last announced.
func (h *hostProc) module() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.modulePid
}

// waitServing waits for the next "module serving" line after the last one
// seen, and records its pid.
func (h *hostProc) waitServing(ctx context.Context, timeout time.Duration) (int, error) {
	h.mu.Lock()
	from := h.servedAt
	h.mu.Unlock()
	m, next, err := h.logs.waitFrom(ctx, from, servingRe, timeout)
	if err != nil {
		return 0, err
	}
	pid, _ := strconv.Atoi(m[1])
	h.mu.Lock()
	h.modulePid, h.servedAt = pid, next
	h.mu.Unlock()
	return pid, nil
}

// stop sends SIGTERM and waits for the host to exit; after timeout it
// SIGKILLs it and reports false.
func (h *hostProc) stop(timeout time.Duration) bool {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-h.exited:
		return true
	case <-t.C:
		h.kill()
		return false
	}
}

// kill SIGKILLs the host and waits until it is reaped.
func (h *hostProc) kill() {
	_ = h.cmd.Process.Kill()
	<-h.exited
}

func (h *hostProc) pid() int { return h.cmd.Process.Pid }

// exitStatus describes how the host ended.
func (h *hostProc) exitStatus() string {
	<-h.exited
	if h.cmd.ProcessState == nil {
		return "unknown"
	}
	return h.cmd.ProcessState.String()
}

// moduleJSON is the modules.json of the run: remote-execute alone.
func moduleJSON(bin string, params [][2]string) string {
	var ps []string
	for _, p := range params {
		ps = append(ps, fmt.Sprintf(`{"key":%q,"value":%q}`, p[0], p[1]))
	}
	return fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":%q,"parameters":[%s]}]}]}`,
		bin, moduleName, strings.Join(ps, ","))
}

const moduleName = "org_execmod_RemoteExecution"
