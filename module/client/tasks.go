package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// RunRequest is a command to run: the body of POST /remote/tasks.
type RunRequest struct {
	// Command is the program (looked up in the task's PATH when it has no
	// '/'), or with Shell the command line for /bin/sh -c.
	Command string
	// Args are the program's arguments, argv[0] excluded, passed
	// verbatim; none with Shell.
	Args []string
	// Shell runs Command with /bin/sh -c (the module's allow_shell and
	// the ACLs may refuse it).
	Shell bool
	// Timeout and Grace (from SIGTERM to SIGKILL): 0 for the module's
	// defaults (default_timeout, kill_grace_period).
	Timeout, Grace time.Duration
	// Env is added to the module's base environment.
	Env map[string]string
	// Cwd is an absolute path; "" for the module's default. User is who to
	// run as; "" for the module's user.
	Cwd, User string
	// Stdin is the command's standard input (sent base64); nil for none.
	Stdin []byte
	// Labels are free-form, for List to filter on.
	Labels map[string]string
	// IdempotencyKey makes a retried Start answer with the task the first
	// request started (Task.Replayed) instead of starting another.
	IdempotencyKey string
}

// runBody is RunRequest on the wire.
type runBody struct {
	Command        string            `json:"command"`
	Arguments      []string          `json:"arguments,omitempty"`
	Shell          bool              `json:"shell,omitempty"`
	Timeout        string            `json:"timeout,omitempty"`
	Grace          string            `json:"grace,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	Cwd            string            `json:"cwd,omitempty"`
	User           string            `json:"user,omitempty"`
	Stdin          []byte            `json:"stdin,omitempty"` // standard base64 with padding
	Labels         map[string]string `json:"labels,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
}

func (r RunRequest) body() runBody {
	return runBody{Command: r.Command, Arguments: r.Args, Shell: r.Shell, Timeout: duration(r.Timeout), Grace: duration(r.Grace),
		Env: r.Env, Cwd: r.Cwd, User: r.User, Stdin: r.Stdin, Labels: r.Labels, IdempotencyKey: r.IdempotencyKey}
}

// duration is d as the API takes it ("30s", "1m30s", "250ms"); "" for 0.
func duration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// The states of a task. A task is queued or running until it ends in one
// of the others; lost means the module stopped while it ran.
const (
	StateQueued        = "queued"
	StateRunning       = "running"
	StateExited        = "exited"
	StateSignaled      = "signaled"
	StateTimedOut      = "timed_out"
	StateKilled        = "killed"
	StateFailedToStart = "failed_to_start"
	StateLost          = "lost"
)

