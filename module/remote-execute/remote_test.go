package main

import (
	"bufio"
	"encoding/json"
	"errors"
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

	"golang.org/x/sys/unix"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/sdk/sdktest"
)

// The seed README's examples, through the real host and module.
func TestSeedExamples(t *testing.T) {
	sandbox := t.TempDir()
	h := startRemote(t, nil, "--sandbox_directory="+sandbox)

	code, b := h.Get("/remote/status")
	st := hosttest.Decode(t, b)
	if code != 200 || st["result"] != "ok" || st["status"] != "active" || st["work_dir"] != h.WorkDir ||
		st["sandbox_dir"] != sandbox || st["release"] == nil {
		t.Errorf("GET /remote/status = %d %v", code, st)
	}

	pid, id := execute(t, h, `{"command":"ls","arguments":["-la","/tmp"]}`)
	waitTask(t, h, id)
	code, res := seedTask(t, h, pid)
	if code != 200 || res["exitCode"] != 0.0 || res["signaled"] != false || !strings.HasPrefix(res["stdout"].(string), "total ") || res["stderr"] != "" {
		t.Errorf("ls -la /tmp: %d %v", code, res)
	}

	pid, id = execute(t, h, `{"command":"echo","arguments":["$PATH"]}`)
	waitTask(t, h, id)
	if _, res = seedTask(t, h, pid); res["stdout"] != "$PATH\n" {
		t.Errorf(`echo "$PATH" printed %q, want the literal $PATH`, res["stdout"])
	}

	pid, id = execute(t, h, `{"command":"ls /foo/bar","shell":true}`)
	waitTask(t, h, id)
	if code, res = seedTask(t, h, pid); code != 200 || res["exitCode"] != 2.0 || res["signaled"] != false ||
		!strings.Contains(res["stderr"].(string), "No such file") || res["state"] != "exited" {
		t.Errorf("ls /foo/bar: %d %v", code, res)
	}

	pid, id = execute(t, h, `{"command":"sleep","arguments":["30"],"timeout":1}`)
	if code, res = seedTask(t, h, pid); code != 200 || res["result"] != "pending" || res["pid"] != float64(pid) {
		t.Errorf("a running command: %d %v, want pending", code, res)
	}
	waitTask(t, h, id)
	if _, res = seedTask(t, h, pid); res["signaled"] != true || res["exitCode"] != 15.0 || res["signal"] != "SIGTERM" ||
		res["timedOut"] != true || res["state"] != "timed_out" {
		t.Errorf("timed-out sleep: %v", res)
	}

	code, b = h.Get("/remote/task")
	var list struct{ Pids []int }
	if err := json.Unmarshal([]byte(b), &list); err != nil || code != 200 || !slices.Contains(list.Pids, pid) || len(list.Pids) != 4 {
		t.Errorf("GET /remote/task = %d %s", code, b)
	}

	if code, res = seedTask(t, h, 999999999); code != 404 || !strings.Contains(res["error"].(string), "999999999") {
		t.Errorf("unknown pid: %d %v", code, res)
	}
}

// Killing through the seed's /kill, and the whole tree on a timeout.
func TestKillAndProcessTree(t *testing.T) {
	h := startRemote(t, []string{"kill_grace_period", "1s"})

	pid, id := execute(t, h, `{"command":"sh -c 'sleep 300 & sleep 300'","shell":true,"timeout":1}`)
	res := waitTask(t, h, id)
	if res["state"] != "timed_out" {
		t.Errorf("state = %v, want timed_out", res["state"])
	}
	if left := groupAlive(t, pid); len(left) > 0 {
		t.Errorf("processes of the timed-out task still running: %v", left)
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}

	pid, id = execute(t, h, `{"command":"sleep","arguments":["300"]}`)
	if code, m := post(t, h, "/remote/kill", fmt.Sprintf(`{"pid":%d}`, pid)); code != 200 || m["result"] != "OK" {
		t.Fatalf("kill = %d %v", code, m)
	}
	if res = waitTask(t, h, id); res["state"] != "killed" || res["result"].(map[string]any)["signal"] != "SIGTERM" {
		t.Errorf("killed task: %v", res)
	}
	if code, m := post(t, h, "/remote/kill", fmt.Sprintf(`{"pid":%d}`, pid)); code != 409 {
		t.Errorf("killing a finished task = %d %v, want 409", code, m)
	}

	// A command that ignores SIGTERM is SIGKILLed after the grace period.
	_, id = execute(t, h, `{"command":"trap '' TERM; echo ready; sleep 300","shell":true,"timeout":1}`)
	if res = waitTask(t, h, id); res["state"] != "timed_out" || res["result"].(map[string]any)["killEscalated"] != true {
		t.Errorf("a command ignoring SIGTERM: %v", res)
	}
}

