package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/internal/audit"
)

// The module on a full work_dir, through the real host: a small tmpfs the
// test mounts as the work_dir (as root; skipped otherwise, saying so) and
// fills. The tasks are held on FIFOs outside it until the disk is full,
// and carry an argument of 5000 bytes, so that their records are longer
// than a page: writing one needs a page the full tmpfs does not have,
// whatever room the journal's last page has left.

// gatedTask starts a task that prints before, waits on a FIFO, then
// prints "hello"; release lets it go on (it returns once the task has
// opened the FIFO).
func gatedTask(t *testing.T, h *hosttest.Host, before string) (id string, pid int, release func()) {
	t.Helper()
	fifo, release := hosttest.Gate(t, "")
	body := fmt.Sprintf(`{"command":"sh","arguments":["-c","printf %%s \"$3\"; cat \"$1\"; echo hello","sh",%q,%q,%q]}`,
		fifo, strings.Repeat("p", 5000), before)
	code, m := post(t, h, "/remote/tasks", body)
	if code != 201 || m["state"] != "running" {
		t.Fatalf("the gated task = %d %v", code, m)
	}
	if before != "" {
		waitLine(t, h, m["id"].(string), before)
	}
	return m["id"].(string), int(m["pid"].(float64)), release
}

// killModule kills the module with SIGKILL and waits for the host to have
// it serving again.
func killModule(t *testing.T, h *hosttest.Host, restarts int) {
	t.Helper()
	code, b := h.Get("/state")
	if code != 200 {
		t.Fatalf("GET /state = %d %s", code, b)
	}
	pid := int(hosttest.Decode(t, b)["modules"].([]any)[0].(map[string]any)["pid"].(float64))
	from := h.Logs.Len()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Logs.WaitFrom(from, regexp.MustCompile(`module serving: .*restarts=`+strconv.Itoa(restarts)+`\b`), h.Exited); err != nil {
		t.Fatal(err)
	}
}

// schemaFields are the properties the module's OpenAPI document gives a
// schema of components/schemas.
func schemaFields(t *testing.T, schema string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "internal", "remote", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range doc.Components.Schemas[schema].Properties {
		names = append(names, k)
	}
	return names
}

// documented fails for every field of m the schema does not have.
func documented(t *testing.T, what string, m map[string]any, schema string) {
	t.Helper()
	fields := schemaFields(t, schema)
	for k := range m {
		if !slices.Contains(fields, k) {
			t.Errorf("%s: field %q is not in openapi.json's %s", what, k, schema)
		}
	}
}

// A command whose output cannot be stored on the full work_dir still runs
// unblocked; its result says what it wrote and that it could not be
// stored, and why, in the REST and seed answers and the raw output's
// headers; the journal's reserve takes the result on the full disk, and
// it reads the same after kill -9 of the module. Once there is room,
// output is stored again, and the audit log holds an intact chain.
func TestDiskFullOutputNotStored(t *testing.T) {
	work := hosttest.Tmpfs(t, 16<<20)
	h := startRemote(t, nil, "--work_dir="+work)
	id, pid, release := gatedTask(t, h, "")
	free := hosttest.FillDisk(t, work)
	release()
	res := waitTask(t, h, id)
	out, _ := res["stdout"].(map[string]any)
	if res["state"] != "exited" || res["result"].(map[string]any)["exitCode"] != 0.0 || out == nil ||
		out["totalBytes"] != 6.0 || out["storedBytes"] != 0.0 || out["truncated"] != true ||
		out["storeError"] != "no space left on device" || toJSON(out["droppedRanges"]) != "[[0,6]]" || toJSON(out["droppedRange"]) != "[0,6]" {
		t.Fatalf("the task whose output could not be stored = %v", res)
	}
	documented(t, "the stream", out, "Stream")
	_, seed := seedTask(t, h, pid)
	if seed["stdoutBytes"] != 6.0 || seed["stdoutTruncated"] != true || seed["stdoutStoreError"] != "no space left on device" || seed["stdout"] != "" {
		t.Errorf("POST /remote/task = %v", seed)
	}
	documented(t, "the seed answer", seed, "SeedResult")
	resp, body := h.Request("GET", "/remote/tasks/"+id+"/stdout", nil)
	if body != "" || resp.Header.Get("X-Total-Bytes") != "6" || resp.Header.Get("X-Store-Error") != "no space left on device" ||
		resp.Header.Get("X-Dropped-Ranges") != "0-6" || resp.Header.Get("X-Truncated") != "true" {
		t.Errorf("raw stdout = %q %v", body, resp.Header)
	}

	killModule(t, h, 1) // the disk still full
	if again := waitTask(t, h, id); toJSON(again) != toJSON(res) {
		t.Errorf("after kill -9 of the module:\n%v\nbefore:\n%v", again, res)
	}
	_, seedAgain := seedTask(t, h, pid)
	if toJSON(seedAgain) != toJSON(seed) {
		t.Errorf("the seed answer after kill -9:\n%v\nbefore:\n%v", seedAgain, seed)
	}

	free()
	code, m := post(t, h, "/remote/tasks?wait=60s", `{"command":"echo","arguments":["stored"]}`)
	if s, _ := m["stdout"].(map[string]any); code != 201 || s == nil || s["text"] != "stored\n" || s["storeError"] != nil {
		t.Errorf("a task once there is room = %d %v", code, m)
	}
	if _, err := audit.Verify(filepath.Join(dataDir(h), audit.FileName)); err != nil {
		t.Errorf("the audit log after the full disk: %v", err)
	}
}

