package remote

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/execmod/execmod/internal/acl"
	"github.com/execmod/execmod/module/internal/audit"
	"github.com/execmod/execmod/module/internal/request"
	"github.com/execmod/execmod/module/internal/task"
	"github.com/execmod/execmod/sdk"
)

// openAPI is the OpenAPI 3.0 document of the module's routes, served at
// GET /openapi.json; module/client's tests check the real answers against
// it.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openAPI)
}

// maxBody bounds a request body the module reads (stdin included).
const maxBody = 8 << 20

// inlineLimit is how much of a stream a REST task object carries inline;
// the rest is read from /tasks/{id}/stdout and /stderr.
const inlineLimit = 64 << 10

// Info is what /status reports besides the tasks.
type Info struct {
	Release, WorkDir, SandboxDir string
}

// Routes returns the module's routes: the seed's API and the REST one.
func (s *Service) Routes(info Info) []sdk.Route {
	h := func(f func(http.ResponseWriter, *http.Request) error) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				writeError(w, err)
			}
		})
	}
	return []sdk.Route{
		{Pattern: "GET /status", Realm: sdk.ReadOnly, Handler: h(func(w http.ResponseWriter, r *http.Request) error { return s.status(w, info) }),
			Help: sdk.Help{TLDR: "Reports the module's status.", Description: "Returns {\"release\",\"result\":\"ok\",\"sandbox_dir\",\"status\":\"active\",\"work_dir\"} and the task counts."}},
		{Pattern: "POST /execute", Realm: sdk.ReadWrite, Handler: h(s.execute),
			Help: sdk.Help{TLDR: "Runs a command on the agent.", Description: executeHelp}},
		{Pattern: "POST /task", Realm: sdk.ReadOnly, Handler: h(s.taskByPid),
			Help: sdk.Help{TLDR: "Reports the outcome of a command by pid.", Description: "Body {\"pid\": N}. A finished command answers {\"exitCode\",\"signaled\",\"stdout\",\"stderr\", ...}; a running one {\"result\":\"pending\",\"pid\":N}; an unknown pid is a 404. With a reused pid, the newest task is reported (its \"id\" says which)."}},
		{Pattern: "GET /task", Realm: sdk.ReadOnly, Handler: h(s.pids),
			Help: sdk.Help{TLDR: "Lists the pids of the commands the module remembers.", Description: "Returns {\"pids\":[...],\"ids\":[...]}."}},
		{Pattern: "POST /kill", Realm: sdk.ReadWrite, Handler: h(s.killByPid),
			Help: sdk.Help{TLDR: "Terminates a command launched by /execute.", Description: "Body {\"pid\": N, \"signal\": \"SIGTERM\"}. The signal (default SIGTERM) goes to the command's whole process group; with SIGTERM, the group gets SIGKILL after the grace period if it is still there."}},
		{Pattern: "POST /tasks", Realm: sdk.ReadWrite, Handler: h(s.createTask),
			Help: sdk.Help{TLDR: "Starts a task.", Description: tasksHelp}},
		{Pattern: "GET /tasks", Realm: sdk.ReadOnly, Handler: h(s.listTasks),
			Help: sdk.Help{TLDR: "Lists tasks.", Description: "Query: state=, label=key=value (repeatable), limit= (default 100, at most 1000), cursor= (from the previous page's next_cursor)."}},
		{Pattern: "GET /tasks/{id}", Realm: sdk.ReadOnly, Handler: h(s.getTask),
			Help: sdk.Help{TLDR: "Reports a task.", Description: "With ?wait=30s the request returns the moment the task ends, or after the wait with the task still running."}},
		{Pattern: "GET /tasks/{id}/{stream}", Realm: sdk.ReadOnly, Handler: h(s.output),
			Help: sdk.Help{TLDR: "Reads a task's stdout or stderr as raw bytes.", Description: "Query: offset=, limit=, follow=true (streams until the task ends). Headers: X-Total-Bytes, X-Truncated, X-Dropped-Range."}},
		{Pattern: "POST /tasks/{id}/signal", Realm: sdk.ReadWrite, Handler: h(s.signalTask),
			Help: sdk.Help{TLDR: "Sends a signal to a running task.", Description: "Body {\"signal\":\"SIGHUP\",\"scope\":\"group\"|\"leader\"}; scope defaults to group."}},
		{Pattern: "DELETE /tasks/{id}", Realm: sdk.ReadWrite, Handler: h(s.deleteTask),
			Help: sdk.Help{TLDR: "Kills a running task, or purges a finished one.", Description: "A running task gets SIGTERM, then SIGKILL after its grace period (202). A finished task is forgotten and its files removed (204)."}},
		// Read-only: it runs nothing, changes nothing, and answers only
		// for the caller's own principal, which a read-only principal may
		// as well learn before it is refused.
		{Pattern: "POST /policy/check", Realm: sdk.ReadOnly, Handler: h(s.policyCheck),
			Help: sdk.Help{TLDR: "Tells whether the caller may run a command, without running it.", Description: policyHelp}},
		// Public, as the host's /help is: the document is the same for
		// every agent of a release and holds nothing about this one.
		{Pattern: "GET /openapi.json", Realm: sdk.Public, Handler: http.HandlerFunc(serveOpenAPI),
			Help: sdk.Help{TLDR: "Serves the OpenAPI 3.0 document of the module's API.", Description: "The routes, their request and response schemas and the error schema, as JSON."}},
	}
}