// Commands that cannot start are rejected at once, naming the cause, and
// leave no task behind; bad requests are 4xx with a JSON error.
func TestRejections(t *testing.T) {
	h := startRemote(t, []string{"max_timeout", "1h"})
	for _, tc := range []struct {
		method, path, ctype, body string
		code                      int
		want                      string
	}{
		{"POST", "/remote/execute", "application/json", `{"command":"no-such-command-here"}`, 400, "no-such-command-here"},
		{"POST", "/remote/execute", "application/json", `{"command":"/etc/passwd"}`, 400, "/etc/passwd"},
		{"POST", "/remote/tasks", "application/json", `{"command":"ls","cwd":"/no/such/dir"}`, 400, "/no/such/dir"},
		{"POST", "/remote/tasks", "application/json", `{"command":"ls","user":"no-such-user-xyz"}`, 400, "no-such-user-xyz"},
		{"POST", "/remote/execute", "application/json", `{"command":`, 400, ""},
		{"POST", "/remote/execute", "application/json", `{"comand":"ls"}`, 400, "comand"},
		{"POST", "/remote/execute", "application/json", `{"command":"ls","timeout":-1}`, 400, "timeout"},
		{"POST", "/remote/execute", "application/json", `{"command":"ls","timeout":7200}`, 400, "timeout"},
		{"POST", "/remote/execute", "application/json", `{"command":"ls","arguments":["a\u0000b"]}`, 400, "NUL"},
		{"POST", "/remote/execute", "application/json", ``, 400, ""},
		{"POST", "/remote/task", "application/json", `{"pid":"12"}`, 400, "pid"},
		{"POST", "/remote/tasks", "text/plain", `{"command":"ls"}`, 415, "Content-Type"},
		{"POST", "/remote/execute", "application/x-www-form-urlencoded", `{"command":"true"}`, 200, ""}, // curl -d
		{"GET", "/remote/tasks/00000000000000000000000000", "", ``, 404, "00000000000000000000000000"},
		{"GET", "/remote/tasks/x/stdin", "", ``, 404, "stdin"},
		{"POST", "/remote/tasks/00000000000000000000000000/signal", "application/json", `{"signal":"SIGNOPE"}`, 400, "SIGNOPE"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), tc.method, h.URL+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s %s = %d %s, want %d", tc.method, tc.path, tc.body, resp.StatusCode, b, tc.code)
			continue
		}
		if tc.code >= 400 {
			m := hosttest.Decode(t, string(b))
			if msg, _ := m["error"].(string); msg == "" || !strings.Contains(msg, tc.want) {
				t.Errorf("%s %s %s: error %q does not mention %q", tc.method, tc.path, tc.body, msg, tc.want)
			}
		}
	}
	// Wrong method and unknown paths under /remote/ are JSON errors too
	// (the host's route table answers them; see internal/wire).
	for _, tc := range []struct {
		method, path, allow string
		code                int
	}{
		{"GET", "/remote/execute", "POST", 405},
		{"DELETE", "/remote/status", "GET", 405},
		{"GET", "/remote/no-such-route", "", 404},
		{"GET", "/remote/tasks/x/y/z", "", 404},
	} {
		resp, b := h.Request(tc.method, tc.path, nil)
		var m map[string]any
		if resp.StatusCode != tc.code || !strings.Contains(resp.Header.Get("Allow"), tc.allow) ||
			resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(b), &m) != nil || m["error"] == nil {
			t.Errorf("%s %s = %d Allow %q %q %s, want %d with a JSON error", tc.method, tc.path, resp.StatusCode,
				resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), b, tc.code)
		}
	}
	code, b := h.Get("/remote/task")
	if m := hosttest.Decode(t, b); code != 200 || len(m["pids"].([]any)) != 1 {
		t.Errorf("rejected commands left tasks behind: %s", b)
	}
}

