package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/client"
)

// waitOutput follows a task's stdout until it has printed want.
func waitOutput(t *testing.T, c *client.Client, id, want string) {
	t.Helper()
	rc, err := c.Output(t.Context(), id, "stdout", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))))
	if err != nil || string(got) != want {
		t.Fatalf("followed stdout = %q, %v; want %q", got, err, want)
	}
}

// apiError is err as an *client.Error, or fails the test.
func apiError(t *testing.T, err error, status int) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != status || e.Message == "" {
		t.Fatalf("error = %v (%T), want an *Error with status %d and a message", err, err, status)
	}
	return e
}

// The REST API through the client: start, replay, follow, wait, output
// by offset, list, run, signal, kill and delete.
func TestTasks(t *testing.T) {
	h := startHost(t, nil)
	c := newClient(t, h)
	ctx := t.Context()
	dir := t.TempDir()
	fifo, release := hosttest.Gate(t, "")

	req := client.RunRequest{
		Command: fmt.Sprintf("echo one; read x < %s; echo two; cat; echo $GREETING; pwd", fifo), Shell: true,
		Env: map[string]string{"GREETING": "hi"}, Cwd: dir, Stdin: []byte("input\n"), Labels: map[string]string{"ticket": "OPS-1"},
		IdempotencyKey: "k1", Timeout: time.Minute, Grace: 1500 * time.Millisecond,
	}
	task, err := c.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if task.State != client.StateRunning || task.Final() || task.Replayed || task.Pid == 0 || task.Command != "/bin/sh" ||
		!slices.Equal(task.Arguments, []string{"/bin/sh", "-c", req.Command}) || !task.Shell || task.Cwd != dir ||
		task.TimeoutMs != 60000 || task.GraceMs != 1500 || !slices.Equal(task.EnvKeys, []string{"GREETING"}) ||
		task.Labels["ticket"] != "OPS-1" || task.IdempotencyKey != "k1" || task.CreatedAt.IsZero() || task.StartedAt == nil {
		t.Errorf("Start = %+v", task)
	}
	again, err := c.Start(ctx, req)
	if err != nil || again.ID != task.ID || !again.Replayed {
		t.Errorf("Start with the same idempotency key = %+v, %v; want task %s replayed", again, err, task.ID)
	}

	// Follow stdout: "one" arrives while the task waits on the FIFO, the
	// rest once it goes on, and the stream ends with the task.
	rc, err := c.Output(ctx, task.ID, "stdout", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(rc)
	if line, err := rd.ReadString('\n'); err != nil || line != "one\n" {
		t.Fatalf("first followed line = %q, %v", line, err)
	}
	release()
	want := "one\ntwo\ninput\nhi\n" + dir + "\n"
	if rest, err := io.ReadAll(rd); err != nil || "one\n"+string(rest) != want {
		t.Errorf("rest of the followed stream = %q, %v", rest, err)
	}
	rc.Close()

	done, err := c.Wait(ctx, task.ID)
	if err != nil || done.State != client.StateExited || !done.Final() || done.Result == nil || done.Result.ExitCode != 0 ||
		done.EndedAt == nil || done.Stdout == nil || done.Stdout.Text != want || !done.Stdout.TextComplete ||
		done.Stdout.TotalBytes != int64(len(want)) || done.Stdout.Encoding != "utf-8" {
		t.Fatalf("Wait = %+v, %v", done, err)
	}
	if got, err := c.Get(ctx, task.ID); err != nil || got.State != client.StateExited || got.Stdout.Text != want {
		t.Errorf("Get = %+v, %v", got, err)
	}
	o, err := c.OpenOutput(ctx, task.ID, client.OutputOptions{Offset: 4, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(o); err != nil || string(b) != "two" || o.TotalBytes != int64(len(want)) || o.Truncated {
		t.Errorf("OpenOutput offset 4 limit 3 = %q %v (total %d, truncated %v)", b, err, o.TotalBytes, o.Truncated)
	}
	o.Close()

	r, err := c.Run(ctx, client.RunRequest{Command: "sh", Args: []string{"-c", "echo out; echo err >&2; exit 4"}, Labels: map[string]string{"ticket": "OPS-2"}})
	if err != nil || r.State != client.StateExited || r.Result.ExitCode != 4 || r.Stdout.Text != "out\n" || r.Stderr.Text != "err\n" {
		t.Errorf("Run = %+v, %v", r, err)
	}
	rc, err = c.Output(ctx, r.ID, "stderr", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rc); err != nil || string(b) != "err\n" {
		t.Errorf("Output stderr = %q, %v", b, err)
	}
	rc.Close()
	bin, err := c.Run(ctx, client.RunRequest{Command: "printf", Args: []string{`\377\376\000ok`}})
	if b, berr := bin.Stdout.Bytes(); err != nil || berr != nil || bin.Stdout.Encoding != "base64" || string(b) != "\xff\xfe\x00ok" {
		t.Errorf("binary output = %+v (%q, %v), %v", bin.Stdout, b, berr, err)
	}

	// List: by label, by state, page by page.
	tasks, next, err := c.List(ctx, client.ListOptions{Labels: map[string]string{"ticket": "OPS-1"}})
	if err != nil || len(tasks) != 1 || tasks[0].ID != task.ID || next != "" || tasks[0].Stdout != nil {
		t.Errorf("List by label = %+v %q, %v", tasks, next, err)
	}
	tasks, _, err = c.List(ctx, client.ListOptions{State: client.StateRunning})
	if err != nil || len(tasks) != 0 {
		t.Errorf("List running = %+v, %v", tasks, err)
	}
	var ids []string
	for tk, err := range c.All(ctx, client.ListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	if !slices.Equal(ids, []string{task.ID, r.ID, bin.ID}) {
		t.Errorf("All, one per page = %v, want %v", ids, []string{task.ID, r.ID, bin.ID})
	}

	// Signal the leader of a running task.
	sig, err := c.Start(ctx, client.RunRequest{Command: "trap 'echo got HUP; exit 3' HUP; echo ready; while :; do sleep 1; done", Shell: true})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, c, sig.ID, "ready\n")
	if err := c.Signal(ctx, sig.ID, "HUP", "leader"); err != nil {
		t.Fatal(err)
	}
	if sig, err = c.Wait(ctx, sig.ID); err != nil || sig.Result.ExitCode != 3 || sig.Stdout.Text != "ready\ngot HUP\n" {
		t.Errorf("after SIGHUP: %+v, %v", sig, err)
	}
	err = c.Signal(ctx, sig.ID, "SIGHUP", "")
	if e := apiError(t, err, 409); !errors.Is(err, client.ErrConflict) || e.Rule != "" {
		t.Errorf("Signal to an ended task = %v", err)
	}
	if err := c.Signal(ctx, sig.ID, "SIGNOPE", ""); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("Signal SIGNOPE = %v, want 400", err)
	}

	// Kill a running task; Kill does not purge an ended one, Delete does
	// not kill a running one.
	long, err := c.Start(ctx, client.RunRequest{Command: "sleep", Args: []string{"300"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, long.ID); !errors.Is(err, client.ErrConflict) {
		t.Errorf("Delete of a running task = %v, want ErrConflict", err)
	}
	if err := c.Kill(ctx, long.ID); err != nil {
		t.Fatal(err)
	}
	if long, err = c.Wait(ctx, long.ID); err != nil || long.State != client.StateKilled || !long.Result.Killed || !long.Result.Signaled ||
		long.Result.Signal != "SIGTERM" {
		t.Errorf("killed task = %+v %+v, %v", long, long.Result, err)
	}
	if err := c.Kill(ctx, long.ID); !errors.Is(err, client.ErrConflict) {
		t.Errorf("Kill of an ended task = %v, want ErrConflict", err)
	}
	if _, err := c.Get(ctx, long.ID); err != nil {
		t.Errorf("Kill purged the ended task: %v", err)
	}
	if err := c.Delete(ctx, long.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(ctx, long.ID)
	if apiError(t, err, 404); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Get of a deleted task = %v", err)
	}

	st, err := c.Status(ctx)
	if err != nil || st.Result != "ok" || st.Status != "active" || st.Release == "" || st.WorkDir == "" || st.Running != 0 ||
		st.Queued != 0 || st.Retained != 4 {
		t.Errorf("Status = %+v, %v", st, err)
	}
	if d, err := c.PolicyCheck(ctx, client.RunRequest{Command: "ls"}); err != nil || !d.Allowed || len(d.Checks) != 1 {
		t.Errorf("PolicyCheck without ACLs = %+v, %v", d, err)
	}
}

// Run returns at the context's deadline with the task as last seen.
func TestRunDeadline(t *testing.T) {
	h := startHost(t, nil)
	c := newClient(t, h)
	fifo, release := hosttest.Gate(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	task, err := c.Run(ctx, client.RunRequest{Command: "cat", Args: []string{fifo}})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrUnreachable) || task.ID == "" || task.State != client.StateRunning {
		t.Fatalf("Run past its deadline = %+v, %v", task, err)
	}
	release()
	if task, err = c.Wait(t.Context(), task.ID); err != nil || task.State != client.StateExited {
		t.Errorf("Wait = %+v, %v", task, err)
	}
}

// The seed API: execute, task by pid (pending, then ended), pids, kill.
func TestSeed(t *testing.T) {
	h := startHost(t, nil)
	c := newClient(t, h)
	ctx := t.Context()
	fifo, release := hosttest.Gate(t, "")
	pid, id, err := c.Execute(ctx, "cat", []string{fifo}, false, time.Minute)
	if err != nil || pid <= 0 || id == "" {
		t.Fatalf("Execute = %d %q, %v", pid, id, err)
	}
	if r, err := c.TaskByPid(ctx, pid); err != nil || !r.Pending || r.ID != id || r.Pid != pid || r.State != client.StateRunning {
		t.Errorf("TaskByPid while running = %+v, %v", r, err)
	}
	if pids, ids, err := c.Pids(ctx); err != nil || !slices.Equal(pids, []int{pid}) || !slices.Equal(ids, []string{id}) {
		t.Errorf("Pids = %v %v, %v", pids, ids, err)
	}
	release()
	if _, err := c.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r, err := c.TaskByPid(ctx, pid); err != nil || r.Pending || r.State != client.StateExited || !r.HasExitCode || r.ExitCode != 0 ||
		r.StdoutEncoding != "utf-8" || r.EndedAt == nil {
		t.Errorf("TaskByPid once ended = %+v, %v", r, err)
	}

	pid, id, err = c.Execute(ctx, "echo hi; echo oops >&2; exit 2", nil, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r, err := c.TaskByPid(ctx, pid); err != nil || r.ExitCode != 2 || r.Stdout != "hi\n" || r.Stderr != "oops\n" || r.StdoutBytes != 3 {
		t.Errorf("TaskByPid of a shell command = %+v, %v", r, err)
	}

	pid, id, err = c.Execute(ctx, "sleep", []string{"300"}, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.KillPid(ctx, pid, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r, err := c.TaskByPid(ctx, pid); err != nil || !r.Signaled || r.Signal != "SIGTERM" || r.SignalNumber != 15 || !r.Killed || r.State != client.StateKilled {
		t.Errorf("TaskByPid of a killed command = %+v, %v", r, err)
	}
	if err := c.KillPid(ctx, pid, "SIGKILL"); !errors.Is(err, client.ErrConflict) {
		t.Errorf("KillPid of an ended command = %v, want ErrConflict", err)
	}
	_, err = c.TaskByPid(ctx, 2147483647)
	if apiError(t, err, 404); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("TaskByPid of an unknown pid = %v", err)
	}
	_, _, err = c.Execute(ctx, "/no/such/program", nil, false, 0)
	if e := apiError(t, err, 400); !errors.Is(err, client.ErrBadRequest) || !strings.Contains(e.Message, "/no/such/program") {
		t.Errorf("Execute of a missing program = %v", err)
	}
}

// Errors: 400, 404, 429 with Retry-After, 202 for a queued task, an
// unreachable agent and a cancelled context.
func TestErrors(t *testing.T) {
	h := startHost(t, []string{"max_concurrent", "1", "max_queued", "1"})
	c := newClient(t, h)
	ctx := t.Context()

	_, err := c.Start(ctx, client.RunRequest{Command: ""})
	if e := apiError(t, err, 400); !errors.Is(err, client.ErrBadRequest) || !strings.Contains(e.Message, "command") ||
		!strings.HasPrefix(err.Error(), "400 Bad Request: command") {
		t.Errorf("Start without a command = %v", err)
	}
	if _, _, err := c.List(ctx, client.ListOptions{State: "done"}); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("List state=done = %v", err)
	}
	_, err = c.Get(ctx, "01h2x3y4z5a6b7c8d9e0f1g2h3")
	if apiError(t, err, 404); !errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrForbidden) {
		t.Errorf("Get of an unknown task = %v", err)
	}

	fifo, release := hosttest.Gate(t, "")
	first, err := c.Start(ctx, client.RunRequest{Command: "cat", Args: []string{fifo}})
	if err != nil || first.State != client.StateRunning {
		t.Fatalf("first = %+v, %v", first, err)
	}
	queued, err := c.Start(ctx, client.RunRequest{Command: "echo", Args: []string{"queued"}})
	if err != nil || queued.State != client.StateQueued || queued.Pid != 0 {
		t.Fatalf("second = %+v, %v; want queued", queued, err)
	}
	_, err = c.Start(ctx, client.RunRequest{Command: "true"})
	if e := apiError(t, err, 429); !errors.Is(err, client.ErrBusy) || e.RetryAfter != time.Second {
		t.Errorf("third = %v (Retry-After %v), want 429 after 1s", err, e.RetryAfter)
	}
	release()
	if q, err := c.Wait(ctx, queued.ID); err != nil || q.State != client.StateExited || q.Stdout.Text != "queued\n" {
		t.Errorf("queued task = %+v, %v", q, err)
	}

	// Nothing listens on a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	dead, err := client.New(closed)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dead.Status(ctx)
	var e *client.Error
	if !errors.Is(err, client.ErrUnreachable) || errors.As(err, &e) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Status of a closed port = %v, want ErrUnreachable", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Status(cctx); !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnreachable) {
		t.Errorf("Status with a cancelled context = %v", err)
	}
}

// credentialsFile writes the test's principals as Mesos's credentials
// JSON: alice, bob and ops.
func credentialsFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "credentials.json")
	b := `{"credentials":[{"principal":"alice","secret":"a:1"},{"principal":"bob","secret":"b"},{"principal":"ops","secret":"o"}]}`
	if err := os.WriteFile(path, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const denyRule = "permissive=false (no rule matched)"

// Through a host with basic authentication and --acls: 401 without or
// with wrong credentials, 403 with the ACL rule, and the policy check.
func TestAuthAndACLs(t *testing.T) {
	acls := `{"permissive":false,"run_remote_commands":[` +
		`{"principals":{"values":["alice"]},"commands":{"type":"ANY"}},` +
		`{"principals":{"values":["bob"]},"commands":{"values":["echo *"]}}],` +
		`"view_remote_tasks":[{"principals":{"type":"ANY"},"owners":{"values":["self"]}}]}`
	h := startHost(t, nil, "--http_credentials=file://"+credentialsFile(t), "--authenticate_http_readonly",
		"--authenticate_http_readwrite", "--acls="+acls)
	ctx := t.Context()
	anon := newClient(t, h)
	bob := newClient(t, h, client.WithBasicAuth("bob", "b"))
	alice := newClient(t, h, client.WithBasicAuth("alice", "a:1"))

	_, err := anon.Status(ctx)
	if e := apiError(t, err, 401); !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(e.Message, "authentication required") {
		t.Errorf("Status without credentials = %v", err)
	}
	_, err = newClient(t, h, client.WithBasicAuth("bob", "nope")).Start(ctx, client.RunRequest{Command: "echo"})
	if apiError(t, err, 401); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("Start with a wrong secret = %v", err)
	}

	_, err = bob.Start(ctx, client.RunRequest{Command: "ls"})
	if e := apiError(t, err, 403); !errors.Is(err, client.ErrForbidden) || e.Rule != denyRule || !strings.Contains(err.Error(), denyRule) ||
		!strings.Contains(e.Message, `principal "bob"`) {
		t.Errorf("bob runs ls = %v (rule %q)", err, e.Rule)
	}
	d, err := bob.PolicyCheck(ctx, client.RunRequest{Command: "ls", Args: []string{"-l"}})
	if err != nil || d.Allowed || d.Rule != denyRule || d.Principal != "bob" || !strings.HasSuffix(d.Command, "/ls") {
		t.Errorf("bob's policy check of ls = %+v, %v", d, err)
	}
	if checks, err := d.CheckList(); err != nil || len(checks) != 1 || checks[0].Action != "run_remote_commands" || checks[0].Allowed ||
		checks[0].Rule != denyRule || !strings.Contains(checks[0].Object, "-l") {
		t.Errorf("checks = %+v, %v", checks, err)
	}
	if d, err := bob.PolicyCheck(ctx, client.RunRequest{Command: "echo", Args: []string{"hi"}}); err != nil || !d.Allowed {
		t.Errorf("bob's policy check of echo hi = %+v, %v", d, err)
	}
	task, err := bob.Run(ctx, client.RunRequest{Command: "echo", Args: []string{"hi"}})
	if err != nil || task.Principal != "bob" || task.Stdout.Text != "hi\n" {
		t.Fatalf("bob runs echo hi = %+v, %v", task, err)
	}
	_, err = alice.Get(ctx, task.ID)
	if e := apiError(t, err, 403); !errors.Is(err, client.ErrForbidden) || e.Rule == "" {
		t.Errorf("alice reads bob's task = %v", err)
	}
	if tasks, _, err := alice.List(ctx, client.ListOptions{}); err != nil || len(tasks) != 0 {
		t.Errorf("alice lists = %+v, %v; want none of bob's", tasks, err)
	}
	if tasks, _, err := bob.List(ctx, client.ListOptions{}); err != nil || len(tasks) != 1 || tasks[0].ID != task.ID {
		t.Errorf("bob lists = %+v, %v", tasks, err)
	}
	if err := bob.Delete(ctx, task.ID); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("bob purges his task without kill_remote_tasks = %v", err)
	}
}

// HTTPS with a client certificate, which names the principal; the
// handshake refusals are transport failures.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	srv := ca.server(dir, "server")
	ops := ca.client(dir, "ops", "ops")
	stranger := newCA(t, dir, "other").client(dir, "stranger", "ops")
	h := startHost(t, nil, "--ssl_cert_file="+srv.Cert, "--ssl_key_file="+srv.Key, "--ssl_ca_file="+ca.File,
		"--http_credentials=file://"+credentialsFile(t), "--authenticate_http_readonly", "--authenticate_http_readwrite")
	ctx := t.Context()

	c, err := client.New(addr(h), client.WithTLS(ca.File, ops.Cert, ops.Key))
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://" + addr(h); c.Agent() != want {
		t.Errorf("Agent() = %q, want %q", c.Agent(), want)
	}
	if d, err := c.PolicyCheck(ctx, client.RunRequest{Command: "true"}); err != nil || d.Principal != "ops" {
		t.Errorf("principal over mTLS = %+v, %v; want ops", d, err)
	}
	fifo, release := hosttest.Gate(t, "")
	task, err := c.Start(ctx, client.RunRequest{Command: fmt.Sprintf("echo a; cat %s; echo b", fifo), Shell: true})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Output(ctx, task.ID, "stdout", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(rc)
	if line, err := rd.ReadString('\n'); err != nil || line != "a\n" {
		t.Fatalf("followed over TLS: %q, %v", line, err)
	}
	release()
	if rest, err := io.ReadAll(rd); err != nil || string(rest) != "b\n" {
		t.Errorf("rest followed over TLS: %q, %v", rest, err)
	}
	rc.Close()
	if task, err = c.Wait(ctx, task.ID); err != nil || task.Principal != "ops" || task.State != client.StateExited {
		t.Errorf("task over TLS = %+v, %v", task, err)
	}
	both, err := client.New("https://"+addr(h), client.WithTLS(ca.File, ops.Cert, ops.Key), client.WithBasicAuth("bob", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := both.PolicyCheck(ctx, client.RunRequest{Command: "true"}); err != nil || d.Principal != "bob" {
		t.Errorf("basic credentials over the certificate: %+v, %v; want bob", d, err)
	}

	for name, opt := range map[string]client.Option{
		"no certificate":           client.WithTLS(ca.File, "", ""),
		"another CA's certificate": client.WithTLS(ca.File, stranger.Cert, stranger.Key),
		"the system's roots":       client.WithTLS("", ops.Cert, ops.Key),
	} {
		c, err := client.New(addr(h), opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Status(ctx); !errors.Is(err, client.ErrUnreachable) {
			t.Errorf("%s: %v, want ErrUnreachable", name, err)
		}
	}
}

// New's agent forms and option checks, and Error's text.
func TestNew(t *testing.T) {
	for _, c := range []struct {
		agent string
		opts  []client.Option
		want  string
	}{
		{"127.0.0.1:5051", nil, "http://127.0.0.1:5051"},
		{"[::1]:5051", nil, "http://[::1]:5051"},
		{"agent.example:5051", []client.Option{client.WithTLS("", "", "")}, "https://agent.example:5051"},
		{"https://agent.example:5051/", nil, "https://agent.example:5051"},
		{"http://proxy.example/agents/a1/", nil, "http://proxy.example/agents/a1"},
	} {
		cl, err := client.New(c.agent, c.opts...)
		if err != nil || cl.Agent() != c.want {
			t.Errorf("New(%q).Agent() = %v, %v; want %q", c.agent, cl, err, c.want)
		} else if cl.Agent() != c.want {
			t.Errorf("New(%q).Agent() = %q, want %q", c.agent, cl.Agent(), c.want)
		}
	}
	missing := filepath.Join(t.TempDir(), "none.pem")
	for name, c := range map[string]struct {
		agent string
		opts  []client.Option
	}{
		"scheme":           {"ftp://agent:21", nil},
		"no host":          {"http://", nil},
		"credentials":      {"http://u:p@agent:1", nil},
		"query":            {"http://agent:1/?x=1", nil},
		"TLS over http":    {"http://agent:1", []client.Option{client.WithTLS("", "", "")}},
		"cert without key": {"agent:1", []client.Option{client.WithTLS("", "cert.pem", "")}},
		"missing CA":       {"agent:1", []client.Option{client.WithTLS(missing, "", "")}},
		"foreign transport": {"agent:1", []client.Option{client.WithHTTPClient(&http.Client{Transport: &recorder{}}),
			client.WithTLS("", "", "")}},
	} {
		if _, err := client.New(c.agent, c.opts...); err == nil {
			t.Errorf("%s: New(%q) accepted", name, c.agent)
		}
	}

	e := &client.Error{StatusCode: 403, Message: "principal \"bob\" may not run ls", Rule: "permissive=false"}
	if got, want := e.Error(), `403 Forbidden: principal "bob" may not run ls (rule: permissive=false)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("remotectl: %w", e)
	for sentinel, want := range map[error]bool{client.ErrForbidden: true, client.ErrUnauthorized: false, client.ErrNotFound: false, client.ErrUnreachable: false} {
		if errors.Is(wrapped, sentinel) != want {
			t.Errorf("errors.Is(403, %v) = %v", sentinel, !want)
		}
	}
	for code, sentinel := range map[int]error{401: client.ErrUnauthorized, 404: client.ErrNotFound, 429: client.ErrBusy, 503: client.ErrUnavailable, 409: client.ErrConflict, 400: client.ErrBadRequest} {
		if !errors.Is(&client.Error{StatusCode: code}, sentinel) {
			t.Errorf("errors.Is(%d, %v) = false", code, sentinel)
		}
	}
	if b, _ := json.Marshal(client.Task{ID: "x", Replayed: true}); strings.Contains(string(b), "eplayed") {
		t.Errorf("Replayed is marshalled: %s", b)
	}
}