// Task is a task as the REST API reports it. Marshalled to JSON it has
// the API's shape.
type Task struct {
	// ID is the task's id, assigned by the module; pids are reused, ids
	// are not.
	ID string `json:"id"`
	// State is one of the State constants.
	State string `json:"state"`
	// Pid and Pgid are 0 until the task has started.
	Pid  int `json:"pid,omitempty"`
	Pgid int `json:"pgid,omitempty"` // the task's process group, which signals and kills reach
	// Command is the executable as resolved ("/bin/sh" for a shell
	// command); Arguments the whole argv, argv[0] included.
	Command   string   `json:"command"`
	Arguments []string `json:"arguments"`
	Shell     bool     `json:"shell"`          // started with /bin/sh -c
	Cwd       string   `json:"cwd,omitempty"`  // working directory; "" for the module's default
	User      string   `json:"user,omitempty"` // who it runs as; "" for the module's user
	// EnvKeys are the names of the requested environment (values are
	// never stored).
	EnvKeys        []string          `json:"envKeys,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`         // as in RunRequest
	IdempotencyKey string            `json:"idempotencyKey,omitempty"` // as in RunRequest
	// Principal is who started the task.
	Principal string `json:"principal,omitempty"`
	// TimeoutMs and GraceMs are the timeout and the grace period from
	// SIGTERM to SIGKILL in effect, in milliseconds.
	TimeoutMs int64 `json:"timeoutMs"`
	GraceMs   int64 `json:"graceMs"`
	// CreatedAt is when the module accepted the task; StartedAt and
	// EndedAt are nil until it starts and ends.
	CreatedAt time.Time  `json:"createdAt"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	// Result is how the task ended; nil until then, and for a task that
	// failed to start or was lost.
	Result *Result `json:"result,omitempty"`
	// Error says why a task failed to start or was lost.
	Error string `json:"error,omitempty"`
	// PersistError is set while the task has ended but its result could
	// not be written to the module's task journal yet (a full disk): the
	// task keeps its state (queued or running) and is not reported ended
	// until the module has written it (it retries every second), or, if
	// the module stops first, it comes back lost. ProcessEndedAt is then
	// when its process ended (nil if it never ran).
	PersistError   string     `json:"persistError,omitempty"`
	ProcessEndedAt *time.Time `json:"processEndedAt,omitempty"`
	// Stdout and Stderr are the output, up to 64 KiB inline; nil in List
	// and for a task that never produced a stream.
	Stdout *Stream `json:"stdout,omitempty"`
	Stderr *Stream `json:"stderr,omitempty"`

	// Replayed is set by Start and Run when the IdempotencyKey had been
	// used: the task is the one the first request started.
	Replayed bool `json:"-"`
}

// Final reports whether the task has ended (any state but queued and
// running; false for the zero Task).
func (t Task) Final() bool { return t.State != "" && t.State != StateQueued && t.State != StateRunning }

// Result is how a task ended.
type Result struct {
	// ExitCode is the exit status; when Signaled, the signal number (as
	// Mesos's execute module reports it).
	ExitCode     int    `json:"exitCode"`
	Signaled     bool   `json:"signaled"`               // a signal ended the task
	Signal       string `json:"signal,omitempty"`       // "SIGKILL"
	SignalNumber int    `json:"signalNumber,omitempty"` // 9 for SIGKILL
	TimedOut     bool   `json:"timedOut"`               // ended because its timeout passed
	Killed       bool   `json:"killed"`                 // ended because it was killed (Kill, DELETE)
	// KillEscalated: the group was still there after the grace period and
	// got SIGKILL.
	KillEscalated bool `json:"killEscalated"`
	// OutputCut: the output was still being written when the task ended
	// (a descendant kept it open) and was cut there.
	OutputCut bool `json:"outputCut,omitempty"`
	// DurationMs is the wall-clock time from start to end; UserMs and
	// SysMs the CPU time in user and kernel mode, in milliseconds.
	DurationMs int64 `json:"durationMs"`
	UserMs     int64 `json:"userMs"`
	SysMs      int64 `json:"sysMs"`
	// MaxRssKiB is the command's largest resident set, or 0 when Linux
	// could not tell it apart from the module's own (it counts the parent's
	// memory in a child's peak until its exec); MaxRssBoundKiB is then the
	// kernel's figure, an upper bound.
	MaxRssKiB      int64 `json:"maxRssKiB"`
	MaxRssBoundKiB int64 `json:"maxRssBoundKiB"`
}

// Stream is a task's stdout or stderr as a task carries it.
type Stream struct {
	TotalBytes  int64 `json:"totalBytes"`  // written by the task, kept or not
	StoredBytes int64 `json:"storedBytes"` // kept (head and tail up to max_output_bytes)
	Truncated   bool  `json:"truncated"`   // some bytes were not kept: see DroppedRanges
	// DroppedRange is the first [from, to) byte range that was not kept,
	// the only one unless StoreError is set.
	DroppedRange *[2]int64 `json:"droppedRange,omitempty"`
	// DroppedRanges are all of them, in order: the middle the module's
	// max_output_bytes dropped, then, with StoreError, everything from
	// where storing failed. The stored bytes are the stream without them.
	DroppedRanges [][2]int64 `json:"droppedRanges,omitempty"`
	// StoreError says why the output could not be stored from some point
	// on ("no space left on device"); the command was not blocked and
	// TotalBytes counts all it wrote. "" normally.
	StoreError string `json:"storeError,omitempty"`
	// Encoding is "utf-8" (Text is the bytes) or "base64" (Text is their
	// standard base64); see Bytes.
	Encoding string `json:"encoding"`
	Text     string `json:"text"` // the stored bytes, up to 64 KiB, encoded as Encoding says
	// TextComplete is false when more is stored than Text carries: read
	// the rest with Output.
	TextComplete bool `json:"textComplete"`
}

// Bytes returns the bytes Text carries, decoding base64.
func (s *Stream) Bytes() ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	if s.Encoding == "base64" {
		return base64.StdEncoding.DecodeString(s.Text)
	}
	return []byte(s.Text), nil
}

// Start starts a task and returns it as soon as it is running (201) or
// queued (202). With an IdempotencyKey already used, it returns the task
// the key started, with Replayed set, and starts nothing (200).
func (c *Client) Start(ctx context.Context, r RunRequest) (Task, error) {
	return c.start(ctx, r, 0)
}

func (c *Client) start(ctx context.Context, r RunRequest, wait time.Duration) (Task, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var t Task
	resp, err := c.call(ctx, request{method: http.MethodPost, path: "/tasks", query: q, body: r.body()}, &t)
	if err != nil {
		return Task{}, err
	}
	t.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	return t, nil
}

// longPoll is how long one request of Wait and Run waits on the server.
const longPoll = 60 * time.Second

// pollWait is how long the next long-poll may wait: longPoll, or less so
// that it answers before ctx's deadline.
func pollWait(ctx context.Context) time.Duration {
	w := longPoll
	if dl, ok := ctx.Deadline(); ok {
		w = min(w, time.Until(dl).Truncate(time.Millisecond)*9/10)
	}
	return max(w.Truncate(time.Millisecond), time.Millisecond)
}

// Run runs a task to its end: it starts it with ?wait= and, if it has not
// ended within that request, waits as Wait does. When ctx ends first, Run
// returns the task as last seen with ctx's error; the task keeps running.
func (c *Client) Run(ctx context.Context, r RunRequest) (Task, error) {
	t, err := c.start(ctx, r, pollWait(ctx))
	if err != nil || t.Final() {
		return t, err
	}
	replayed := t.Replayed
	t, err = c.wait(ctx, t)
	t.Replayed = replayed
	return t, err
}

// Get returns a task.
func (c *Client) Get(ctx context.Context, id string) (Task, error) {
	return c.get(ctx, id, 0)
}

func (c *Client) get(ctx context.Context, id string, wait time.Duration) (Task, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var t Task
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/tasks/" + url.PathEscape(id), query: q}, &t)
	return t, err
}

// Wait returns the task once it has ended, long-polling GET
// /remote/tasks/{id}?wait=60s. When ctx ends first, it returns the task as
// last seen (the zero Task if never) with ctx's error.
func (c *Client) Wait(ctx context.Context, id string) (Task, error) {
	return c.wait(ctx, Task{ID: id})
}

func (c *Client) wait(ctx context.Context, last Task) (Task, error) {
	id := last.ID
	for {
		if err := ctx.Err(); err != nil {
			return last, err
		}
		t, err := c.get(ctx, id, pollWait(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return last, err
			}
			return Task{}, err
		}
		if t.Final() {
			return t, nil
		}
		last = t
	}
}

// ListOptions filter List.
type ListOptions struct {
	State  string            // one of the State constants; "" for all
	Labels map[string]string // tasks with all of these labels
	Limit  int               // page size: 0 for the server's (100), at most 1000
	Cursor string            // the next of the previous page
}

// List returns a page of the tasks the caller may view, oldest first, and
// the cursor of the next page ("" after the last). Listed tasks carry no
// Stdout and Stderr.
func (c *Client) List(ctx context.Context, o ListOptions) (tasks []Task, next string, err error) {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", o.State)
	}
	for k, v := range o.Labels {
		q.Add("label", k+"="+v)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	var page struct {
		Tasks []Task `json:"tasks"`
		Next  string `json:"next_cursor"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/tasks", query: q}, &page); err != nil {
		return nil, "", err
	}
	return page.Tasks, page.Next, nil
}