// REST: ids, env, cwd, stdin, labels, listing, long-poll, follow, signal,
// delete, idempotency.
func TestTasksAPI(t *testing.T) {
	h := startRemote(t, nil)
	dir := t.TempDir()
	fifo, release := hosttest.Gate(t, filepath.Join(dir, "go"))
	body := fmt.Sprintf(`{"command":"echo one; read x < %s; echo two; cat; echo $GREETING; pwd","shell":true,`+
		`"env":{"GREETING":"hi"},"cwd":%q,"stdin":"aW5wdXQK","labels":{"ticket":"OPS-1"},"idempotency_key":"k1"}`, fifo, dir)
	code, task := post(t, h, "/remote/tasks", body)
	if code != 201 || task["state"] != "running" {
		t.Fatalf("POST /remote/tasks = %d %v", code, task)
	}
	id := task["id"].(string)
	if code, again := post(t, h, "/remote/tasks", body); code != 200 || again["id"] != id {
		t.Errorf("the same idempotency key started another task: %d %v", code, again)
	}

	// Follow stdout: "one" arrives while the task waits on the FIFO.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/remote/tasks/"+id+"/stdout?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if line, err := rd.ReadString('\n'); err != nil || line != "one\n" {
		t.Fatalf("first followed line = %q, %v", line, err)
	}
	release()
	rest, err := io.ReadAll(rd)
	if want := "two\ninput\nhi\n" + dir + "\n"; err != nil || string(rest) != want {
		t.Errorf("rest of the followed stream = %q, %v; want %q", rest, err, want)
	}

	res := waitTask(t, h, id)
	if res["state"] != "exited" || res["stdout"].(map[string]any)["text"] != "one\ntwo\ninput\nhi\n"+dir+"\n" {
		t.Errorf("task = %v", res)
	}
	code, b := h.Get("/remote/tasks/" + id + "/stdout?offset=4&limit=3")
	if code != 200 || b != "two" {
		t.Errorf("stdout?offset=4&limit=3 = %d %q", code, b)
	}
	code, b = h.Get("/remote/tasks?label=ticket=OPS-1")
	if list := hosttest.Decode(t, b)["tasks"].([]any); code != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != id {
		t.Errorf("list by label = %d %s", code, b)
	}

	// Signal a running task; delete kills it, then purges it.
	_, task = post(t, h, "/remote/tasks", `{"command":"trap 'echo got HUP; exit 3' HUP; echo ready; while :; do sleep 1; done","shell":true}`)
	id = task["id"].(string)
	waitLine(t, h, id, "ready\n")
	if code, m := post(t, h, "/remote/tasks/"+id+"/signal", `{"signal":"SIGHUP","scope":"leader"}`); code != 200 {
		t.Fatalf("signal = %d %v", code, m)
	}
	if res = waitTask(t, h, id); res["result"].(map[string]any)["exitCode"] != 3.0 {
		t.Errorf("after SIGHUP: %v", res)
	}
	if code, _ := h.Do("DELETE", "/remote/tasks/"+id, nil); code != 204 {
		t.Errorf("DELETE finished task = %d, want 204", code)
	}
	if code, _ := h.Get("/remote/tasks/" + id); code != 404 {
		t.Errorf("GET deleted task = %d, want 404", code)
	}
	_, task = post(t, h, "/remote/tasks", `{"command":"sleep","arguments":["300"]}`)
	id = task["id"].(string)
	if code, _ := h.Do("DELETE", "/remote/tasks/"+id, nil); code != 202 {
		t.Errorf("DELETE running task = %d, want 202", code)
	}
	if res = waitTask(t, h, id); res["state"] != "killed" {
		t.Errorf("deleted running task: %v", res)
	}
}

