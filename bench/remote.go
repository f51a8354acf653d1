package main

// The remote-execute figures: a command's round trip through the module,
// throughput at concurrency 8, a 1 GiB output capture and the memory of
// 100k retained tasks, each against a floor measured in this run.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const remoteName = "org_execmod_RemoteExecution"

// remoteDesc is a modules.json loading bin/remote-execute with params as
// key, value pairs.
func remoteDesc(dir string, params ...string) string {
	var ps []string
	for i := 0; i+1 < len(params); i += 2 {
		ps = append(ps, fmt.Sprintf(`{"key":%q,"value":%q}`, params[i], params[i+1]))
	}
	return fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":%q,"parameters":[%s]}]}]}`,
		filepath.Join(dir, "remote-execute"), remoteName, strings.Join(ps, ","))
}

// startRemote runs bin/modhost with the remote module on work ("" for a
// fresh work_dir).
func startRemote(dir, work string, params ...string) (*benchHost, string, error) {
	return launchHost(dir, work, remoteDesc(dir, params...), "remote")
}

// startBare starts bin/modhost with bench/baremodule mounted at /remote/:
// the host-to-module hop and a bare exec, the architecture's own floor.
func startBare(dir string) (*benchHost, string, error) {
	desc := fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":"bare"}]}]}`, filepath.Join(dir, "baremodule"))
	return launchHost(dir, "", desc, "remote")
}

// remoteClient talks JSON to a host.
type remoteClient struct {
	base string
	c    *http.Client
}

func newRemoteClient(base string, conns int) remoteClient {
	return remoteClient{base, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}}
}

// do sends body (JSON, when not nil) and decodes a 200 answer into out.
func (rc remoteClient) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, rc.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := rc.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %s: %.200s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// remoteTask is what the bench reads of GET /remote/tasks/{id}.
type remoteTask struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Result *struct {
		ExitCode int `json:"exitCode"`
	} `json:"result"`
	Stdout *struct {
		TotalBytes  int64 `json:"totalBytes"`
		StoredBytes int64 `json:"storedBytes"`
		Truncated   bool  `json:"truncated"`
	} `json:"stdout"`
}

// run executes a command through POST /remote/execute and long-polls
// GET /remote/tasks/{id} until it has ended.
func (rc remoteClient) run(cmd map[string]any) (remoteTask, error) {
	var started struct {
		Result string `json:"result"`
		ID     string `json:"id"`
	}
	if err := rc.do("POST", "/remote/execute", cmd, &started); err != nil {
		return remoteTask{}, err
	}
	if started.Result != "OK" || started.ID == "" {
		return remoteTask{}, fmt.Errorf("execute %v: result %q, id %q", cmd, started.Result, started.ID)
	}
	for {
		var t remoteTask
		if err := rc.do("GET", "/remote/tasks/"+started.ID+"?wait=60s", nil, &t); err != nil {
			return t, err
		}
		if t.State != "queued" && t.State != "running" {
			if t.State != "exited" || t.Result == nil || t.Result.ExitCode != 0 {
				return t, fmt.Errorf("task %s of %v ended %s", t.ID, cmd, t.State)
			}
			return t, nil
		}
	}
}

// runOnce runs a command in one round trip, POST /remote/tasks?wait=60s,
// which answers once the task has ended.
func (rc remoteClient) runOnce(cmd map[string]any) (remoteTask, error) {
	var t remoteTask
	if err := rc.do("POST", "/remote/tasks?wait=60s", cmd, &t); err != nil {
		return t, err
	}
	if t.State != "exited" || t.Result == nil || t.Result.ExitCode != 0 {
		return t, fmt.Errorf("task %s of %v ended %s", t.ID, cmd, t.State)
	}
	return t, nil
}

// modulePid asks the host's /state for the remote module's pid.
func (rc remoteClient) modulePid() (int, error) {
	var st struct {
		Modules []struct {
			Name string `json:"name"`
			Pid  int    `json:"pid"`
		} `json:"modules"`
	}
	if err := rc.do("GET", "/state", nil, &st); err != nil {
		return 0, err
	}
	for _, m := range st.Modules {
		if m.Name == remoteName && m.Pid > 0 {
			return m.Pid, nil
		}
	}
	return 0, fmt.Errorf("/state lists no running %s", remoteName)
}

// procKiB reads a "Vm...:  N kB" field of /proc/<pid>/status.
func procKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

var trueCmd = map[string]any{"command": "true"}

const remoteRuns = 500

