package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/execmod/execmod/module/client"
)

// outcome is how a run went on one agent: a line of the summary, an
// object of --json.
type outcome struct {
	Agent      string       `json:"agent"`
	State      string       `json:"state"`              // the task's final state, or skipped, unreachable, denied, interrupted, error
	ExitCode   *int         `json:"exitCode,omitempty"` // as remotectl would exit for this agent
	DurationMs int64        `json:"durationMs"`
	Error      string       `json:"error,omitempty"`
	Task       *client.Task `json:"task,omitempty"`
}

func (o outcome) failed() bool {
	return o.State != "skipped" && (o.ExitCode == nil || *o.ExitCode != 0)
}

// budget parses N or N% of total. A percentage rounds up when up is set
// (a concurrency), down otherwise (an error budget).
func budget(flagName, s string, total, minimum int, up bool) (int, error) {
	pct := strings.HasSuffix(s, "%")
	n, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	if err != nil || n < minimum || (pct && n > 100) {
		return 0, usagef("--%s: %q is not N (at least %d) or N%% (0-100)", flagName, s, minimum)
	}
	if !pct {
		return n, nil
	}
	v := total * n
	if up {
		v += 99
	}
	return max(v/100, minimum), nil
}

// fanOut is run on several agents.
func (e *env) fanOut(o *options, args []string) error {
	req, err := e.request(o, args)
	if err != nil {
		return err
	}
	agents, err := e.agentList(o)
	if err != nil {
		return err
	}
	conc, err := budget("max-concurrency", o.maxConcurrency, len(agents), 1, true)
	if err != nil {
		return err
	}
	maxErrors, err := budget("max-errors", o.maxErrors, len(agents), 0, false)
	if err != nil {
		return err
	}
	con := &console{progress: e.progress, stderr: e.stderr}
	results := make([]outcome, len(agents))
	var (
		mu                    sync.Mutex
		failures, done, began int
	)
	stop := e.startConsoleProgress(con, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d/%d agents done, %d failed, %d running", done, len(agents), failures, began-done)
	})
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	stoppedAt := -1
	for i, a := range agents {
		sem <- struct{}{}
		mu.Lock()
		over := failures > maxErrors
		if !over {
			began++
		}
		mu.Unlock()
		if over || e.ctx.Err() != nil {
			<-sem
			stoppedAt = i
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r := e.runOn(o, con, a, req)
			mu.Lock()
			results[i] = r
			done++
			if r.failed() {
				failures++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	stop()
	if stoppedAt >= 0 {
		for i := stoppedAt; i < len(agents); i++ {
			why := fmt.Sprintf("not started: %d failures exceed --max-errors %s", failures, o.maxErrors)
			if e.ctx.Err() != nil {
				why = "not started: interrupted"
			}
			results[i] = outcome{Agent: agents[i], State: "skipped", Error: why}
		}
	}
	if o.json {
		if err := writeJSON(e.stdout, results); err != nil {
			return err
		}
	} else {
		writeSummary(e.stderr, results)
	}
	for _, r := range results {
		if r.failed() {
			code := exitFailure
			if r.ExitCode != nil {
				code = *r.ExitCode
			}
			return exitError{code, ""}
		}
	}
	if stoppedAt >= 0 {
		return exitError{exitInterrupted, ""}
	}
	return nil
}

// runOn runs req on agent, its output prefixed line by line.
func (e *env) runOn(o *options, con *console, agent string, req client.RunRequest) outcome {
	start := e.now()
	res := outcome{Agent: agent}
	fail := func(err error) outcome {
		d := describe(agent, "", err)
		res.State, res.Error, res.ExitCode = "error", d.msg, &d.code
		switch d.code {
		case exitUnreachable:
			res.State = "unreachable"
		case exitNoPerm:
			res.State = "denied"
		case exitInterrupted:
			res.State = "interrupted"
		}
		res.DurationMs = e.now().Sub(start).Milliseconds()
		return res
	}
	c, err := e.connect(o, agent)
	if err != nil {
		return fail(err)
	}
	t, err := c.Start(e.ctx, req)
	if err != nil {
		return fail(err)
	}
	if !o.json {
		var wg sync.WaitGroup
		for _, s := range []struct {
			name string
			w    io.Writer
		}{{"stdout", e.stdout}, {"stderr", e.stderr}} {
			wg.Go(func() {
				lw := &lineWriter{con: con, w: s.w, prefix: agent + ": "}
				err := follow(e.ctx, c, t.ID, s.name, lw)
				lw.flush()
				if err != nil && e.ctx.Err() == nil {
					con.line(e.stderr, agent+": ", []byte("remotectl: "+describe(agent, t.ID, err).msg+"\n"))
				}
			})
		}
		wg.Wait()
	}
	t, err = c.Wait(e.ctx, t.ID)
	if err != nil {
		if e.ctx.Err() != nil {
			return fail(killInterrupted(c, agent, t.ID))
		}
		return fail(err)
	}
	code, why := exitCode(t)
	res.State, res.ExitCode, res.Task = t.State, &code, &t
	if code != 0 && why != "" {
		res.Error = why
	}
	res.DurationMs = e.now().Sub(start).Milliseconds()
	if t.Result != nil && t.Result.DurationMs > 0 {
		res.DurationMs = t.Result.DurationMs
	}
	return res
}

// writeSummary writes the table AGENT STATE EXIT DURATION and a count.
func writeSummary(w io.Writer, results []outcome) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tSTATE\tEXIT\tDURATION\t")
	ok, failed, skipped := 0, 0, 0
	for _, r := range results {
		exit, dur := "-", "-"
		if r.ExitCode != nil {
			exit = strconv.Itoa(*r.ExitCode)
		}
		if r.State != "skipped" {
			dur = (time.Duration(r.DurationMs) * time.Millisecond).String()
		}
		note := ""
		if r.Error != "" {
			note = r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Agent, r.State, exit, dur, note)
		switch {
		case r.State == "skipped":
			skipped++
		case r.failed():
			failed++
		default:
			ok++
		}
	}
	tw.Flush()
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		io.WriteString(w, strings.TrimRight(l, " \n")+map[bool]string{true: "\n"}[strings.HasSuffix(l, "\n")])
	}
	fmt.Fprintf(w, "%d agents: %d succeeded, %d failed, %d skipped\n", len(results), ok, failed, skipped)
}