// Output is binary safe: raw bytes from the raw endpoint, base64 in JSON.
func TestBinaryOutput(t *testing.T) {
	h := startRemote(t, nil)
	pid, id := execute(t, h, `{"command":"printf","arguments":["\\377\\376\\000ok"]}`)
	res := waitTask(t, h, id)
	want := "\xff\xfe\x00ok"
	if code, raw := h.Get("/remote/tasks/" + id + "/stdout"); code != 200 || raw != want {
		t.Errorf("raw stdout = %d %q, want %q", code, raw, want)
	}
	if out := res["stdout"].(map[string]any); out["encoding"] != "base64" || out["text"] != "//4Ab2s=" {
		t.Errorf("JSON stdout = %v, want base64 //4Ab2s=", out)
	}
	if _, seed := seedTask(t, h, pid); seed["stdout"] != "//4Ab2s=" || seed["stdoutEncoding"] != "base64" {
		t.Errorf("seed stdout = %q (encoding %v)", seed["stdout"], seed["stdoutEncoding"])
	}
	big := strings.NewReader(`{"command":"echo","arguments":["` + strings.Repeat("x", 9<<20) + `"]}`)
	if code, b := h.Do("POST", "/remote/execute", big); code != 413 || !strings.Contains(b, "error") {
		t.Errorf("9 MiB body = %d %.200s, want 413", code, b)
	}
}

// POST /remote/tasks?wait= runs a command and returns its outcome in one
// round trip.
func TestCreateAndWait(t *testing.T) {
	h := startRemote(t, nil)
	code, res := post(t, h, "/remote/tasks?wait=60s", `{"command":"sh","arguments":["-c","echo done; exit 4"]}`)
	if code != 201 || res["state"] != "exited" || res["result"].(map[string]any)["exitCode"] != 4.0 || res["version"] != nil || res["startTicks"] != nil ||
		res["stdout"].(map[string]any)["text"] != "done\n" {
		t.Errorf("POST /remote/tasks?wait=60s = %d %v", code, res)
	}
	if code, res := post(t, h, "/remote/tasks?wait=soon", `{"command":"true"}`); code != 400 || !strings.Contains(res["error"].(string), "wait") {
		t.Errorf("a bad wait = %d %v", code, res)
	}
}

// waitLine follows a task's stdout until it has printed want.
func waitLine(t *testing.T, h *hosttest.Host, id, want string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/remote/tasks/"+id+"/stdout?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(want))))
	if err != nil || string(got) != want {
		t.Fatalf("followed stdout = %q, %v; want %q", got, err, want)
	}
}