// All iterates over every task List finds from o.Cursor on, page by page;
// an error ends the iteration.
func (c *Client) All(ctx context.Context, o ListOptions) iter.Seq2[Task, error] {
	return func(yield func(Task, error) bool) {
		for {
			tasks, next, err := c.List(ctx, o)
			if err != nil {
				yield(Task{}, err)
				return
			}
			for _, t := range tasks {
				if !yield(t, nil) {
					return
				}
			}
			if next == "" || len(tasks) == 0 {
				return
			}
			o.Cursor = next
		}
	}
}

// Signal sends a signal ("SIGHUP", "HUP", "1") to a running task: to its
// whole process group with scope "group" or "" (the default), to the
// command's own process with "leader". A task that has ended is a 409.
func (c *Client) Signal(ctx context.Context, id, signal, scope string) error {
	body := map[string]string{"signal": signal}
	if scope != "" {
		body["scope"] = scope
	}
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/tasks/" + url.PathEscape(id) + "/signal", body: body}, nil)
	return err
}

// Kill kills a running or queued task: SIGTERM to its group, then SIGKILL
// after its grace period. It returns once the kill is under way (202);
// Wait for the outcome.
//
// DELETE /remote/tasks/{id} purges a task that has ended, so Kill first
// checks that the task is still running and answers for one that has
// ended as the server does for a signal: an *Error with StatusCode 409
// (ErrConflict), the task untouched. A task that ends between that check
// and the kill is purged.
func (c *Client) Kill(ctx context.Context, id string) error {
	t, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if t.Final() {
		return &Error{StatusCode: http.StatusConflict, Message: fmt.Sprintf("task %s has already ended (%s); Delete purges it", id, t.State)}
	}
	_, err = c.call(ctx, request{method: http.MethodDelete, path: "/tasks/" + url.PathEscape(id)}, nil)
	return err
}

