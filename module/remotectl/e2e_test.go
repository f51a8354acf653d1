package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/client"
)

// bins holds modhost and remote-execute, built by TestMain with -race.
var bins string

func TestMain(m *testing.M) {
	os.Exit(hosttest.Binaries(map[string]string{"modhost": "/host", "remote-execute": "/module/remote-execute"}, func(dir string) int {
		bins = dir
		return m.Run()
	}))
}

// remoteJSON is a modules.json loading remote-execute with params as key,
// value pairs.
func remoteJSON(params ...string) string {
	return hosttest.RemoteJSON(filepath.Join(bins, "remote-execute"), params...)
}

// startAgent starts a real modhost with the remote module and returns
// host:port. With home set, the agent's commands see HOME=home (the host
// passes HOME to its modules and env_allowlist passes it on to commands):
// each agent stands for a machine of its own, told apart by its files.
func startAgent(t *testing.T, home string, args ...string) string {
	t.Helper()
	return strings.TrimPrefix(startAgentHost(t, home, args...).URL, "http://")
}

// startAgentHost is startAgent, returning the host (its work_dir, its log).
func startAgentHost(t *testing.T, home string, args ...string) *hosttest.Host {
	t.Helper()
	var env []string
	allow := "PATH"
	if home != "" {
		env, allow = []string{"HOME=" + home}, "PATH,HOME"
	}
	return hosttest.Start(t, filepath.Join(bins, "modhost"), env,
		append([]string{"--modules=" + remoteJSON("env_allowlist", allow)}, args...)...)
}

// downAddr is a loopback address nothing listens on.
func downAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// start runs remotectl in the background with watchable outputs.
func start(t *testing.T, env []string, args ...string) (stdout, stderr *watchWriter, code <-chan int) {
	return startCtx(t, t.Context(), env, args...)
}

// startCtx is start with a context the test may cancel: an interrupt.
func startCtx(t *testing.T, ctx context.Context, env []string, args ...string) (stdout, stderr *watchWriter, code <-chan int) {
	out, errw := newWatchWriter(), newWatchWriter()
	c := make(chan int, 1)
	var wg sync.WaitGroup
	wg.Go(func() { c <- run(ctx, args, strings.NewReader(""), out, errw, env) })
	t.Cleanup(wg.Wait)
	return out, errw, c
}