// Over max_concurrent and max_queued: 429 with Retry-After; the queued
// task runs when a slot frees.
func TestOverload(t *testing.T) {
	h := startRemote(t, []string{"max_concurrent", "1", "max_queued", "1"})
	fifo, release := hosttest.Gate(t, "")
	code, first := post(t, h, "/remote/tasks", fmt.Sprintf(`{"command":"cat","arguments":[%q]}`, fifo))
	if code != 201 {
		t.Fatalf("first = %d %v", code, first)
	}
	code, second := post(t, h, "/remote/tasks", `{"command":"echo","arguments":["queued"]}`)
	if code != 202 || second["state"] != "queued" {
		t.Fatalf("second = %d %v, want 202 queued", code, second)
	}
	resp, b := h.Request("POST", "/remote/tasks", strings.NewReader(`{"command":"true"}`))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(b, "error") {
		t.Errorf("third = %d %s (Retry-After %q), want 429 with Retry-After", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	release()
	if res := waitTask(t, h, second["id"].(string)); res["state"] != "exited" || res["stdout"].(map[string]any)["text"] != "queued\n" {
		t.Errorf("queued task = %v", res)
	}
}

// follow=true on a queued task answers at once, waits for the task to
// start, then streams its output to the end, offset and limit applied.
// The only slot is held by a task blocked on a FIFO, so the followers are
// known to be waiting (their headers are in) when it is released.
func TestFollowQueuedTask(t *testing.T) {
	h := startRemote(t, []string{"max_concurrent", "1"})
	_, release := fifoTask(t, h)
	code, queued := post(t, h, "/remote/tasks", `{"command":"echo","arguments":["hello"]}`)
	if code != 202 || queued["state"] != "queued" {
		t.Fatalf("the second task = %d %v, want 202 queued", code, queued)
	}
	id := queued["id"].(string)
	follow := func(query string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/remote/tasks/"+id+"/stdout?follow=true"+query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 {
			t.Fatalf("follow%s = %d", query, resp.StatusCode)
		}
		return resp
	}
	whole, part, again := follow(""), follow("&offset=1&limit=3"), follow("&offset=0")
	stderrReq, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/remote/tasks/"+id+"/stderr?follow=true", nil)
	errResp, err := http.DefaultClient.Do(stderrReq)
	if err != nil {
		t.Fatal(err)
	}
	defer errResp.Body.Close()
	release()
	for _, c := range []struct {
		name string
		resp *http.Response
		want string
	}{{"stdout", whole, "hello\n"}, {"stdout offset=1 limit=3", part, "ell"}, {"stdout offset=0", again, "hello\n"}, {"stderr", errResp, ""}} {
		b, err := io.ReadAll(c.resp.Body)
		if err != nil || string(b) != c.want {
			t.Errorf("follow %s of a queued task = %q, %v; want %q", c.name, b, err, c.want)
		}
	}
	// The follow ended with the task: its result is reported.
	if code, b := h.Get("/remote/tasks/" + id); code != 200 || hosttest.Decode(t, b)["state"] != "exited" {
		t.Errorf("after the follow: %d %s", code, b)
	}
}

// Results survive kill -9 of the module and of the host; a task running
// when the module died is reported lost, with its partial output, and
// nothing of it keeps running.
func TestPersistence(t *testing.T) {
	work := hosttest.ShortTemp(t)
	h := startRemote(t, nil, "--work_dir="+work)
	pid, id := execute(t, h, `{"command":"printf 'out\n'; printf 'err\n' >&2; exit 7","shell":true}`)
	waitTask(t, h, id)
	_, before := seedTask(t, h, pid)

	_, task := post(t, h, "/remote/tasks", `{"command":"sleep 300 & echo partial; wait","shell":true}`)
	running := task["id"].(string)
	runningPid := int(task["pid"].(float64))
	waitLine(t, h, running, "partial\n")
	leftovers := members(t, runningPid) // the shell, and its sleep once forked

	code, b := h.Get("/state")
	modPid := int(hosttest.Decode(t, b)["modules"].([]any)[0].(map[string]any)["pid"].(float64))
	from := h.Logs.Len()
	if err := syscall.Kill(modPid, syscall.SIGKILL); err != nil || code != 200 {
		t.Fatal(err)
	}
	if _, err := h.Logs.WaitFrom(from, regexp.MustCompile(`module serving: .*restarts=1\b`), h.Exited); err != nil {
		t.Fatal(err)
	}
	if _, after := seedTask(t, h, pid); toJSON(after) != toJSON(before) {
		t.Errorf("after kill -9 of the module:\n%v\nbefore:\n%v", after, before)
	}
	lost := waitTask(t, h, running)
	if lost["state"] != "lost" || lost["stdout"].(map[string]any)["text"] != "partial\n" || lost["error"] == nil {
		t.Errorf("task running at the crash = %v", lost)
	}
	hosttest.WaitGone(t, runningPid, "a lost task's process")
	waitFds(t, leftovers, "a lost task's group")
	if left := groupAlive(t, runningPid); len(left) > 0 {
		t.Errorf("processes of the lost task's group left: %v", left)
	}

	// Now the host: SIGKILL it, start another on the same work_dir.
	if err := h.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.Exited
	h2 := startRemote(t, nil, "--work_dir="+work)
	if _, after := seedTask(t, h2, pid); toJSON(after) != toJSON(before) {
		t.Errorf("after kill -9 of the host:\n%v\nbefore:\n%v", after, before)
	}
	if before["exitCode"] != 7.0 || before["stdout"] != "out\n" || before["stderr"] != "err\n" {
		t.Errorf("result = %v", before)
	}
}

// Finished tasks beyond max_tasks go, oldest first, with their files, by
// the time the newest result is reported.
func TestRetentionMaxTasks(t *testing.T) {
	h := startRemote(t, []string{"max_tasks", "2"})
	var ids []string
	for i := range 5 {
		_, id := execute(t, h, fmt.Sprintf(`{"command":"echo","arguments":["%d"]}`, i))
		waitTask(t, h, id)
		ids = append(ids, id)
	}
	code, b := h.Get("/remote/tasks")
	var got []string
	for _, x := range hosttest.Decode(t, b)["tasks"].([]any) {
		got = append(got, x.(map[string]any)["id"].(string))
	}
	if want := ids[3:]; code != 200 || !slices.Equal(got, want) {
		t.Errorf("tasks kept = %v, want the newest two %v (all: %v)", got, want, ids)
	}
	dirs, _ := filepath.Glob(filepath.Join(h.WorkDir, "modules", "*", "tasks", "*"))
	var kept []string
	for _, d := range dirs {
		kept = append(kept, filepath.Base(d))
	}
	slices.Sort(kept)
	if !slices.Equal(kept, ids[3:]) {
		t.Errorf("task directories left: %v, want %v", kept, ids[3:])
	}
	if code, b := h.Get("/remote/task"); code != 200 || len(hosttest.Decode(t, b)["pids"].([]any)) != 2 {
		t.Errorf("GET /remote/task = %d %s, want two pids", code, b)
	}
}

// A command writing 1 GiB: stored head and tail, counted whole, and the
// module's peak RSS grows by a few MiB at most. The binaries are built
// without -race for this one: the race runtime's own memory would hide
// what is measured.
func TestOutputCap(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB through a pipe")
	}
	dir := t.TempDir()
	const mod = "github.com/execmod/execmod"
	for name, pkg := range map[string]string{"modhost": mod + "/host", "remote-execute": mod + "/module/remote-execute"} {
		cmd := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(dir, name), pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	desc := strings.Replace(remoteJSON("max_output_bytes", "1MB"), filepath.Join(bins, "remote-execute"), filepath.Join(dir, "remote-execute"), 1)
	h := hosttest.Start(t, filepath.Join(dir, "modhost"), nil, "--modules="+desc)
	code, b := h.Get("/state")
	modPid := int(hosttest.Decode(t, b)["modules"].([]any)[0].(map[string]any)["pid"].(float64))
	_, id := execute(t, h, `{"command":"echo","arguments":["warm-up"]}`) // the peak of serving a task
	waitTask(t, h, id)
	idle := peakRSS(t, modPid)
	_, id = execute(t, h, `{"command":"head","arguments":["-c","1073741824","/dev/zero"],"timeout":600}`)
	res := waitTask(t, h, id)
	out := res["stdout"].(map[string]any)
	if code != 200 || res["state"] != "exited" || out["totalBytes"] != float64(1<<30) || out["truncated"] != true ||
		out["storedBytes"].(float64) > 1<<20 {
		t.Errorf("1 GiB task = %v", res)
	}
	after := peakRSS(t, modPid)
	if grew := after - idle; grew > 8<<20 {
		t.Errorf("the module's peak RSS grew by %.1f MiB while capturing 1 GiB (idle %d MiB)", float64(grew)/(1<<20), idle>>20)
	}
	t.Logf("module peak RSS: idle %.1f MiB, after 1 GiB %.1f MiB", float64(idle)/(1<<20), float64(after)/(1<<20))
}

// peakRSS reads a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// fifoTask starts, through POST /remote/tasks, a task that blocks reading
// a FIFO, and returns its id and a release func that lets it end.
func fifoTask(t *testing.T, h *hosttest.Host) (string, func()) {
	t.Helper()
	fifo, release := hosttest.Gate(t, "")
	code, m := post(t, h, "/remote/tasks", fmt.Sprintf(`{"command":"cat","arguments":[%q]}`, fifo))
	if code != 201 || m["state"] != "running" {
		t.Fatalf("the FIFO task = %d %v", code, m)
	}
	return m["id"].(string), release
}

// With the only slot taken, a command that cannot start is still refused
// at once with a 400 naming the cause, not queued; one that passed the
// checks but cannot start when its turn comes ends failed_to_start.
func TestStartFailuresWhenQueued(t *testing.T) {
	h := startRemote(t, []string{"max_concurrent", "1", "max_queued", "8"})
	busy, release := fifoTask(t, h)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, body, want string }{
		{"/remote/execute", `{"command":"no-such-command-here"}`, `executable file not found: "no-such-command-here"`},
		{"/remote/execute", fmt.Sprintf(`{"command":%q}`, plain), "permission denied: " + plain + " is not executable"},
		{"/remote/execute", `{"command":"/etc"}`, "/etc is a directory"},
		{"/remote/tasks", `{"command":"ls","cwd":"/no/such/dir"}`, `working directory "/no/such/dir"`},
		{"/remote/tasks", `{"command":"ls","cwd":"/etc/passwd"}`, "not a directory"},
		{"/remote/tasks", `{"command":"ls","user":"no-such-user-xyz"}`, `unknown user "no-such-user-xyz"`},
	} {
		// /execute waits for a queued task to start: without the check
		// this request would hang until the FIFO task ends.
		if code, m := post(t, h, tc.path, tc.body); code != 400 || !strings.Contains(fmt.Sprint(m["error"]), tc.want) {
			t.Errorf("POST %s %s = %d %v, want 400 saying %q", tc.path, tc.body, code, m, tc.want)
		}
	}
	code, b := h.Get("/remote/tasks")
	if list := hosttest.Decode(t, b)["tasks"].([]any); code != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != busy {
		t.Errorf("refused commands left tasks behind: %s", b)
	}

	// Passes the checks, then vanishes before its turn.
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, m := post(t, h, "/remote/tasks", fmt.Sprintf(`{"command":%q}`, script))
	if code != 202 || m["state"] != "queued" {
		t.Fatalf("a queued task = %d %v, want 202 queued", code, m)
	}
	queued := m["id"].(string)
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	release()
	res := waitTask(t, h, queued)
	if res["state"] != "failed_to_start" || !strings.Contains(fmt.Sprint(res["error"]), "executable file not found: "+script) ||
		res["pid"] != nil || res["stdout"] != nil {
		t.Errorf("a queued task whose executable vanished = %v, want failed_to_start naming %s", res, script)
	}
	if res := waitTask(t, h, busy); res["state"] != "exited" {
		t.Errorf("the FIFO task = %v", res)
	}
	if code, b := h.Get("/metrics/snapshot"); code != 200 || !strings.Contains(b, "tasks_failed_to_start") {
		t.Logf("metrics: %d %.300s", code, b)
	}
}