const executeHelp = `Body {"command": "ls", "arguments": ["-la", "/tmp"], "shell": false, "timeout": 30}.
Arguments are passed verbatim; "shell": true runs /bin/sh -c command. timeout is in seconds (or a duration such as "90s").
The Mesos CommandInfo form is accepted too: {"value", "arguments", "shell", "environment": {"variables": [...]}}, with EXECUTE_TIMEOUT_SEC as the timeout.
Returns {"result": "OK", "pid": N, "id": "..."}; a command that cannot start (not found, not executable) is a 400 naming the cause.`

const policyHelp = `Body: the same as POST /tasks. Nothing is started.
Returns {"allowed": bool, "rule": "...", "checks": [{"action", "object", "allowed", "rule"}, ...], "principal", "command"}:
the decision POST /tasks would make for the caller now, under the module's ACLs (--acls): run_remote_shell for a shell command,
run_remote_commands for the resolved executable and its arguments, run_remote_commands_as_user when a user is given.
"rule" is the first denying rule, or every deciding rule when allowed.`

const tasksHelp = `Body: {"command", "arguments", "shell", "timeout", "env": {}, "cwd", "user", "stdin" (base64), "grace", "labels": {}, "idempotency_key"}.
Returns 201 with the task (202 when it is queued); with ?wait=30s, once the task has ended (or the wait is over), so one request runs a command and returns its outcome; with an idempotency_key already used, 200 with the existing task and nothing is started.
When max_concurrent tasks run and max_queued wait, 429 with Retry-After.`

// status serves GET /status.
func (s *Service) status(w http.ResponseWriter, info Info) error {
	c := s.Counts()
	writeJSON(w, http.StatusOK, map[string]any{
		"release": info.Release, "result": "ok", "sandbox_dir": info.SandboxDir, "status": "active", "work_dir": info.WorkDir,
		"tasks": map[string]float64{"running": c["tasks_running"], "queued": c["tasks_queued"], "retained": c["tasks_retained"]},
	})
	return nil
}