// console serializes whole lines from every agent onto stdout and
// stderr, with a progress line kept at the bottom of stderr on a terminal.
type console struct {
	mu       sync.Mutex
	progress bool
	stderr   io.Writer
	status   string // the progress line drawn, if any
}

// line writes one whole line (prefix + b, b ends in a newline) in one write.
func (c *console) line(w io.Writer, prefix string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != "" {
		fmt.Fprint(c.stderr, "\r\033[K")
	}
	_, _ = w.Write(append([]byte(prefix), b...))
	if c.status != "" {
		fmt.Fprint(c.stderr, c.status)
	}
}

func (c *console) draw(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.stderr, "\r\033[K%s", s)
	c.status = s
}

func (e *env) startConsoleProgress(c *console, line func() string) (stop func()) {
	if !e.progress {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				c.draw(line())
			case <-done:
				c.mu.Lock()
				if c.status != "" {
					fmt.Fprint(c.stderr, "\r\033[K")
					c.status = ""
				}
				c.mu.Unlock()
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// maxLine bounds a line held back waiting for its newline.
const maxLine = 64 << 10

// lineWriter buffers one stream of one agent and hands the console
// whole lines; flush writes a last partial line with a newline added.
type lineWriter struct {
	con    *console
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) >= maxLine {
				l.con.line(l.w, l.prefix, append(l.buf[:maxLine:maxLine], '\n'))
				l.buf = append([]byte(nil), l.buf[maxLine:]...)
				continue
			}
			return len(p), nil
		}
		l.con.line(l.w, l.prefix, l.buf[:i+1])
		l.buf = l.buf[i+1:]
	}
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.con.line(l.w, l.prefix, append(l.buf, '\n'))
		l.buf = nil
	}
}