// The Mesos CommandInfo form through the host: environment.variables
// reach the command; EXECUTE_TIMEOUT_SEC is its timeout.
func TestCommandInfo(t *testing.T) {
	h := startRemote(t, []string{"kill_grace_period", "1s"})
	pid, id := execute(t, h, `{"value":"echo \"$GREETING, $WHO\"","shell":true,`+
		`"environment":{"variables":[{"name":"GREETING","value":"hello"},{"name":"WHO","value":"mesos"}]}}`)
	waitTask(t, h, id)
	if code, res := seedTask(t, h, pid); code != 200 || res["stdout"] != "hello, mesos\n" || res["exitCode"] != 0.0 {
		t.Errorf("CommandInfo with environment: %d %v", code, res)
	}
	_, id = execute(t, h, `{"value":"/bin/sleep","arguments":["sleep","300"],"shell":false,`+
		`"environment":{"variables":[{"name":"EXECUTE_TIMEOUT_SEC","value":"1"}]}}`)
	res := waitTask(t, h, id)
	if r := res["result"].(map[string]any); res["state"] != "timed_out" || r["timedOut"] != true || r["signal"] != "SIGTERM" {
		t.Errorf("CommandInfo with EXECUTE_TIMEOUT_SEC=1: %v", res)
	}
	if code, m := post(t, h, "/remote/execute", `{"value":"true","environment":{"variables":[{"name":"EXECUTE_TIMEOUT_SEC","value":"soon"}]}}`); code != 400 ||
		!strings.Contains(fmt.Sprint(m["error"]), "EXECUTE_TIMEOUT_SEC") {
		t.Errorf("a bad EXECUTE_TIMEOUT_SEC = %d %v", code, m)
	}
}

