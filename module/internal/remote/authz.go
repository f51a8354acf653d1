package remote

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/execmod/execmod/internal/acl"
	"github.com/execmod/execmod/module/internal/audit"
	"github.com/execmod/execmod/module/internal/request"
	"github.com/execmod/execmod/module/internal/task"
	"github.com/execmod/execmod/sdk"
)

// forbidden is an ACL denial: a 403 naming the deciding rule.
type forbidden struct {
	msg, rule string
}

func (e *forbidden) Error() string { return e.msg }

// who names a principal in messages.
func who(principal string) string {
	if principal == "" {
		return "the unauthenticated principal"
	}
	return fmt.Sprintf("principal %q", principal)
}

// verdict is the outcome of the checks of a request to run a command.
type verdict struct {
	Allowed bool          `json:"allowed"`
	Rule    string        `json:"rule"`
	Checks  []audit.Check `json:"checks"`
	denial  string        // the message of the first denial
}

// executable is the absolute, cleaned path of what cmd would run, as
// task.Start resolves it (a bare name through the task's PATH, first
// regular file with an execute bit), so that the ACLs judge the file that
// runs; a bare name that resolves to nothing is returned as is (it will
// not start).
func (s *Service) executable(cmd request.Command) string {
	p := cmd.Path
	if strings.Contains(p, "/") {
		if !filepath.IsAbs(p) {
			p = filepath.Join(cmp.Or(cmd.Cwd, "/"), p)
		}
		return filepath.Clean(p)
	}
	path := task.DefaultPath
	for _, kv := range s.taskEnv(cmd.Env) {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		c := filepath.Join(dir, p)
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	return p
}

// authorizeRun checks a request to run cmd: run_remote_shell when it is a
// shell command, run_remote_commands for the executable and its arguments
// (a shell command is /bin/sh -c LINE), run_remote_commands_as_user when
// it names a user. Every check is made, for the audit and policy/check;
// the first denial decides. With ACLs, cmd.Path becomes the resolved
// executable, so what runs is what was judged.
func (s *Service) authorizeRun(principal string, cmd *request.Command) verdict {
	if s.acls != nil {
		cmd.Path = s.executable(*cmd)
	}
	var v verdict
	check := func(a acl.Action, obj acl.Object, what string) {
		d := s.acls.Evaluate(a, principal, obj)
		v.Checks = append(v.Checks, audit.Check{Action: string(a), Object: obj.String(), Allowed: d.Allowed, Rule: d.Rule})
		if !d.Allowed && v.denial == "" {
			v.Rule = d.Rule
			v.denial = fmt.Sprintf("%s may not %s (denied by %s)", who(principal), what, d.Rule)
		}
	}
	if cmd.Shell {
		check(acl.RunRemoteShell, acl.NoObject, "run shell commands")
	}
	var args []string
	if len(cmd.Args) > 1 {
		args = cmd.Args[1:]
	}
	obj := acl.Command(cmd.Path, args)
	check(acl.RunRemoteCommands, obj, "run "+obj.String())
	if cmd.User != "" {
		check(acl.RunRemoteCommandsAsUser, acl.Value(cmd.User), fmt.Sprintf("run commands as user %q", cmd.User))
	}
	v.Allowed = v.denial == ""
	if v.Allowed {
		var rules []string
		for _, c := range v.Checks {
			if !slices.Contains(rules, c.Rule) {
				rules = append(rules, c.Rule)
			}
		}
		v.Rule = strings.Join(rules, ", ")
	}
	return v
}

// mayView reports whether principal may view rec.
func (s *Service) mayView(principal string, rec *record) acl.Decision {
	return s.acls.Evaluate(acl.ViewRemoteTasks, principal, acl.Value(rec.Principal))
}

// authorizeTask checks action (view or kill) on the task rec and returns a
// *forbidden when denied.
func (s *Service) authorizeTask(action acl.Action, principal string, rec record, verb string) (acl.Decision, error) {
	d := s.acls.Evaluate(action, principal, acl.Value(rec.Principal))
	if d.Allowed {
		return d, nil
	}
	owner := "nobody"
	if rec.Principal != "" {
		owner = fmt.Sprintf("%q", rec.Principal)
	}
	return d, &forbidden{fmt.Sprintf("%s may not %s task %s, owned by %s (denied by %s)", who(principal), verb, rec.ID, owner, d.Rule), d.Rule}
}

// requestEntry starts an audit line for a request.
func requestEntry(r *http.Request, action string) audit.Entry {
	path, _, _ := strings.Cut(r.RequestURI, "?") // as the client sent it: /remote/tasks
	if path == "" {
		path = r.URL.Path
	}
	return audit.Entry{Principal: sdk.Principal(r), RemoteAddr: r.RemoteAddr, Route: r.Method + " " + path, Action: action}
}

// commandEntry is an audit line for a request to run cmd.
func commandEntry(r *http.Request, cmd request.Command, v verdict) audit.Entry {
	e := requestEntry(r, audit.Run)
	e.Command, e.Arguments, e.Shell, e.User, e.Cwd = cmd.Path, cmd.Args, cmd.Shell, cmd.User, cmd.Cwd
	for k := range cmd.Env {
		e.EnvKeys = append(e.EnvKeys, k)
	}
	slices.Sort(e.EnvKeys)
	e.Decision, e.Rule, e.Checks = decision(v.Allowed), v.Rule, v.Checks
	return e
}

// taskEntry is an audit line for a request on the task rec.
func taskEntry(r *http.Request, action string, rec record, d acl.Decision) audit.Entry {
	e := requestEntry(r, action)
	e.TaskID, e.Pid, e.Command = rec.ID, rec.Pid, rec.Command
	if rec.Principal != e.Principal {
		e.Owner = rec.Principal
	}
	e.Decision, e.Rule = decision(d.Allowed), d.Rule
	return e
}

func decision(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "deny"
}

// auditLog appends e to the audit log; a failure is logged (the caller
// decides whether it must stop).
func (s *Service) auditLog(e audit.Entry) error {
	err := s.audit.Append(e)
	if err != nil {
		s.log.Error("could not write the audit log", "error", err, "action", e.Action, "principal", e.Principal, "task", e.TaskID)
	}
	return err
}

// auditEnd records how a task ended. runErr is why its run line could not
// be written, if it could not (the task was killed for it). A line that
// cannot be written is kept and written again later (see retryAudit).
func (s *Service) auditEnd(rec record, runErr error, stdout, stderr int64) {
	e := audit.Entry{Principal: rec.Principal, Action: audit.End, Command: rec.Command, TaskID: rec.ID, Pid: rec.Pid, Error: rec.Error}
	if runErr != nil {
		e.Error = joinNote(e.Error, "its run line could not be written to the audit log ("+runErr.Error()+"), so it was killed as it started")
	}
	o := &audit.Outcome{State: string(rec.State), StdoutBytes: stdout, StderrBytes: stderr}
	if res := rec.Result; res != nil {
		o.DurationMs = res.DurationMs
		if res.Signaled {
			o.Signal = res.Signal
		} else {
			code := res.ExitCode
			o.ExitCode = &code
		}
	}
	e.Outcome = o
	if err := s.auditLog(e); err != nil {
		e.Error = joinNote(e.Error, "written late: the audit log could not be written when the task ended ("+err.Error()+")")
		s.auditMu.Lock()
		if len(s.auditBacklog) < maxAuditBacklog {
			s.auditBacklog = append(s.auditBacklog, e)
		}
		s.auditMu.Unlock()
	}
}

// retryAudit writes the end lines that failed, in order, until one fails
// again.
func (s *Service) retryAudit() {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	for len(s.auditBacklog) > 0 {
		if err := s.audit.Append(s.auditBacklog[0]); err != nil {
			return // logged when it first failed
		}
		s.auditBacklog[0] = audit.Entry{}
		s.auditBacklog = s.auditBacklog[1:]
	}
	s.auditBacklog = nil
}

// joinNote appends note to an error message.
func joinNote(msg, note string) string {
	if msg == "" {
		return note
	}
	return msg + "; " + note
}