func TestRunExitCodes(t *testing.T) {
	agent := startAgent(t, "")
	for _, c := range []struct {
		name string
		args []string
		want int
		out  string
	}{
		{"exit 3", []string{"--", "sh", "-c", "echo out; echo err >&2; exit 3"}, 3, "out\n"},
		{"exit 0", []string{"--", "echo", "$PATH"}, 0, "$PATH\n"},
		{"signaled", []string{"--shell", "--", "kill -USR1 $$"}, 128 + int(syscall.SIGUSR1), ""},
		{"timeout", []string{"--timeout", "1s", "--", "sleep", "60"}, 124, ""},
		{"not found", []string{"--", "/nonexistent/cmd"}, 1, ""},
		{"stdin and env", []string{"--stdin", "-", "--env", "GREETING=hi", "--shell", "--", "echo $GREETING; cat"}, 0, "hi\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := remotectl(t, nil, append([]string{"run", "--agent", agent}, c.args...)...)
			if r.code != c.want || r.stdout != c.out {
				t.Errorf("exit %d stdout %q stderr %q; want exit %d stdout %q", r.code, r.stdout, r.stderr, c.want, c.out)
			}
		})
	}
	r := remotectl(t, nil, "run", "--agent", agent, "--", "sh", "-c", "echo err >&2; exit 3")
	if r.stderr != "err\n" {
		t.Errorf("stderr = %q, want the remote stderr", r.stderr)
	}
	// --json: the final task, and the exit code still the remote one.
	r = remotectl(t, nil, "run", "--agent", agent, "--json", "--", "sh", "-c", "echo hi; exit 4")
	if r.code != 4 || !strings.Contains(r.stdout, `"text": "hi\n"`) || !strings.Contains(r.stdout, `"state": "exited"`) {
		t.Errorf("--json = %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// The first line reaches our stdout while the command is still blocked on
// a FIFO only the test can open: output is streamed live, not at the end.
func TestRunStreamsLive(t *testing.T) {
	agent := startAgent(t, "")
	fifo, release := hosttest.Gate(t, "")
	stdout, stderr, code := start(t, nil, "run", "--agent", agent, "--shell", "--",
		"echo first; echo warn >&2; read x < "+fifo+"; echo second")
	stdout.waitFor(t, "first line", func(s string) bool { return s == "first\n" })
	stderr.waitFor(t, "stderr line", func(s string) bool { return s == "warn\n" })
	release()
	if c := <-code; c != 0 || stdout.String() != "first\nsecond\n" {
		t.Errorf("exit %d stdout %q stderr %q", c, stdout.String(), stderr.String())
	}
}

func TestDetachLogsKillWait(t *testing.T) {
	agent := startAgent(t, "")
	fifo, release := hosttest.Gate(t, "")
	r := remotectl(t, nil, "run", "--agent", agent, "--detach", "--label", "ticket=OPS-7", "--shell", "--",
		"echo one; read x < "+fifo+"; echo two; exit 5")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || !regexp.MustCompile(`^[0-9a-z]{26}$`).MatchString(id) {
		t.Fatalf("run --detach = %d %q %q", r.code, r.stdout, r.stderr)
	}
	logs, _, logsCode := start(t, nil, "logs", "-f", "--agent", agent, id)
	logs.waitFor(t, "the first line from logs -f", func(s string) bool { return s == "one\n" })
	ps := remotectl(t, nil, "ps", "--agent", agent, "--label", "ticket=OPS-7")
	if !regexp.MustCompile(id + `\s+running\s+\d+\s+-\s+\d+s\s+/bin/sh -c 'echo one;`).MatchString(ps.stdout) {
		t.Errorf("ps = %d\n%s%s", ps.code, ps.stdout, ps.stderr)
	}
	release()
	if c := <-logsCode; c != 0 || logs.String() != "one\ntwo\n" {
		t.Errorf("logs -f = %d %q", c, logs.String())
	}
	if r := remotectl(t, nil, "wait", "--agent", agent, id); r.code != 5 {
		t.Errorf("wait = %d %q, want 5", r.code, r.stderr)
	}
	if r := remotectl(t, nil, "get", "--agent", agent, id); r.code != 0 || !regexp.MustCompile(`(?m)^State:\s+exited\n`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^Labels:\s+ticket=OPS-7\n`).MatchString(r.stdout) || !strings.Contains(r.stdout, "--- stdout\none\ntwo\n") {
		t.Errorf("get = %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// kill: SIGTERM to the group, and wait reports 128+15.
	r = remotectl(t, nil, "run", "--agent", agent, "--detach", "--", "sleep", "300")
	id = strings.TrimSpace(r.stdout)
	if r := remotectl(t, nil, "kill", "--agent", agent, id); r.code != 0 {
		t.Fatalf("kill = %d %s", r.code, r.stderr)
	}
	if r := remotectl(t, nil, "wait", "--agent", agent, id); r.code != 128+15 || !strings.Contains(r.stderr, "killed by SIGTERM") {
		t.Errorf("wait after kill = %d %q, want 143", r.code, r.stderr)
	}
	// kill --signal: a signal of the caller's choice.
	r = remotectl(t, nil, "run", "--agent", agent, "--detach", "--", "sleep", "300")
	id = strings.TrimSpace(r.stdout)
	if r := remotectl(t, nil, "kill", "--agent", agent, "--signal", "SIGKILL", id); r.code != 0 {
		t.Fatalf("kill --signal = %d %s", r.code, r.stderr)
	}
	if r := remotectl(t, nil, "wait", "--agent", agent, id); r.code != 128+9 {
		t.Errorf("wait after SIGKILL = %d %q, want 137", r.code, r.stderr)
	}
	if r := remotectl(t, nil, "get", "--agent", agent, "01nosuchtask0000000000000"); r.code != 1 || !strings.Contains(r.stderr, "no task 01nosuchtask0000000000000 on agent") {
		t.Errorf("get of an unknown task = %d %q", r.code, r.stderr)
	}
	if r := remotectl(t, nil, "status", "--agent", agent); r.code != 0 || !regexp.MustCompile(`(?m)^Status:\s+active$`).MatchString(r.stdout) {
		t.Errorf("status = %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := remotectl(t, []string{"REMOTECTL_AGENT=" + agent}, "policy", "check", "--", "ls"); r.code != 0 || !strings.HasPrefix(r.stdout, "allowed") {
		t.Errorf("policy check = %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// Connection failures, in words, with their exit codes.
func TestConnectionErrors(t *testing.T) {
	down := downAddr(t)
	r := remotectl(t, nil, "status", "--agent", down)
	if want := "remotectl: agent " + down + " unreachable: connection refused\n"; r.code != 69 || r.stderr != want {
		t.Errorf("unreachable = %d %q, want 69 %q", r.code, r.stderr, want)
	}

	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.json")
	os.WriteFile(creds, []byte(`{"credentials":[{"principal":"alice","secret":"a:1"},{"principal":"bob","secret":"b"}]}`), 0o600)
	acls := `{"permissive":false,"run_remote_commands":[` +
		`{"principals":{"values":["alice"]},"commands":{"type":"ANY"}},` +
		`{"principals":{"values":["bob"]},"commands":{"values":["echo *"]}}],` +
		`"view_remote_tasks":[{"principals":{"type":"ANY"},"owners":{"values":["self"]}}]}`
	agent := startAgent(t, "", "--http_credentials=file://"+creds, "--authenticate_http_readonly",
		"--authenticate_http_readwrite", "--acls="+acls)
	var b strings.Builder
	for _, c := range []struct {
		env  []string
		args []string
		want int
	}{
		{nil, []string{"run", "--", "true"}, 77},
		{nil, []string{"run", "--principal", "alice", "--secret", "wrong", "--", "true"}, 77},
		{nil, []string{"run", "--credentials", creds, "--principal", "bob", "--", "ls"}, 77},
		{[]string{"REMOTECTL_PRINCIPAL=bob", "REMOTECTL_SECRET=b"}, []string{"run", "--", "echo", "hi"}, 0},
		{nil, []string{"run", "--credentials", creds, "--", "ls", "-d", "/"}, 0},
		{nil, []string{"policy", "check", "--credentials", creds, "--principal", "bob", "--", "ls"}, 77},
	} {
		args := append([]string{"--agent", agent}, c.args...)
		r := remotectl(t, c.env, args...)
		if r.code != c.want {
			t.Errorf("%v = %d %q, want %d", c.args, r.code, r.stderr, c.want)
		}
		fmt.Fprintf(&b, "$ %s remotectl %s\nexit %d\n%s%s\n", strings.Join(c.env, " "), strings.Join(c.args, " "), r.code, r.stdout, r.stderr)
	}
	golden(t, "auth-errors", strings.NewReplacer(agent, "AGENT", creds, "CREDENTIALS").Replace(b.String()))

	// A host without the module: its 404 says so.
	bare := hosttest.Start(t, filepath.Join(bins, "modhost"), nil, `--modules={"libraries":[]}`)
	addr := strings.TrimPrefix(bare.URL, "http://")
	if r := remotectl(t, nil, "ps", "--agent", addr); r.code != 69 ||
		r.stderr != "remotectl: the remote module is not loaded on agent "+addr+" (404)\n" {
		t.Errorf("no module = %d %q", r.code, r.stderr)
	}
}

// fleet is three real agents, each with a home of its own holding its
// name (a, b, c) and the code its commands exit with (b's fail: 7), and an
// address where nothing listens.
type fleet struct {
	ok1, fail, ok2, down string
	home                 map[string]string // agent address: its HOME
}

func startFleet(t *testing.T) fleet {
	f := fleet{home: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range []struct {
		addr       *string
		name, exit string
	}{{&f.ok1, "a", "0"}, {&f.fail, "b", "7"}, {&f.ok2, "c", "0"}} {
		home := t.TempDir()
		for file, content := range map[string]string{"name": a.name, "fail": a.exit} {
			if err := os.WriteFile(filepath.Join(home, file), []byte(content+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		wg.Go(func() {
			addr := startAgent(t, home)
			mu.Lock()
			*a.addr, f.home[addr] = addr, home
			mu.Unlock()
		})
	}
	wg.Wait()
	f.down = downAddr(t)
	return f
}

// summary is the summary table's rows as "agent state exit".
func summary(stderr string, names map[string]string) []string {
	var rows []string
	re := regexp.MustCompile(`^(\S+:\d+)\s+(\S+)\s+(\S+)`)
	for _, l := range strings.Split(stderr, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			rows = append(rows, names[m[1]]+" "+m[2]+" "+m[3])
		}
	}
	return rows
}

func TestFanOutMaxErrors(t *testing.T) {
	f := startFleet(t)
	names := map[string]string{f.ok1: "ok1", f.fail: "fail", f.ok2: "ok2", f.down: "down"}
	cmd := []string{"--shell", "--", `echo "hello from $(cat ~/name)"; printf partial; exit $(cat ~/fail)`}
	list := func(as ...string) string { return strings.Join(as, ",") }
	for _, c := range []struct {
		name      string
		agents    string
		maxErrors string
		want      []string
		code      int
	}{
		{"default 0 stops at the first failure", list(f.ok1, f.fail, f.ok2, f.down), "0",
			[]string{"ok1 exited 0", "fail exited 7", "ok2 skipped -", "down skipped -"}, 7},
		{"absolute 1 tolerates one", list(f.ok1, f.fail, f.ok2, f.down), "1",
			[]string{"ok1 exited 0", "fail exited 7", "ok2 exited 0", "down unreachable 69"}, 7},
		{"25% of 4 tolerates one", list(f.fail, f.down, f.ok1, f.ok2), "25%",
			[]string{"fail exited 7", "down unreachable 69", "ok1 skipped -", "ok2 skipped -"}, 7},
		{"50% of 4 tolerates two", list(f.down, f.fail, f.ok1, f.ok2), "50%",
			[]string{"down unreachable 69", "fail exited 7", "ok1 exited 0", "ok2 exited 0"}, 69},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := remotectl(t, nil, append([]string{"run", "--agents", c.agents, "--max-concurrency", "1", "--max-errors", c.maxErrors}, cmd...)...)
			if got := summary(r.stderr, names); r.code != c.code || strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("exit %d, summary:\n%s\nwant exit %d:\n%s\nstderr:\n%s", r.code, strings.Join(got, "\n"), c.code, strings.Join(c.want, "\n"), r.stderr)
			}
			// Every line prefixed, the partial line flushed with its own prefix.
			for _, row := range c.want {
				name, state, _ := strings.Cut(row, " ")
				addr := map[string]string{"ok1": f.ok1, "fail": f.fail, "ok2": f.ok2, "down": f.down}[name]
				ran := strings.HasPrefix(state, "exited")
				if got := strings.Contains(r.stdout, addr+": hello from ") && strings.Contains(r.stdout, addr+": partial\n"); got != ran {
					t.Errorf("%s (%s): output present %v:\n%s", name, state, got, r.stdout)
				}
			}
		})
	}
}

// --max-concurrency 2 over 3 agents: two commands run at once (each waits
// on the FIFO in its agent's home, so both being up proves they overlap)
// and the third starts only after one of them is done.
func TestFanOutMaxConcurrency(t *testing.T) {
	f := startFleet(t)
	release := map[string]func(){} // by the gate's path
	for _, home := range f.home {
		path, r := hosttest.Gate(t, filepath.Join(home, "gate"))
		release[path] = r
	}
	stdout, stderr, code := start(t, nil, "run", "--agents", strings.Join([]string{f.ok1, f.ok2, f.fail}, ","),
		"--max-concurrency", "2", "--max-errors", "100%", "--shell", "--", `echo up; read x < ~/gate; echo done`)
	up := func(s string) []string { return regexp.MustCompile(`(?m)^\S+:\d+: up$`).FindAllString(s, -1) }
	gate := func(line string) string { return filepath.Join(f.home[strings.TrimSuffix(line, ": up")], "gate") }
	stdout.waitFor(t, "two commands up", func(s string) bool { return len(up(s)) == 2 })
	first := up(stdout.String())
	release[gate(first[0])]()
	stdout.waitFor(t, "the third command up", func(s string) bool { return len(up(s)) == 3 })
	if s := stdout.String(); strings.Index(s, strings.TrimSuffix(first[0], "up")+"done") > strings.Index(s, up(s)[2]) {
		t.Errorf("the third agent started before a slot was free:\n%s", s)
	}
	third := up(stdout.String())[2]
	release[gate(first[1])]()
	release[gate(third)]()
	if c := <-code; c != 0 {
		t.Errorf("exit %d:\n%s", c, stderr.String())
	}
	if n := strings.Count(stdout.String(), ": done\n"); n != 3 {
		t.Errorf("%d done lines:\n%s", n, stdout.String())
	}
}

// Long lines from three agents at once: each comes out whole, prefixed.
func TestFanOutLinesNotInterleaved(t *testing.T) {
	f := startFleet(t)
	r := remotectl(t, nil, "run", "--agents", strings.Join([]string{f.ok1, f.fail, f.ok2}, ","), "--max-errors", "3", "--shell", "--",
		`awk -v n="$(cat ~/name)" 'BEGIN { for (i = 0; i < 300; i++) { s = ""; for (j = 0; j < 500; j++) s = s n; print s } }'; exit $(cat ~/fail)`)
	if r.code != 7 {
		t.Errorf("exit %d, want 7 (the failing agent's code)\n%s", r.code, r.stderr)
	}
	names := map[string]string{f.ok1: "a", f.fail: "b", f.ok2: "c"}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 900 {
		t.Errorf("%d lines, want 900", len(lines))
	}
	for _, l := range lines {
		addr, rest, _ := strings.Cut(l, ": ")
		if n := names[addr]; n == "" || rest != strings.Repeat(n, 500) {
			t.Fatalf("a mixed line: %.100q", l)
		}
	}
	if !strings.Contains(r.stderr, "3 agents: 2 succeeded, 1 failed, 0 skipped") {
		t.Errorf("summary:\n%s", r.stderr)
	}
}

// Ctrl-C during a fan-out: remotectl kills the task on every agent before
// it exits 130, as run on one agent does; nothing is left running.
func TestFanOutInterruptKillsTasks(t *testing.T) {
	f := startFleet(t)
	ctx, interrupt := context.WithCancel(t.Context())
	stdout, stderr, code := startCtx(t, ctx, nil, "run", "--agents", f.ok1+","+f.ok2, "--shell", "--", "echo up; exec sleep 300")
	stdout.waitFor(t, "both commands up", func(s string) bool { return strings.Count(s, ": up\n") == 2 })
	interrupt()
	if c := <-code; c != exitInterrupted {
		t.Errorf("exit %d, want %d\n%s", c, exitInterrupted, stderr.String())
	}
	if s := stderr.String(); strings.Count(s, " interrupted ") != 2 || !strings.Contains(s, "killed") {
		t.Errorf("summary:\n%s", s)
	}
	for _, a := range []string{f.ok1, f.ok2} {
		ps := remotectl(t, nil, "ps", "--agent", a, "--json")
		var tasks []client.Task
		if err := json.Unmarshal([]byte(ps.stdout), &tasks); err != nil || len(tasks) != 1 {
			t.Fatalf("ps on %s = %v %q", a, err, ps.stdout)
		}
		if r := remotectl(t, nil, "wait", "--agent", a, tasks[0].ID); r.code != exitSignalBase+int(syscall.SIGTERM) {
			t.Errorf("wait on %s = %d %q, want the task killed by SIGTERM", a, r.code, r.stderr)
		}
	}
}

// An agent's real audit log verifies; after a line is edited, remotectl
// names the line where the chain breaks.
func TestAuditVerify(t *testing.T) {
	h := startAgentHost(t, "")
	agent := strings.TrimPrefix(h.URL, "http://")
	for _, cmd := range [][]string{{"true"}, {"sh", "-c", "exit 3"}} {
		remotectl(t, nil, append([]string{"run", "--agent", agent, "--"}, cmd...)...)
	}
	fake := " seq=99 hash=" + strings.Repeat("f", 64) // an argument that imitates the record's keys
	remotectl(t, nil, "run", "--agent", agent, "--", "echo", fake)
	path := filepath.Join(h.WorkDir, "modules", "org_execmod_RemoteExecution", "audit.jsonl")
	r := remotectl(t, nil, "audit", "verify", path)
	// Three runs, each a "run" line and an "end" line.
	if r.code != 0 || !strings.Contains(r.stdout, path+": 6 lines, chain intact\nlast: seq=6 hash=") {
		t.Fatalf("verify = %d %q %q", r.code, r.stdout, r.stderr)
	}
	// The host's log holds the module's own record of its last append.
	hostLog := filepath.Join(t.TempDir(), "modhost.log")
	if err := os.WriteFile(hostLog, []byte(h.Logs.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := remotectl(t, nil, "audit", "verify", "--host-log", hostLog, path); r.code != 0 || !strings.Contains(r.stdout, "matches the last audit record in "+hostLog) {
		t.Errorf("verify --host-log = %d %q %q", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The last line cut off: the chain is intact, only the host's log shows it.
	cut := filepath.Join(t.TempDir(), "modules", "org_execmod_RemoteExecution", "audit.jsonl")
	lines := strings.SplitAfter(string(b), "\n")
	if err := os.MkdirAll(filepath.Dir(cut), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cut, []byte(strings.Join(lines[:len(lines)-2], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := remotectl(t, nil, "audit", "verify", cut); r.code != 0 {
		t.Errorf("verify of a cut log without the host's log = %d %q", r.code, r.stderr)
	}
	r = remotectl(t, nil, "audit", "verify", "--host-log", hostLog, cut)
	if want := "remotectl: " + cut + ": lines are missing from the end: the file ends at seq 5, the host logged seq 6"; r.code != exitFailure || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("verify --host-log of a cut log = %d %q, want %q", r.code, r.stderr, want)
	}

	edited := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(edited, []byte(strings.Replace(string(b), `"exit_code":3`, `"exit_code":0`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = remotectl(t, nil, "audit", "verify", edited)
	if r.code != exitFailure || !strings.HasPrefix(r.stderr, "remotectl: "+edited+": chain broken at line 4: ") {
		t.Errorf("verify of an edited log = %d %q", r.code, r.stderr)
	}
	if r := remotectl(t, nil, "audit", "verify", "--json", edited); r.code != exitFailure || !strings.Contains(r.stdout, `"intact": false`) ||
		!strings.Contains(r.stdout, `"line": 4`) {
		t.Errorf("verify --json = %d %q", r.code, r.stdout)
	}
}