// GET /tasks/{id}?wait=10m returns when the task ends: the request
// completes within the test's own deadline, long before ten minutes, and
// answers with the end, so it did not return early either.
func TestLongPollReturnsAtEnd(t *testing.T) {
	h := startRemote(t, nil)
	id, release := fifoTask(t, h)
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/remote/tasks/"+id+"?wait=10m", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- answer{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(b)}
	}()
	release()
	select {
	case a := <-got:
		if m := hosttest.Decode(t, a.body); a.code != 200 || m["state"] != "exited" {
			t.Errorf("long poll = %d %v, want the ended task", a.code, m)
		}
	case <-t.Context().Done():
		t.Fatal("the long poll did not return when the task ended")
	}
}

// Tasks inherit only the module environment variables env_allowlist
// names (the host passes modules PATH, HOME, LANG, TZ and a few more);
// PATH falls back to the system's.
func TestEnvAllowlist(t *testing.T) {
	env := []string{"LANG=xx_TEST.UTF-8", "TZ=Test/Zone", "HOME=/tmp/home-of-the-test"}
	for _, tc := range []struct {
		allow     []string
		want, not []string
	}{
		{nil, []string{"LANG=xx_TEST.UTF-8", "TZ=Test/Zone", "PATH=/"}, []string{"HOME="}},
		{[]string{"env_allowlist", "HOME"}, []string{"HOME=/tmp/home-of-the-test", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, []string{"LANG=", "TZ="}},
	} {
		h := hosttest.Start(t, filepath.Join(bins, "modhost"), env, "--modules="+remoteJSON(tc.allow...))
		_, id := execute(t, h, `{"command":"env"}`)
		waitTask(t, h, id)
		_, out := h.Get("/remote/tasks/" + id + "/stdout")
		lines := strings.Split(out, "\n")
		for _, w := range tc.want {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
				t.Errorf("allowlist %v: the task's environment lacks %s:\n%s", tc.allow, w, out)
			}
		}
		for _, n := range tc.not {
			if slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, n) }) {
				t.Errorf("allowlist %v: the task's environment has %s:\n%s", tc.allow, n, out)
			}
		}
	}
}