// execute serves the seed's POST /execute: it answers once the command has
// started (waiting for a slot if it had to queue).
func (s *Service) execute(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, true)
	if err != nil {
		return err
	}
	cmd, err := request.Execute(body, s.p.limits())
	if err != nil {
		return err
	}
	rec, _, err := s.submit(r, cmd)
	if err != nil {
		return err
	}
	if rec.State == Queued {
		if rec, err = s.WaitStarted(r.Context(), rec.ID); err != nil {
			return err
		}
		if rec.State == FailedToStart {
			return badRequest(errors.New(rec.Error))
		}
		if rec.State == Queued && rec.PersistError != "" {
			// It failed to start, and that cannot be recorded yet.
			return fmt.Errorf("%w: %s", ErrJournal, rec.PersistError)
		}
		if rec.State == Queued {
			return nil // the client went away; the task stays queued
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": "OK", "pid": rec.Pid, "id": rec.ID})
	return nil
}

// taskByPid serves the seed's POST /task.
func (s *Service) taskByPid(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, true)
	if err != nil {
		return err
	}
	pid, err := request.Pid(body)
	if err != nil {
		return err
	}
	id, err := s.ByPid(pid)
	if err != nil {
		return fmt.Errorf("no task with pid %d: %w", pid, ErrNotFound)
	}
	rec, err := s.Get(id)
	if err != nil {
		return err
	}
	if err := s.checkView(r, rec); err != nil {
		return err
	}
	if !rec.State.Final() {
		m := map[string]any{"result": "pending", "pid": pid, "id": rec.ID, "state": rec.State}
		if rec.PersistError != "" {
			m["persistError"] = rec.PersistError
		}
		writeJSON(w, http.StatusOK, m)
		return nil
	}
	out, err := s.seedResult(rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// seedResult is a finished task in the seed's shape, with the explicit
// fields added.
func (s *Service) seedResult(rec record) (map[string]any, error) {
	m := map[string]any{
		"id": rec.ID, "pid": rec.Pid, "state": rec.State, "exitCode": nil, "signaled": false,
		"signal": nil, "timedOut": false, "killed": false, "startedAt": rec.StartedAt, "endedAt": rec.EndedAt,
	}
	if res := rec.Result; res != nil {
		m["exitCode"], m["signaled"], m["timedOut"], m["killed"] = res.ExitCode, res.Signaled, res.TimedOut, res.Killed
		m["killEscalated"], m["durationMs"] = res.KillEscalated, res.DurationMs
		m["rusage"] = map[string]int64{"userMs": res.UserMs, "sysMs": res.SysMs, "maxRssKiB": res.MaxRssKiB, "maxRssBoundKiB": res.MaxRssBoundKiB}
		if res.Signaled {
			m["signal"], m["signalNumber"] = res.Signal, res.SignalNumber
		}
	}
	if rec.Error != "" {
		m["error"] = rec.Error
	}
	for _, stream := range []string{"stdout", "stderr"} {
		o, err := s.Output(rec.ID, stream)
		if err != nil {
			return nil, err
		}
		text, enc, info, err := inline(o, -1)
		if err != nil {
			return nil, err
		}
		m[stream] = text
		if enc != "utf-8" {
			m[stream+"Encoding"] = enc
		}
		m[stream+"Bytes"], m[stream+"Truncated"] = info.Total, info.Truncated
		if info.StoreErr != "" {
			m[stream+"StoreError"] = info.StoreErr
		}
	}
	return m, nil
}

// inline reads what is stored of o (at most limit bytes when limit >= 0)
// as text: UTF-8 as is, anything else base64.
func inline(o *task.Output, limit int64) (string, string, task.OutputInfo, error) {
	if o == nil {
		return "", "utf-8", task.OutputInfo{}, nil
	}
	info := o.Info()
	var buf []byte
	off := int64(0)
	p := make([]byte, 64<<10)
	for limit < 0 || int64(len(buf)) < limit {
		n, err := o.ReadAt(p, off)
		buf = append(buf, p[:n]...)
		off += int64(n)
		if errors.Is(err, task.ErrDropped) {
			off = o.NextKept(off)
			continue
		}
		if err == io.EOF || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return "", "", info, err
		}
	}
	if limit >= 0 && int64(len(buf)) > limit {
		buf = buf[:limit]
	}
	text, enc := request.Text(buf)
	return text, enc, info, nil
}

// pids serves the seed's GET /task.
func (s *Service) pids(w http.ResponseWriter, r *http.Request) error {
	principal := sdk.Principal(r)
	pids, ids := s.Pids(func(owner string) bool { return s.mayView(principal, &record{Principal: owner}).Allowed })
	writeJSON(w, http.StatusOK, map[string]any{"pids": pids, "ids": ids})
	return nil
}

// killByPid serves POST /kill.
func (s *Service) killByPid(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, true)
	if err != nil {
		return err
	}
	pid, sig, err := request.Kill(body)
	if err != nil {
		return err
	}
	id, err := s.ByPid(pid)
	if err != nil {
		return fmt.Errorf("no task with pid %d: %w", pid, ErrNotFound)
	}
	action := audit.Signal
	if sig == syscall.SIGTERM {
		action = audit.Kill
	}
	err = s.killOrSignal(r, id, action, request.SignalName(sig), func() error {
		if sig == syscall.SIGTERM {
			return s.Kill(id)
		}
		return s.Signal(id, sig, task.Group)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": "OK", "pid": pid, "id": id, "signal": request.SignalName(sig)})
	return nil
}

// createTask serves POST /tasks.
func (s *Service) createTask(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, false)
	if err != nil {
		return err
	}
	cmd, err := request.Task(body, s.p.limits())
	if err != nil {
		return err
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = request.ParseDuration(v); err != nil {
			return badRequest(fmt.Errorf("wait: %w", err))
		}
		wait = min(wait, 10*time.Minute)
	}
	rec, replayed, err := s.submit(r, cmd)
	if err != nil {
		return err
	}
	// ?wait= answers with the result when the task ends within it: one
	// round trip to run a command and get its outcome.
	if wait > 0 && !replayed {
		if rec, err = s.Wait(r.Context(), rec.ID, wait); err != nil {
			return err
		}
	}
	code := http.StatusCreated
	switch {
	case replayed:
		code = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	case rec.State == Queued:
		code = http.StatusAccepted
	}
	w.Header().Set("Location", "tasks/"+rec.ID)
	return s.writeTask(w, code, rec)
}

// taskView is a task as the REST routes show it.
type taskView struct {
	record
	// The record's bookkeeping stays out of the API: these zero fields
	// shadow the record's and are omitted ("-" would not shadow them).
	Version    int             `json:"version,omitempty"`
	StartTicks uint64          `json:"startTicks,omitempty"`
	Unstored   map[string]loss `json:"unstored,omitempty"` // shown in the streams
	Stdout     *streamView     `json:"stdout,omitempty"`
	Stderr     *streamView     `json:"stderr,omitempty"`
}

// streamView is a stream in a task. The bytes stored are the stream less
// DroppedRanges: the middle max_output_bytes dropped, and, with
// StoreError, everything from where the spool could not be written on.
// DroppedRange is the first of them (what it always was when there can
// only be one).
type streamView struct {
	TotalBytes    int64      `json:"totalBytes"` // written by the command, stored or not
	StoredBytes   int64      `json:"storedBytes"`
	Truncated     bool       `json:"truncated"` // storedBytes < totalBytes
	DroppedRange  *[2]int64  `json:"droppedRange,omitempty"`
	DroppedRanges [][2]int64 `json:"droppedRanges,omitempty"`
	StoreError    string     `json:"storeError,omitempty"` // why output could not be stored: "no space left on device"
	Encoding      string     `json:"encoding"`
	Text          string     `json:"text"`
	TextComplete  bool       `json:"textComplete"` // false: more is stored than Text carries
}

// droppedRanges are the [from, to) ranges of a stream not stored, in
// order: the cap's, then the one a store error left.
func droppedRanges(info task.OutputInfo) [][2]int64 {
	var rs [][2]int64
	if info.DroppedTo > info.DroppedFrom {
		rs = append(rs, [2]int64{info.DroppedFrom, info.DroppedTo})
	}
	if info.Unstored > 0 {
		rs = append(rs, [2]int64{info.Total - info.Unstored, info.Total})
	}
	return rs
}

func (s *Service) view(rec record) (taskView, error) {
	v := taskView{record: rec}
	for _, stream := range []string{"stdout", "stderr"} {
		o, err := s.Output(rec.ID, stream)
		if err != nil {
			return v, err
		}
		if o == nil {
			continue
		}
		text, enc, info, err := inline(o, inlineLimit)
		if err != nil {
			return v, err
		}
		sv := &streamView{TotalBytes: info.Total, StoredBytes: info.Stored, Truncated: info.Truncated, StoreError: info.StoreErr,
			Encoding: enc, Text: text, TextComplete: info.Stored <= inlineLimit}
		if rs := droppedRanges(info); len(rs) > 0 {
			sv.DroppedRange, sv.DroppedRanges = &rs[0], rs
		}
		if stream == "stdout" {
			v.Stdout = sv
		} else {
			v.Stderr = sv
		}
	}
	return v, nil
}

func (s *Service) writeTask(w http.ResponseWriter, code int, rec record) error {
	v, err := s.view(rec)
	if err != nil {
		return err
	}
	writeJSON(w, code, v)
	return nil
}

// listTasks serves GET /tasks.
func (s *Service) listTasks(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := Filter{State: State(q.Get("state")), After: q.Get("cursor"), Limit: 100}
	if f.State != "" && !knownState(f.State) {
		return badRequest(fmt.Errorf("state: %q is not one of queued, running, exited, signaled, timed_out, killed, failed_to_start, lost", f.State))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest(fmt.Errorf("limit: %q is not a number from 1 to 1000", v))
		}
		f.Limit = n
	}
	for _, l := range q["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return badRequest(fmt.Errorf("label: %q is not key=value", l))
		}
		if f.Labels == nil {
			f.Labels = map[string]string{}
		}
		f.Labels[k] = v
	}
	principal := sdk.Principal(r)
	f.Visible = func(owner string) bool { return s.mayView(principal, &record{Principal: owner}).Allowed }
	recs, next := s.List(f)
	views := make([]taskView, len(recs))
	for i, r := range recs {
		views[i] = taskView{record: r}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": views, "next_cursor": next})
	return nil
}