// Without a journal reserve (journal_reserve=0), a result the full disk
// cannot take is held back: the task stays running, saying why, the
// seed's answer stays pending and a long-poll keeps waiting, until there
// is room; then it is reported, and reads the same after kill -9. A
// result still held back when the module dies is never reported: the
// task comes back lost with its partial output, once that can be written.
func TestDiskFullResultHeldBack(t *testing.T) {
	work := hosttest.Tmpfs(t, 16<<20)
	h := startRemote(t, []string{"journal_reserve", "0"}, "--work_dir="+work)
	held := regexp.MustCompile(`could not write a task's result to the journal`)

	// Held back, then written once there is room.
	id, pid, release := gatedTask(t, h, "")
	free := hosttest.FillDisk(t, work)
	from := h.Logs.Len()
	release()
	if _, err := h.Logs.WaitFrom(from, held, h.Exited); err != nil {
		t.Fatal(err)
	}
	code, b := h.Get("/remote/tasks/" + id)
	m := hosttest.Decode(t, b)
	if code != 200 || m["state"] != "running" || m["result"] != nil || m["processEndedAt"] == nil ||
		!strings.Contains(fmt.Sprint(m["persistError"]), "no space left on device") {
		t.Fatalf("a held-back task = %d %v", code, m)
	}
	documented(t, "a held-back task", m, "Task")
	if _, seed := seedTask(t, h, pid); seed["result"] != "pending" || seed["persistError"] == nil {
		t.Errorf("POST /remote/task of a held-back task = %v", seed)
	} else {
		documented(t, "the seed's pending answer", seed, "SeedPending")
	}
	polled := make(chan map[string]any, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/remote/tasks/"+id+"?wait=60s", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			polled <- map[string]any{"error": err.Error()}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		polled <- m
	}()
	select {
	case m := <-polled:
		t.Fatalf("a long-poll returned while the result was held back: %v", m)
	default:
	}
	free()
	final := <-polled
	if final["state"] != "exited" || final["persistError"] != nil || final["stdout"].(map[string]any)["storeError"] != "no space left on device" {
		t.Fatalf("the long-poll once there was room = %v", final)
	}
	killModule(t, h, 1)
	if again := waitTask(t, h, id); toJSON(again) != toJSON(final) {
		t.Errorf("after kill -9 of the module:\n%v\nbefore:\n%v", again, final)
	}

	// Held back when the module dies: lost, never another result.
	id, _, release = gatedTask(t, h, "before\n")
	free = hosttest.FillDisk(t, work)
	from = h.Logs.Len()
	release()
	if _, err := h.Logs.WaitFrom(from, held, h.Exited); err != nil {
		t.Fatal(err)
	}
	from = h.Logs.Len()
	killModule(t, h, 2)
	// Recovery cannot write the lost record either: it is held back too.
	if _, err := h.Logs.WaitFrom(from, held, h.Exited); err != nil {
		t.Fatal(err)
	}
	if code, b := h.Get("/remote/tasks/" + id); code != 200 || hosttest.Decode(t, b)["state"] != "running" {
		t.Errorf("a task lost on a full disk, before its record is written = %d %s", code, b)
	}
	free()
	lost := waitTask(t, h, id)
	// Its output is what was stored (the spool had room in its page for
	// "hello" too).
	if lost["state"] != "lost" || lost["result"] != nil || !strings.HasPrefix(fmt.Sprint(lost["stdout"].(map[string]any)["text"]), "before\n") ||
		!strings.Contains(fmt.Sprint(lost["error"]), "stopped while the task was running") {
		t.Errorf("a task whose result was held back when the module died = %v", lost)
	}
	if _, err := audit.Verify(filepath.Join(dataDir(h), audit.FileName)); err != nil {
		t.Errorf("the audit log after the full disk: %v", err)
	}
}