// members opens a pidfd on every live process of group pgid, so their
// end can be waited for (and a reused pid is never mistaken for them).
func members(t *testing.T, pgid int) map[int]int {
	t.Helper()
	fds := map[int]int{}
	for _, pid := range groupAlive(t, pgid) {
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			fds[pid] = fd
			t.Cleanup(func() {
				unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
				unix.Close(fd)
			})
		}
	}
	return fds
}

// waitFds waits on each pidfd until its process has exited; it fails the
// test for any still running after 30s.
func waitFds(t *testing.T, fds map[int]int, what string) {
	t.Helper()
	for pid, fd := range fds {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(p, 30_000)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || n == 0 {
				t.Errorf("%s: process %d still runs 30s later (%v)", what, pid, err)
			}
			break
		}
	}
}

// kill -9 of the host: the module dies with it (Pdeathsig) and its
// sentinel kills what its tasks started in the background, so no process
// of a task outlives the host, with nothing restarted on that work_dir.
func TestHostKilledNoTaskSurvives(t *testing.T) {
	h := startRemote(t, nil)
	_, task := post(t, h, "/remote/tasks", `{"command":"sleep 300 & echo started; wait","shell":true}`)
	id, pgid := task["id"].(string), int(task["pid"].(float64))
	waitLine(t, h, id, "started\n")
	fds := members(t, pgid)
	if len(fds) < 2 {
		t.Fatalf("group %d: %v, want the shell and its sleep", pgid, fds)
	}
	if err := h.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.Exited
	waitFds(t, fds, "after kill -9 of the host")
	if left := groupAlive(t, pgid); len(left) > 0 {
		t.Errorf("processes of group %d left: %v", pgid, left)
	}
}

// BenchmarkInProcess runs `true` to its result through the module served
// in this process over the SDK's gRPC bridge (the host's protocol,
// without the host), next to os/exec spawning it: the module's own share
// of the bench's latency figure, and a target for -cpuprofile. Compare
// the ns/op of the two sub-benchmarks.
func BenchmarkInProcess(b *testing.B) {
	b.Run("spawn", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := exec.Command("true").Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("module", func(b *testing.B) {
		srv := sdktest.NewServer(b, "remote", &module{}, sdktest.LogLevel("WARNING"), sdktest.Params("max_concurrent", "64", "max_queued", "1024"))
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.Post(srv.URL+"/remote/tasks?wait=60s", "application/json", strings.NewReader(`{"command":"true"}`))
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 || !strings.Contains(string(body), `"state":"exited"`) {
					b.Fatalf("%d %s", resp.StatusCode, body)
				}
			}
		})
	})
}