func knownState(st State) bool {
	switch st {
	case Queued, Running, Exited, Signaled, TimedOut, Killed, FailedToStart, Lost:
		return true
	}
	return false
}

// getTask serves GET /tasks/{id}, long-polling with ?wait=.
func (s *Service) getTask(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := request.ParseDuration(v)
		if err != nil {
			return badRequest(fmt.Errorf("wait: %w", err))
		}
		wait = min(d, 10*time.Minute)
	}
	rec, err := s.Get(id)
	if err != nil {
		return err
	}
	if err := s.checkView(r, rec); err != nil {
		return err
	}
	rec, err = s.Wait(r.Context(), id, wait)
	if err != nil {
		return err
	}
	return s.writeTask(w, http.StatusOK, rec)
}

// signalTask serves POST /tasks/{id}/signal.
func (s *Service) signalTask(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, false)
	if err != nil {
		return err
	}
	sig, scope, err := request.Signal(body)
	if err != nil {
		return err
	}
	sc := task.Group
	if scope == "leader" {
		sc = task.Leader
	}
	id := r.PathValue("id")
	if err := s.killOrSignal(r, id, audit.Signal, request.SignalName(sig), func() error { return s.Signal(id, sig, sc) }); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "signal": request.SignalName(sig), "scope": scope})
	return nil
}

