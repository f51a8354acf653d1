package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/execmod/execmod/module/client"
)

// connectOne is the client for a one-agent command.
func (e *env) connectOne(o *options) (*client.Client, string, error) {
	agent := e.singleAgent(o)
	c, err := e.connect(o, agent)
	return c, agent, err
}

// ps lists tasks, every page.
func (e *env) ps(o *options) error {
	c, agent, err := e.connectOne(o)
	if err != nil {
		return err
	}
	var all []client.Task
	lo := client.ListOptions{State: o.state, Labels: o.labels.m, Limit: 1000}
	for {
		tasks, next, err := c.List(e.ctx, lo)
		if err != nil {
			return describe(agent, "", err)
		}
		all = append(all, tasks...)
		if next == "" || len(tasks) == 0 {
			break
		}
		lo.Cursor = next
	}
	if o.json {
		if all == nil {
			all = []client.Task{}
		}
		return writeJSON(e.stdout, all)
	}
	writeTable(e.stdout, all, e.now())
	return nil
}

// writeTable writes tasks as ID STATE PID EXIT AGE COMMAND.
func writeTable(w io.Writer, tasks []client.Task, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPID\tEXIT\tAGE\tCOMMAND")
	for _, t := range tasks {
		pid := "-"
		if t.Pid != 0 {
			pid = strconv.Itoa(t.Pid)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.State, pid, exitColumn(t), age(now.Sub(t.CreatedAt)), commandLine(t, 60))
	}
	tw.Flush()
}

// exitColumn is a finished task's exit code, or the signal that ended it.
func exitColumn(t client.Task) string {
	r := t.Result
	switch {
	case r == nil:
		return "-"
	case r.Signaled && r.Signal != "":
		return r.Signal
	case r.Signaled:
		return "signal " + strconv.Itoa(r.ExitCode)
	}
	return strconv.Itoa(r.ExitCode)
}

// age is a duration the way ps and kubectl show it: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// commandLine is the task's command as a shell would show it, cut at max
// runes (0: whole).
func commandLine(t client.Task, max int) string {
	// Arguments is the whole argv ("/bin/sh", "-c", ... for a shell
	// command); Command the resolved executable.
	argv := t.Arguments
	if len(argv) == 0 {
		argv = []string{t.Command}
	}
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = quote(a)
	}
	s := strings.Join(parts, " ")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); max > 0 && len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '/' || r == '=' || r == ':' || r == ',' || r == '+' || r == '@' ||
			r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// get shows one task.
func (e *env) get(o *options, id string) error {
	c, agent, err := e.connectOne(o)
	if err != nil {
		return err
	}
	t, err := c.Get(e.ctx, id)
	if err != nil {
		return describe(agent, id, err)
	}
	if o.json {
		return writeJSON(e.stdout, t)
	}
	writeTask(e.stdout, t)
	return nil
}

// writeTask writes a task as "Field: value" lines.
func writeTask(w io.Writer, t client.Task) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	ts := func(p *time.Time) string {
		if p == nil {
			return ""
		}
		return p.UTC().Format(time.RFC3339Nano)
	}
	row("ID", t.ID)
	row("State", t.State)
	if t.Pid != 0 {
		row("Pid", strconv.Itoa(t.Pid))
	}
	row("Command", commandLine(t, 0))
	row("Cwd", t.Cwd)
	row("User", t.User)
	row("Principal", t.Principal)
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(t.Labels)) {
		labels = append(labels, k+"="+t.Labels[k])
	}
	row("Labels", strings.Join(labels, ","))
	row("Created", ts(&t.CreatedAt))
	row("Started", ts(t.StartedAt))
	row("Ended", ts(t.EndedAt))
	if r := t.Result; r != nil {
		row("Exit", exitColumn(t))
		flags := []string{}
		for _, f := range []struct {
			on   bool
			name string
		}{{r.TimedOut, "timed out"}, {r.Killed, "killed"}, {r.KillEscalated, "SIGKILL after the grace period"}} {
			if f.on {
				flags = append(flags, f.name)
			}
		}
		row("Ended by", strings.Join(flags, ", "))
		row("Duration", (time.Duration(r.DurationMs) * time.Millisecond).String())
		rss := fmt.Sprintf("%d KiB", r.MaxRssKiB)
		if r.MaxRssKiB == 0 && r.MaxRssBoundKiB > 0 {
			rss = fmt.Sprintf("at most %d KiB", r.MaxRssBoundKiB) // Linux could not tell the command's own peak
		}
		row("CPU", fmt.Sprintf("user %dms, sys %dms; max RSS %s", r.UserMs, r.SysMs, rss))
	}
	row("Error", t.Error)
	for _, s := range []struct {
		name string
		s    *client.Stream
	}{{"Stdout", t.Stdout}, {"Stderr", t.Stderr}} {
		if s.s == nil {
			continue
		}
		v := fmt.Sprintf("%d bytes", s.s.TotalBytes)
		if s.s.Truncated {
			v += fmt.Sprintf(" (%d stored; the middle was dropped)", s.s.StoredBytes)
		}
		row(s.name, v)
	}
	tw.Flush()
	for _, s := range []struct {
		name string
		s    *client.Stream
	}{{"stdout", t.Stdout}, {"stderr", t.Stderr}} {
		if s.s == nil || s.s.Text == "" {
			continue
		}
		fmt.Fprintf(w, "--- %s", s.name)
		if s.s.Encoding != "" && s.s.Encoding != "utf-8" {
			fmt.Fprintf(w, " (%s)", s.s.Encoding)
		}
		if !s.s.TextComplete {
			fmt.Fprintf(w, " (the first part; remotectl logs for all of it)")
		}
		fmt.Fprintln(w)
		fmt.Fprint(w, s.s.Text)
		if !strings.HasSuffix(s.s.Text, "\n") {
			fmt.Fprintln(w)
		}
	}
}