// Delete purges a task that has ended: the module forgets it and removes
// its output (204). A running task is not killed: Delete answers an
// *Error with StatusCode 409 (ErrConflict) without sending the DELETE.
func (c *Client) Delete(ctx context.Context, id string) error {
	t, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if !t.Final() {
		return &Error{StatusCode: http.StatusConflict, Message: fmt.Sprintf("task %s is %s; Kill it first", id, t.State)}
	}
	_, err = c.call(ctx, request{method: http.MethodDelete, path: "/tasks/" + url.PathEscape(id)}, nil)
	return err
}

// OutputOptions select what OpenOutput reads.
type OutputOptions struct {
	Stream string // "stdout" (the default when "") or "stderr"
	Offset int64  // the first byte
	Limit  int64  // the most bytes to read; 0 for all
	Follow bool   // keep reading until the task ends
}

// OutputReader is a task's raw output, as OpenOutput returns it: read it,
// then close it.
type OutputReader struct {
	io.ReadCloser
	// TotalBytes is what the task had written when the answer started
	// (the X-Total-Bytes header).
	TotalBytes int64
	// Truncated and DroppedRange: the [from, to) bytes that were not kept
	// (max_output_bytes) are skipped.
	Truncated    bool
	DroppedRange *[2]int64 // nil when nothing was dropped
}