// deleteTask serves DELETE /tasks/{id}.
func (s *Service) deleteTask(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	rec, err := s.Get(id)
	if err != nil {
		return err
	}
	if rec.State.Final() {
		if err := s.killOrSignal(r, id, audit.Purge, "", func() error { return s.Delete(id) }); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := s.killOrSignal(r, id, audit.Kill, "SIGTERM", func() error { return s.Kill(id) }); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "result": "killing"})
	return nil
}

// output serves GET /tasks/{id}/stdout and /stderr: raw bytes from offset,
// and with follow=true everything until the task ends, flushed as it
// comes. Following a queued task answers at once (headers for an empty
// stream) and waits for it to start, or for the request to end; a follow
// ends once the task's result is reported (it is durable), not only its
// output complete.
func (s *Service) output(w http.ResponseWriter, r *http.Request) error {
	id, stream := r.PathValue("id"), r.PathValue("stream")
	if stream != "stdout" && stream != "stderr" {
		return fmt.Errorf("no stream %q: use stdout or stderr: %w", stream, ErrNotFound)
	}
	q := r.URL.Query()
	offset, limit := int64(0), int64(-1)
	var err error
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
			return badRequest(fmt.Errorf("offset: %q is not a non-negative number", v))
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.ParseInt(v, 10, 64); err != nil || limit < 0 {
			return badRequest(fmt.Errorf("limit: %q is not a non-negative number", v))
		}
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		if follow, err = strconv.ParseBool(v); err != nil {
			return badRequest(fmt.Errorf("follow: %q is not true or false", v))
		}
	}
	rec, err := s.Get(id)
	if err != nil {
		return err
	}
	if err := s.checkView(r, rec); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(w)
	queued := follow && rec.State == Queued
	if queued {
		// The answer starts now, so that the client knows it follows,
		// with the stream as it is: empty. The bytes come once it runs.
		w.Header().Set("X-Total-Bytes", "0")
		w.Header().Set("X-Truncated", "false")
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		if _, err := s.WaitStarted(r.Context(), id); err != nil || r.Context().Err() != nil {
			return nil // gone, or the client went away while it was queued
		}
	}
	o, err := s.Output(id, stream)
	switch {
	case err != nil && queued:
		return nil // headers are out; end the stream
	case err != nil:
		return err
	case o == nil && !queued:
		w.Header().Set("X-Total-Bytes", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	case o == nil:
		return nil // it never ran (failed to start, killed while queued)
	}
	if !queued {
		info := o.Info()
		w.Header().Set("X-Total-Bytes", strconv.FormatInt(info.Total, 10))
		w.Header().Set("X-Truncated", strconv.FormatBool(info.Truncated))
		if rs := droppedRanges(info); len(rs) > 0 {
			all := make([]string, len(rs))
			for i, r := range rs {
				all[i] = fmt.Sprintf("%d-%d", r[0], r[1])
			}
			w.Header().Set("X-Dropped-Range", all[0])
			w.Header().Set("X-Dropped-Ranges", strings.Join(all, ","))
		}
		if info.StoreErr != "" {
			w.Header().Set("X-Store-Error", info.StoreErr)
		}
		w.WriteHeader(http.StatusOK)
	}
	p := make([]byte, 32<<10)
	sent := int64(0)
	for limit < 0 || sent < limit {
		changed := o.Changed() // before reading, so no write is missed
		want := int64(len(p))
		if limit >= 0 {
			want = min(want, limit-sent)
		}
		n, err := o.ReadAt(p[:want], offset)
		if n > 0 {
			if _, werr := w.Write(p[:n]); werr != nil {
				return nil // the client went away
			}
			offset += int64(n)
			sent += int64(n)
			continue
		}
		switch {
		case errors.Is(err, task.ErrDropped):
			offset = o.NextKept(offset)
			continue
		case err != nil && err != io.EOF:
			return nil // headers are out; cut the stream
		}
		if !follow {
			return nil
		}
		if o.Complete() {
			// The output is all here; the follow ends with the task,
			// once its result is reported.
			_ = rc.Flush()
			_ = s.WaitEnded(r.Context(), id)
			return nil
		}
		_ = rc.Flush()
		select {
		case <-changed:
		case <-r.Context().Done():
			return nil
		}
	}
	return nil
}

