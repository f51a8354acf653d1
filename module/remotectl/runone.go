package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/execmod/execmod/module/client"
)

// request builds the RunRequest of run and policy check.
func (e *env) request(o *options, args []string) (client.RunRequest, error) {
	if len(args) == 0 {
		return client.RunRequest{}, usagef("no command: remotectl run [flags] -- CMD [ARGS...]")
	}
	if o.shell && len(args) > 1 {
		return client.RunRequest{}, usagef("--shell takes the command as one argument: --shell -- 'CMD ARGS'")
	}
	stdin, err := e.readStdin(o.stdin)
	if err != nil {
		return client.RunRequest{}, err
	}
	return client.RunRequest{Command: args[0], Args: args[1:], Shell: o.shell, Timeout: o.timeout, Grace: o.grace,
		Env: o.envs.m, Cwd: o.cwd, User: o.user, Stdin: stdin, Labels: o.labels.m, IdempotencyKey: o.idemKey}, nil
}

// runOne is run on one agent.
func (e *env) runOne(o *options, args []string) error {
	req, err := e.request(o, args)
	if err != nil {
		return err
	}
	agent := e.singleAgent(o)
	c, err := e.connect(o, agent)
	if err != nil {
		return err
	}
	t, err := c.Start(e.ctx, req)
	if err != nil {
		return describe(agent, "", err)
	}
	if o.detach {
		if o.json {
			return writeJSON(e.stdout, t)
		}
		fmt.Fprintln(e.stdout, t.ID)
		return nil
	}
	if !o.json {
		// Both streams live, each to its own terminal stream.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []struct {
			name string
			w    io.Writer
		}{{"stdout", e.stdout}, {"stderr", e.stderr}} {
			wg.Go(func() { errs[i] = follow(e.ctx, c, t.ID, s.name, s.w) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil && e.ctx.Err() == nil {
			fmt.Fprintf(e.stderr, "remotectl: %s\n", describe(agent, t.ID, err).msg)
		}
	}
	return e.finish(o, c, agent, t.ID, true)
}

// finish waits for task id to end, prints it with --json, and returns its
// exit code. Interrupted, it kills the task first if killOnInterrupt.
func (e *env) finish(o *options, c *client.Client, agent, id string, killOnInterrupt bool) error {
	stop := e.startProgress(func(d time.Duration) string {
		return fmt.Sprintf("waiting for task %s on %s: %s", id, agent, d.Truncate(time.Second))
	})
	t, err := c.Wait(e.ctx, id)
	stop()
	if err != nil {
		if e.ctx.Err() != nil && !killOnInterrupt {
			return exitError{exitInterrupted, fmt.Sprintf("interrupted; task %s keeps running on %s", id, agent)}
		}
		if e.ctx.Err() != nil {
			return killInterrupted(c, agent, id)
		}
		return describe(agent, id, err)
	}
	if o.json {
		if err := writeJSON(e.stdout, t); err != nil {
			return err
		}
	}
	code, why := exitCode(t)
	if why != "" && !o.json {
		return exitError{code, why}
	}
	return exitError{code, ""}
}

// killInterrupted kills task id once we are interrupted, with a context
// of its own (ours is done), and says how it went: exit 130.
func killInterrupted(c *client.Client, agent, id string) exitError {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Kill(ctx, id); err != nil {
		return exitError{exitInterrupted, fmt.Sprintf("interrupted; killing task %s failed: %s", id, describe(agent, id, err).msg)}
	}
	return exitError{exitInterrupted, fmt.Sprintf("interrupted; task %s on %s killed", id, agent)}
}

// follow copies a stream of task id to w until the task ends, resuming
// from where it was after a broken connection.
func follow(ctx context.Context, c *client.Client, id, stream string, w io.Writer) error {
	var off int64
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var rc io.ReadCloser
		rc, err = c.Output(ctx, id, stream, off, true)
		if err != nil {
			if errors.Is(err, client.ErrUnreachable) || errors.Is(err, client.ErrUnavailable) {
				if werr := backoff(ctx, attempt); werr != nil {
					return werr
				}
				continue
			}
			return err
		}
		var n int64
		n, err = io.Copy(w, rc)
		rc.Close()
		off += n
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 0 {
			attempt = 0
		}
		if werr := backoff(ctx, attempt); werr != nil {
			return werr
		}
	}
	return err
}

// backoff waits before a retry (a retry delay, not synchronization).
func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(100<<attempt) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exitCode is the exit code a finished task maps to, and a note on
// stderr for a command that did not exit by itself.
func exitCode(t client.Task) (int, string) {
	r := t.Result
	switch t.State {
	case "exited":
		if r != nil {
			return r.ExitCode, ""
		}
	case "timed_out":
		return exitTimeout, fmt.Sprintf("task %s timed out", t.ID)
	case "signaled", "killed":
		if r != nil {
			n := r.SignalNumber
			if n == 0 {
				n = r.ExitCode // the seed's semantics: the signal number
			}
			return exitSignalBase + n, fmt.Sprintf("task %s %s by %s", t.ID, map[bool]string{true: "killed", false: "terminated"}[t.State == "killed"], r.Signal)
		}
	case "failed_to_start":
		return exitNotStarted, fmt.Sprintf("task %s could not start: %s", t.ID, t.Error)
	case "lost":
		return exitLost, fmt.Sprintf("task %s was lost: %s", t.ID, t.Error)
	}
	return exitFailure, fmt.Sprintf("task %s ended in state %q", t.ID, t.State)
}

// wait is the wait command.
func (e *env) wait(o *options, id string) error {
	agent := e.singleAgent(o)
	c, err := e.connect(o, agent)
	if err != nil {
		return err
	}
	return e.finish(o, c, agent, id, false)
}