// logs prints a stream, following it with -f.
func (e *env) logs(o *options, id string) error {
	c, agent, err := e.connectOne(o)
	if err != nil {
		return err
	}
	stream := "stdout"
	if o.stderrStream {
		stream = "stderr"
	}
	if o.json {
		return usagef("logs: --json does not apply (the output is raw bytes); use get --json")
	}
	if !o.follow {
		rc, err := c.Output(e.ctx, id, stream, 0, false)
		if err != nil {
			return describe(agent, id, err)
		}
		defer rc.Close()
		if _, err := io.Copy(e.stdout, rc); err != nil {
			return describe(agent, id, err)
		}
		return nil
	}
	if err := follow(e.ctx, c, id, stream, e.stdout); err != nil {
		return describe(agent, id, err)
	}
	return nil
}

// kill kills a task, or sends it --signal.
func (e *env) kill(o *options, id string) error {
	c, agent, err := e.connectOne(o)
	if err != nil {
		return err
	}
	msg := map[string]string{"id": id, "result": "killing"}
	if o.signal == "" {
		err = c.Kill(e.ctx, id)
	} else {
		err = c.Signal(e.ctx, id, o.signal, "group")
		msg = map[string]string{"id": id, "result": "signaled", "signal": o.signal}
	}
	if err != nil {
		return describe(agent, id, err)
	}
	if o.json {
		return writeJSON(e.stdout, msg)
	}
	if o.signal == "" {
		fmt.Fprintf(e.stdout, "killing task %s (SIGTERM, then SIGKILL after its grace period)\n", id)
	} else {
		fmt.Fprintf(e.stdout, "sent %s to task %s\n", o.signal, id)
	}
	return nil
}

// status shows the module's status.
func (e *env) status(o *options) error {
	c, agent, err := e.connectOne(o)
	if err != nil {
		return err
	}
	s, err := c.Status(e.ctx)
	if err != nil {
		return describe(agent, "", err)
	}
	if o.json {
		return writeJSON(e.stdout, s)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "Agent:\t%s\nStatus:\t%s\nRelease:\t%s\nTasks:\t%d running, %d queued, %d retained\nWork dir:\t%s\nSandbox dir:\t%s\n",
		c.Agent(), s.Status, s.Release, s.Running, s.Queued, s.Retained, s.WorkDir, s.SandboxDir)
	return tw.Flush()
}

// policyCheck asks the agent whether it would run the command.
func (e *env) policyCheck(o *options, args []string) error {
	req, err := e.request(o, args)
	if err != nil {
		return err
	}
	c, agent, err := e.connectOne(o)
	if err != nil {
		return err
	}
	d, err := c.PolicyCheck(e.ctx, req)
	if err != nil {
		return describe(agent, "", err)
	}
	if o.json {
		if err := writeJSON(e.stdout, d); err != nil {
			return err
		}
	} else {
		verdict := "allowed"
		if !d.Allowed {
			verdict = "denied"
		}
		who := fmt.Sprintf("principal %q", d.Principal)
		if d.Principal == "" {
			who = "an unauthenticated caller"
		}
		fmt.Fprintf(e.stdout, "%s for %s: %s\n", verdict, who, d.Rule)
		checks, err := d.CheckList()
		if err != nil {
			return describe(agent, "", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTION\tOBJECT\tALLOWED\tRULE")
		for _, ch := range checks {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", ch.Action, ch.Object, ch.Allowed, ch.Rule)
		}
		tw.Flush()
	}
	if !d.Allowed {
		return exitError{exitNoPerm, ""}
	}
	return nil
}

// writeJSON writes v as one indented JSON value.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