// readBody reads a JSON request body, bounded. The seed's routes also take
// a form content type, which is what curl -d sends.
func readBody(w http.ResponseWriter, r *http.Request, seed bool) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		isJSON := err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/json")
		form := err == nil && mt == "application/x-www-form-urlencoded"
		if !isJSON && !(seed && form) {
			return nil, statusError{http.StatusUnsupportedMediaType,
				fmt.Sprintf("Content-Type %q is not JSON: send the body as application/json", ct)}
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, statusError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over %d bytes", maxBody)}
	}
	if err != nil {
		return nil, badRequest(fmt.Errorf("reading the body: %w", err))
	}
	return b, nil
}

// statusError is an error with its HTTP status.
type statusError struct {
	code int
	msg  string
}

func (e statusError) Error() string { return e.msg }

func badRequest(err error) error { return statusError{http.StatusBadRequest, err.Error()} }

// writeError maps an error to its status, in one place.
func writeError(w http.ResponseWriter, err error) {
	var se statusError
	var reqErr *request.Error
	var startErr *task.StartError
	var denied *forbidden
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &denied):
		writeJSON(w, http.StatusForbidden, map[string]string{"error": denied.msg, "rule": denied.rule})
		return
	case errors.As(err, &se):
		code = se.code
	case errors.As(err, &reqErr), errors.As(err, &startErr):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrBusy):
		code = http.StatusTooManyRequests
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, ErrFinished), errors.Is(err, ErrRunning):
		code = http.StatusConflict
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ErrJournal):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// submit authorizes a request to run cmd, audits it and submits it. The
// run's audit line is written while the task starts and runs (see
// Service.Submit); submit returns once it is written. An allowed task
// whose audit line cannot be written is killed: nothing runs unaudited.
func (s *Service) submit(r *http.Request, cmd request.Command) (record, bool, error) {
	principal := sdk.Principal(r)
	v := s.authorizeRun(principal, &cmd)
	e := commandEntry(r, cmd, v)
	if !v.Allowed {
		_ = s.auditLog(e)
		return record{}, false, &forbidden{v.denial, v.Rule}
	}
	audited := make(chan error, 1)
	rec, replayed, err := s.Submit(cmd, principal, func(rec record) error {
		line := e
		line.TaskID, line.Pid = rec.ID, rec.Pid
		err := s.auditLog(line)
		audited <- err
		return err
	})
	switch {
	case err != nil:
		e.Error = err.Error()
		_ = s.auditLog(e)
		return record{}, false, err
	case replayed:
		// An idempotency key answers with the task it started first,
		// which may be someone else's.
		d, ferr := s.authorizeTask(acl.ViewRemoteTasks, principal, rec, "view")
		e.TaskID, e.Pid = rec.ID, rec.Pid
		if ferr != nil {
			e.Decision, e.Rule, e.Error = "deny", d.Rule, "idempotency_key names a task the principal may not view"
			_ = s.auditLog(e)
			return record{}, false, ferr
		}
		e.Error = "idempotent replay of task " + rec.ID + ": nothing was started"
		_ = s.auditLog(e)
		return rec, true, nil
	}
	if aerr := <-audited; aerr != nil {
		_ = s.Kill(rec.ID)
		return record{}, false, statusError{http.StatusServiceUnavailable,
			"the audit log cannot be written, so the task was killed: " + aerr.Error()}
	}
	return rec, false, nil
}

