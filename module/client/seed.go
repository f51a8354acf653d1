package client

import (
	"context"
	"net/http"
	"time"
)

// Execute runs a command through the seed API, POST /remote/execute (the
// Mesos execute module's), and returns its pid and task id once it has
// started. timeout 0 is the module's default_timeout.
func (c *Client) Execute(ctx context.Context, command string, args []string, shell bool, timeout time.Duration) (pid int, id string, err error) {
	body := struct {
		Command   string   `json:"command"`
		Arguments []string `json:"arguments,omitempty"`
		Shell     bool     `json:"shell"`
		Timeout   string   `json:"timeout,omitempty"`
	}{command, args, shell, duration(timeout)}
	var out struct {
		Pid int    `json:"pid"`
		ID  string `json:"id"`
	}
	if _, err := c.call(ctx, request{method: http.MethodPost, path: "/execute", body: body}, &out); err != nil {
		return 0, "", err
	}
	return out.Pid, out.ID, nil
}

// SeedResult is what POST /remote/task answers: a command still running
// (Pending, with Pid, ID and State) or how it ended.
type SeedResult struct {
	Pending bool   // the command is still running: only Pid, ID and State are set
	Pid     int    // the command's pid
	ID      string // its task id (see Task)
	State   string // one of the State constants
	// ExitCode is the exit status, or the signal number when Signaled; 0
	// when the command has no result (failed_to_start, lost: see Error).
	ExitCode     int
	Signaled     bool   // a signal ended the command
	Signal       string // "SIGTERM" when Signaled
	SignalNumber int    // 15 for SIGTERM
	TimedOut     bool   // ended because its timeout passed
	Killed       bool   // ended because it was killed
	// KillEscalated: SIGKILL followed SIGTERM after the grace period.
	KillEscalated bool
	// HasExitCode is false when the answer's exitCode is null.
	HasExitCode bool
	Error       string // why the command failed to start or was lost
	// Stdout and Stderr are the whole stored output, as text, or base64
	// when StdoutEncoding/StderrEncoding says "base64".
	Stdout, Stderr                   string
	StdoutEncoding, StderrEncoding   string     // "utf-8" or "base64"
	StdoutBytes, StderrBytes         int64      // written by the command
	StdoutTruncated, StderrTruncated bool       // some output was not kept (max_output_bytes, or a store error)
	DurationMs                       int64      // wall-clock time from start to end
	UserMs, SysMs                    int64      // CPU time in user and kernel mode
	MaxRssKiB, MaxRssBoundKiB        int64      // largest resident set, or 0 and an upper bound (see Result)
	StartedAt, EndedAt               *time.Time // nil when unknown
	// StdoutStoreError and StderrStoreError say why output could not be
	// stored from some point on ("no space left on device"); "" normally.
	StdoutStoreError, StderrStoreError string
	// PersistError, on a Pending answer, says the command has ended but
	// its result is held back until the module can write it to its task
	// journal (a full disk).
	PersistError string
}

// seedJSON is POST /remote/task's answer.
type seedJSON struct {
	Result          string     `json:"result"` // "pending"
	Pid             int        `json:"pid"`
	ID              string     `json:"id"`
	State           string     `json:"state"`
	ExitCode        *int       `json:"exitCode"`
	Signaled        bool       `json:"signaled"`
	Signal          *string    `json:"signal"`
	SignalNumber    int        `json:"signalNumber"`
	TimedOut        bool       `json:"timedOut"`
	Killed          bool       `json:"killed"`
	KillEscalated   bool       `json:"killEscalated"`
	DurationMs      int64      `json:"durationMs"`
	Error           string     `json:"error"`
	StartedAt       *time.Time `json:"startedAt"`
	EndedAt         *time.Time `json:"endedAt"`
	Stdout          string     `json:"stdout"`
	Stderr          string     `json:"stderr"`
	StdoutEncoding  string     `json:"stdoutEncoding"`
	StderrEncoding  string     `json:"stderrEncoding"`
	StdoutBytes     int64      `json:"stdoutBytes"`
	StderrBytes     int64      `json:"stderrBytes"`
	StdoutTruncated bool       `json:"stdoutTruncated"`
	StderrTruncated bool       `json:"stderrTruncated"`
	StdoutStore     string     `json:"stdoutStoreError"`
	StderrStore     string     `json:"stderrStoreError"`
	PersistError    string     `json:"persistError"`
	Rusage          struct {
		UserMs         int64 `json:"userMs"`
		SysMs          int64 `json:"sysMs"`
		MaxRssKiB      int64 `json:"maxRssKiB"`
		MaxRssBoundKiB int64 `json:"maxRssBoundKiB"`
	} `json:"rusage"`
}

// TaskByPid asks the seed API, POST /remote/task, for the outcome of the
// command with process id pid (the newest, if the pid was reused). An
// unknown pid is a 404.
func (c *Client) TaskByPid(ctx context.Context, pid int) (SeedResult, error) {
	var s seedJSON
	if _, err := c.call(ctx, request{method: http.MethodPost, path: "/task", body: map[string]int{"pid": pid}}, &s); err != nil {
		return SeedResult{}, err
	}
	r := SeedResult{
		Pending: s.Result == "pending", Pid: s.Pid, ID: s.ID, State: s.State, Signaled: s.Signaled,
		SignalNumber: s.SignalNumber, TimedOut: s.TimedOut, Killed: s.Killed, KillEscalated: s.KillEscalated,
		Error: s.Error, Stdout: s.Stdout, Stderr: s.Stderr, StdoutEncoding: s.StdoutEncoding, StderrEncoding: s.StderrEncoding,
		StdoutBytes: s.StdoutBytes, StderrBytes: s.StderrBytes, StdoutTruncated: s.StdoutTruncated, StderrTruncated: s.StderrTruncated,
		DurationMs: s.DurationMs, UserMs: s.Rusage.UserMs, SysMs: s.Rusage.SysMs, MaxRssKiB: s.Rusage.MaxRssKiB, MaxRssBoundKiB: s.Rusage.MaxRssBoundKiB,
		StartedAt: s.StartedAt, EndedAt: s.EndedAt,
		StdoutStoreError: s.StdoutStore, StderrStoreError: s.StderrStore, PersistError: s.PersistError,
	}
	if s.ExitCode != nil {
		r.ExitCode, r.HasExitCode = *s.ExitCode, true
	}
	if s.Signal != nil {
		r.Signal = *s.Signal
	}
	if !r.Pending {
		for _, enc := range []*string{&r.StdoutEncoding, &r.StderrEncoding} {
			if *enc == "" {
				*enc = "utf-8"
			}
		}
	}
	return r, nil
}

// Pids lists, through the seed API (GET /remote/task), the process ids of
// the commands the module remembers and the caller may view, with their
// task ids.
func (c *Client) Pids(ctx context.Context) (pids []int, ids []string, err error) {
	var out struct {
		Pids []int    `json:"pids"`
		IDs  []string `json:"ids"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/task"}, &out); err != nil {
		return nil, nil, err
	}
	return out.Pids, out.IDs, nil
}

// KillPid sends signal ("" for SIGTERM) to the process group of the
// command with process id pid through the seed API, POST /remote/kill.
// SIGTERM is followed by SIGKILL after the grace period.
func (c *Client) KillPid(ctx context.Context, pid int, signal string) error {
	body := map[string]any{"pid": pid}
	if signal != "" {
		body["signal"] = signal
	}
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/kill", body: body}, &struct{}{})
	return err
}