// Output returns a task's stdout or stderr as raw bytes from offset on;
// with follow, the stream goes on until the task ends. The reader must be
// closed; cancelling ctx stops it.
func (c *Client) Output(ctx context.Context, id, stream string, offset int64, follow bool) (io.ReadCloser, error) {
	o, err := c.OpenOutput(ctx, id, OutputOptions{Stream: stream, Offset: offset, Follow: follow})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// OpenOutput is Output with a limit and the stream's size.
func (c *Client) OpenOutput(ctx context.Context, id string, o OutputOptions) (*OutputReader, error) {
	if o.Stream == "" {
		o.Stream = "stdout"
	}
	q := url.Values{}
	if o.Offset != 0 {
		q.Set("offset", strconv.FormatInt(o.Offset, 10))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.FormatInt(o.Limit, 10))
	}
	if o.Follow {
		q.Set("follow", "true")
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/tasks/" + url.PathEscape(id) + "/" + url.PathEscape(o.Stream), query: q})
	if err != nil {
		return nil, err
	}
	r := &OutputReader{ReadCloser: &bodyReader{ctx: ctx, rc: resp.Body}}
	r.TotalBytes, _ = strconv.ParseInt(resp.Header.Get("X-Total-Bytes"), 10, 64)
	r.Truncated = resp.Header.Get("X-Truncated") == "true"
	if from, to, ok := strings.Cut(resp.Header.Get("X-Dropped-Range"), "-"); ok {
		f, err1 := strconv.ParseInt(from, 10, 64)
		t, err2 := strconv.ParseInt(to, 10, 64)
		if err1 == nil && err2 == nil {
			r.DroppedRange = &[2]int64{f, t}
		}
	}
	return r, nil
}

// bodyReader classes a broken body as ErrUnreachable.
type bodyReader struct {
	ctx context.Context
	rc  io.ReadCloser
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = transportError(b.ctx, err)
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.rc.Close() }

// Status is GET /remote/status.
type Status struct {
	Release    string `json:"release"`     // the module's version
	Result     string `json:"result"`      // "ok"
	Status     string `json:"status"`      // "active"
	WorkDir    string `json:"work_dir"`    // the agent's --work_dir
	SandboxDir string `json:"sandbox_dir"` // the agent's --sandbox_directory
	// Task counts: running, waiting for a slot, and remembered (ended);
	// "tasks": {"running", "queued", "retained"} in the API, flat when
	// a Status is marshalled.
	Running  int `json:"running"`
	Queued   int `json:"queued"`   // waiting for a slot (max_concurrent)
	Retained int `json:"retained"` // ended and still remembered (retention, max_tasks)
}

// Status returns the module's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s struct {
		Status
		Tasks struct {
			Running  int `json:"running"`
			Queued   int `json:"queued"`
			Retained int `json:"retained"`
		} `json:"tasks"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/status"}, &s); err != nil {
		return Status{}, err
	}
	st := s.Status
	st.Running, st.Queued, st.Retained = s.Tasks.Running, s.Tasks.Queued, s.Tasks.Retained
	return st, nil
}

// Decision is what POST /remote/policy/check answers: whether Start would
// be allowed for the caller now, and by which ACL rules.
type Decision struct {
	// Allowed reports whether every check allowed the request.
	Allowed bool `json:"allowed"`
	// Rule is the first denying rule, or every deciding rule when allowed.
	Rule string `json:"rule"`
	// Principal is who the host authenticated the caller as ("" for none).
	Principal string `json:"principal"`
	// Command is the executable the ACLs judged (resolved through PATH
	// when the module has ACLs).
	Command string `json:"command"`
	// Checks are the individual checks, each {"action", "object",
	// "allowed", "rule"}; see CheckList.
	Checks []json.RawMessage `json:"checks"`
}

// Check is one ACL check of a Decision.
type Check struct {
	Action  string `json:"action"`  // run_remote_commands, run_remote_shell, run_remote_commands_as_user
	Object  string `json:"object"`  // what was checked: the command, or the user to run as
	Allowed bool   `json:"allowed"` // the check's outcome
	Rule    string `json:"rule"`    // the rule that decided it
}

// CheckList decodes Checks.
func (d Decision) CheckList() ([]Check, error) {
	out := make([]Check, len(d.Checks))
	for i, raw := range d.Checks {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("client: check %d: %w", i, err)
		}
	}
	return out, nil
}

// PolicyCheck asks whether Start(r) would be allowed for the caller,
// without running anything. A denial is a Decision with Allowed false, not
// an error.
func (c *Client) PolicyCheck(ctx context.Context, r RunRequest) (Decision, error) {
	var d Decision
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/policy/check", body: r.body()}, &d)
	return d, err
}

// OpenAPI returns the OpenAPI 3.0 document of the module's API, GET
// /remote/openapi.json (never authenticated).
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/openapi.json"})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if !json.Valid(b) {
		return nil, errors.New("client: GET /remote/openapi.json: the answer is not JSON")
	}
	return b, nil
}