// checkView authorizes reading rec; a denial is audited.
func (s *Service) checkView(r *http.Request, rec record) error {
	d, err := s.authorizeTask(acl.ViewRemoteTasks, sdk.Principal(r), rec, "view")
	if err != nil {
		e := taskEntry(r, audit.View, rec, d)
		e.Error = err.Error()
		_ = s.auditLog(e)
	}
	return err
}

// killOrSignal authorizes kill_remote_tasks on task id, runs do when
// allowed, and audits the request with its outcome.
func (s *Service) killOrSignal(r *http.Request, id, action, signal string, do func() error) error {
	rec, err := s.Get(id)
	if err != nil {
		return err
	}
	verb := map[string]string{audit.Kill: "kill", audit.Signal: "signal", audit.Purge: "purge"}[action]
	d, err := s.authorizeTask(acl.KillRemoteTasks, sdk.Principal(r), rec, verb)
	if err == nil {
		err = do()
	}
	e := taskEntry(r, action, rec, d)
	e.Signal = signal
	if err != nil {
		e.Error = err.Error()
	}
	_ = s.auditLog(e)
	return err
}

// policyCheck serves POST /policy/check: the decision POST /tasks would
// make, without running anything.
func (s *Service) policyCheck(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, false)
	if err != nil {
		return err
	}
	cmd, err := request.Task(body, s.p.limits())
	if err != nil {
		return err
	}
	v := s.authorizeRun(sdk.Principal(r), &cmd)
	writeJSON(w, http.StatusOK, map[string]any{"allowed": v.Allowed, "rule": v.Rule, "checks": v.Checks,
		"principal": sdk.Principal(r), "command": cmd.Path})
	return nil
}