// remoteLatency times execute→result of `true` through the module against
// an in-process HTTP server that runs `true` with os/exec per POST.
func remoteLatency(dir string) error {
	direct := http.NewServeMux()
	direct.HandleFunc("POST /execute", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Command   string   `json:"command"`
			Arguments []string `json:"arguments"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(body.Command, body.Arguments...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"exitCode": code, "stdout": stdout.String(), "stderr": stderr.String()})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: direct}
	go srv.Serve(ln)
	defer srv.Close()

	h, url, err := startRemote(dir, "", "max_concurrent", "8")
	if err != nil {
		return err
	}
	defer h.stop()

	floorClient := newRemoteClient("http://"+ln.Addr().String(), 1)
	floor, err := timed(remoteRuns, func() error {
		var out struct {
			ExitCode int `json:"exitCode"`
		}
		if err := floorClient.do("POST", "/execute", trueCmd, &out); err != nil {
			return err
		}
		if out.ExitCode != 0 {
			return fmt.Errorf("floor: true exited %d", out.ExitCode)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rc := newRemoteClient(url, 1)
	mod, err := timed(remoteRuns, func() error { _, err := rc.runOnce(trueCmd); return err })
	if err != nil {
		return err
	}
	seed, err := timed(remoteRuns, func() error { _, err := rc.run(trueCmd); return err })
	if err != nil {
		return err
	}
	ratio := float64(median(mod)) / float64(median(floor))
	const target = 1.3
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (target <= %.1fx)  %s\n",
		"remote: run true to result (tasks?wait), p50", round(median(mod)), round(median(floor)), ratio, target, verdict(ratio <= target))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx\n", "remote: run true to result, p90", round(pct(mod, 90)), round(pct(floor, 90)),
		float64(pct(mod, 90))/float64(pct(floor, 90)))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (two requests: execute, then GET ?wait)\n", "remote: seed flow execute+wait, p50",
		round(median(seed)), round(median(floor)), float64(median(seed))/float64(median(floor)))
	bh, burl, err := startBare(dir)
	if err != nil {
		return err
	}
	defer bh.stop()
	brc := newRemoteClient(burl, 1)
	bare, err := timed(remoteRuns, func() error { _, err := brc.runOnce(trueCmd); return err })
	if err != nil {
		return err
	}
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (the architecture's floor: host, module hop, bare exec; remote-execute is %.2fx of it)\n",
		"remote: the same through a bare-exec module", round(median(bare)), round(median(floor)),
		float64(median(bare))/float64(median(floor)), float64(median(mod))/float64(median(bare)))
	return nil
}

// timed runs f n times sequentially after n/10 warm-up runs and returns
// the sorted durations.
func timed(n int, f func() error) ([]time.Duration, error) {
	for range n / 10 {
		if err := f(); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, n)
	for i := range out {
		start := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		out[i] = time.Since(start)
	}
	slices.Sort(out)
	return out, nil
}

// throughputTasks is how many tasks each throughput figure runs.
const throughputTasks = 2000

// remoteThroughput measures tasks/s with 1, 8 and 32 clients each running
// `true` to its result in a loop, each against as many goroutines of this
// process spawning `true` with os/exec, measured just before it.
func remoteThroughput(dir string) error {
	levels := []int{1, 8, 32}
	h, url, err := startRemote(dir, "", "max_concurrent", strconv.Itoa(levels[len(levels)-1]), "max_queued", "64")
	if err != nil {
		return err
	}
	defer h.stop()
	rc := newRemoteClient(url, 2*levels[len(levels)-1])
	run := func() error { _, err := rc.runOnce(trueCmd); return err }
	spawn := func() error { return exec.Command("true").Run() }
	if _, err := rate(throughputTasks/10, 8, run); err != nil { // warm-up
		return err
	}
	const target = 0.85
	for _, c := range levels {
		// The floor at the same concurrency, measured just before.
		floor, err := rate(throughputTasks, c, spawn)
		if err != nil {
			return err
		}
		mod, err := rate(throughputTasks, c, run)
		if err != nil {
			return err
		}
		ratio := mod / floor
		fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (target >= %.2fx)  %s\n",
			fmt.Sprintf("remote: throughput of true, concurrency %d", c), fmt.Sprintf("%.0f/s", mod), fmt.Sprintf("%.0f/s", floor),
			ratio, target, verdict(ratio >= target))
	}
	// The architecture's own floor at concurrency 8: the module hop and a
	// bare exec, nothing of remote-execute.
	bh, burl, err := startBare(dir)
	if err != nil {
		return err
	}
	defer bh.stop()
	brc := newRemoteClient(burl, 16)
	bareRun := func() error { _, err := brc.runOnce(trueCmd); return err }
	floor, err := rate(throughputTasks, 8, spawn)
	if err != nil {
		return err
	}
	bare, err := rate(throughputTasks, 8, bareRun)
	if err != nil {
		return err
	}
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (the architecture's floor: host, module hop, bare exec)\n",
		"remote: the same through a bare-exec module, 8", fmt.Sprintf("%.0f/s", bare), fmt.Sprintf("%.0f/s", floor), bare/floor)
	return nil
}

// rate runs f n times over workers goroutines and returns runs per
// second.
func rate(n, workers int, f func() error) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := f(); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}

const bigOutput = 1 << 30

// remoteCapture runs `head -c 1GiB /dev/zero` through the module, against
// the same command's stdout read from a pipe in this process, and reports
// how much the module's peak RSS grew.
func remoteCapture(dir string) error {
	args := []string{"-c", strconv.Itoa(bigOutput), "/dev/zero"}
	// Floor: a plain pipe, read with a large buffer and thrown away.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command("head", args...)
	cmd.Stdout = w
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	w.Close()
	buf := make([]byte, 1<<20)
	var read int64
	for {
		n, err := r.Read(buf)
		read += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Close()
			_ = cmd.Wait()
			return err
		}
	}
	r.Close()
	if err := cmd.Wait(); err != nil {
		return err
	}
	floorTime := time.Since(start)
	if read != bigOutput {
		return fmt.Errorf("floor: read %d bytes of head's output, want %d", read, bigOutput)
	}

	h, url, err := startRemote(dir, "", "max_concurrent", "8")
	if err != nil {
		return err
	}
	defer h.stop()
	rc := newRemoteClient(url, 1)
	pid, err := rc.modulePid()
	if err != nil {
		return err
	}
	if _, err := rc.run(trueCmd); err != nil { // warm-up: the peak of serving one task is in "before"
		return err
	}
	before, err := procKiB(pid, "VmHWM")
	if err != nil {
		return err
	}
	start = time.Now()
	t, err := rc.run(map[string]any{"command": "head", "arguments": args, "timeout": 600})
	if err != nil {
		return err
	}
	modTime := time.Since(start)
	after, err := procKiB(pid, "VmHWM")
	if err != nil {
		return err
	}
	if t.Stdout == nil || t.Stdout.TotalBytes != bigOutput {
		return fmt.Errorf("the module captured %+v of head's stdout, want %d bytes in total", t.Stdout, bigOutput)
	}
	speed := func(d time.Duration) float64 { return bigOutput / float64(1<<20) / d.Seconds() }
	const target = 800.0
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (target >= %.0f MiB/s)  %s\n",
		"remote: 1 GiB stdout, execute to result", fmt.Sprintf("%.0f MiB/s", speed(modTime)), fmt.Sprintf("%.0f MiB/s", speed(floorTime)),
		speed(modTime)/speed(floorTime), target, verdict(speed(modTime) >= target))
	const maxGrowth = 8 << 10 // KiB
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  grew %s (target <= %s)  %s\n",
		"remote: 1 GiB stdout, module VmHWM after", mib(after), mib(before), float64(after)/float64(before),
		mib(after-before), mib(maxGrowth), verdict(after-before <= maxGrowth))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (%d of %d bytes stored)\n", "remote: 1 GiB stdout, time",
		round(modTime), round(floorTime), float64(modTime)/float64(floorTime), t.Stdout.StoredBytes, t.Stdout.TotalBytes)
	return nil
}

const retainedTasks = 100000

// remoteRetained starts a host whose work_dir holds 100k finished tasks,
// against one with none, and reports the module's memory and start time.
func remoteRetained(dir string) error {
	params := []string{"max_tasks", strconv.Itoa(retainedTasks), "retention", "24h"}
	type sample struct {
		start       time.Duration
		rss, hwm    int64
		used        int64 // VmRSS after five pid lists and a page of 1000
		retained    int
		listed, all bool
	}
	measure := func(work string, keep bool) (sample, error) {
		var s sample
		began := time.Now()
		h, url, err := startRemote(dir, work, params...)
		if err != nil {
			return s, err
		}
		h.keep = keep
		defer h.stop()
		s.start = time.Since(began)
		rc := newRemoteClient(url, 1)
		pid, err := rc.modulePid()
		if err != nil {
			return s, err
		}
		if s.rss, err = procKiB(pid, "VmRSS"); err != nil {
			return s, err
		}
		if s.hwm, err = procKiB(pid, "VmHWM"); err != nil {
			return s, err
		}
		var st struct {
			Tasks struct {
				Retained float64 `json:"retained"`
			} `json:"tasks"`
		}
		if err := rc.do("GET", "/remote/status", nil, &st); err != nil {
			return s, err
		}
		s.retained = int(st.Tasks.Retained)
		var list struct {
			Tasks      []remoteTask `json:"tasks"`
			NextCursor string       `json:"next_cursor"`
		}
		if err := rc.do("GET", "/remote/tasks?limit=1", nil, &list); err != nil {
			return s, err
		}
		s.listed = len(list.Tasks) == 1 && list.Tasks[0].State == "exited"
		// The memory a served module keeps, not only a fresh one's: the
		// pid list walks every task, a page of 1000 reads their records.
		for range 5 {
			if err := rc.do("GET", "/remote/task", nil, nil); err != nil {
				return s, err
			}
		}
		if err := rc.do("GET", "/remote/tasks?limit=1000", nil, nil); err != nil {
			return s, err
		}
		if s.used, err = procKiB(pid, "VmRSS"); err != nil {
			return s, err
		}
		return s, nil
	}
	idle, err := measure("", false)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "mhb")
	if err != nil {
		return err
	}
	if err := writeTasks(filepath.Join(work, "modules", remoteName, "tasks"), retainedTasks); err != nil {
		os.RemoveAll(work)
		return err
	}
	// The first start imports the records into the journal, as after an
	// upgrade from the one-file-per-task layout; every start after it
	// reads the journal, and that is the one whose memory is reported.
	imported, err := measure(work, true)
	if err != nil {
		os.RemoveAll(work)
		return err
	}
	full, err := measure(work, false) // this stop removes work
	if err != nil {
		return err
	}
	const target = 200 << 10 // KiB
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (target <= %s)  %s\n",
		"remote: VmRSS with 100k finished tasks", mib(full.rss), mib(idle.rss), float64(full.rss)/float64(idle.rss),
		mib(target), verdict(full.rss <= target && full.retained == retainedTasks))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (target <= %s; after 5 GET /task, GET /tasks?limit=1000)  %s\n",
		"remote: VmRSS with 100k tasks, after lists", mib(full.used), mib(idle.used), float64(full.used)/float64(idle.used),
		mib(target), verdict(full.used <= target && full.retained == retainedTasks))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx\n", "remote: VmHWM with 100k finished tasks", mib(full.hwm), mib(idle.hwm),
		float64(full.hwm)/float64(idle.hwm))
	loaded := fmt.Sprintf("all %d loaded", retainedTasks)
	if full.retained != retainedTasks || !full.listed {
		loaded = fmt.Sprintf("ONLY %d of %d loaded; GET /remote/tasks?limit=1 listed one: %t", full.retained, retainedTasks, full.listed)
	}
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (%s from the journal; floor: no tasks)\n", "remote: host start to listening, 100k tasks",
		round(full.start), round(idle.start), float64(full.start)/float64(idle.start), loaded)
	if imported.retained != retainedTasks {
		loaded = fmt.Sprintf("ONLY %d of %d imported", imported.retained, retainedTasks)
	}
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (once, after an upgrade: %s from one file per task)\n", "remote: first start, importing 100k tasks",
		round(imported.start), round(idle.start), float64(imported.start)/float64(idle.start), loaded)
	return nil
}

// writeTasks writes n finished task records in the module's task.json
// format under dir, one directory each, created over the last n ms
// before a minute ago.
func writeTasks(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	base := time.Now().UTC().Add(-time.Minute - time.Duration(n)*time.Millisecond)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				created := base.Add(time.Duration(i) * time.Millisecond)
				id := taskID(created)
				b, err := json.Marshal(taskRecord(id, 1000+i, created))
				if err == nil {
					err = os.Mkdir(filepath.Join(dir, id), 0o700)
				}
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, id, "task.json"), b, 0o600)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// taskRecord is a finished `ls -la /tmp` as module/internal/remote's
// record type persists it (version 1).
func taskRecord(id string, pid int, created time.Time) map[string]any {
	started, ended := created.Add(time.Millisecond), created.Add(3*time.Millisecond)
	return map[string]any{
		"version": 1, "id": id, "state": "exited", "pid": pid, "pgid": pid, "startTicks": 123456789 + pid,
		"command": "ls", "arguments": []string{"-la", "/tmp"}, "shell": false,
		"principal": "bench", "timeoutMs": 30000, "graceMs": 10000,
		"createdAt": created, "startedAt": started, "endedAt": ended,
		"result": map[string]any{
			"exitCode": 0, "signaled": false, "timedOut": false, "killed": false, "killEscalated": false,
			"durationMs": 2, "userMs": 1, "sysMs": 1, "maxRssKiB": 3584,
		},
	}
}

// crockford is the alphabet of task ids (ULID's): no I, L, O or U.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// taskID is a task id as the module makes them: 26 characters, the first
// ten the creation time in milliseconds, the rest random.
func taskID(created time.Time) string {
	var b [26]byte
	ms := uint64(created.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	for i := 10; i < 26; i++ {
		b[i] = crockford[r[i-10]&31]
	}
	return string(b[:])
}
