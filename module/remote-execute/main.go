// Command remote-execute is the remote-execution module. Mounted at
// /remote/ by modhost it runs commands on the agent out of band and
// reports their outcome: the Mesos execute module's API, byte-compatible,
//
//	GET  /remote/status                 module status, work_dir, sandbox_dir
//	POST /remote/execute                {"command","arguments","shell","timeout"} -> {"result":"OK","pid":N,"id":...}
//	POST /remote/task                   {"pid":N} -> {"exitCode","signaled","stdout","stderr",...} or {"result":"pending"}
//	GET  /remote/task                   {"pids":[...]}
//	POST /remote/kill                   {"pid":N,"signal":"SIGTERM"}
//
// and a REST API with task ids, long-poll, output by offset and live:
//
//	POST   /remote/tasks                start (env, cwd, user, stdin, grace, labels, idempotency_key)
//	GET    /remote/tasks                list (state=, label=k=v, limit=, cursor=)
//	GET    /remote/tasks/{id}?wait=30s  one task; returns the moment it ends
//	GET    /remote/tasks/{id}/stdout    raw bytes (offset=, limit=, follow=true); also /stderr
//	POST   /remote/tasks/{id}/signal    {"signal","scope":"group"|"leader"}
//	DELETE /remote/tasks/{id}           kill a running task, purge a finished one
//	GET    /remote/openapi.json         the OpenAPI 3 document of all of the above
//
// Each command runs in its own session and process group; timeouts and
// kills send SIGTERM to the group, then SIGKILL after the grace period.
// (Being a session of its own, a command has no controlling terminal and
// its group is orphaned: SIGTSTP, SIGTTIN and SIGTTOU sent through
// /signal do not stop it by default; SIGSTOP does.) Commands start with
// every signal at its default action, even when the module inherited
// one ignored (a host started under nohup ignores SIGHUP).
// What a command starts that leaves the group (a daemon that calls
// setsid) is killed once it is orphaned, and by the end of its task at
// the latest: the module is a child subreaper (task.Reaper) and logs each
// such kill ("killed a process that escaped its task"). A command
// that cannot start (not found, not executable, bad cwd, unknown user) is
// a 400 naming the cause, also when it would have queued. A sentinel
// process (this binary re-executed) kills the groups of running tasks if
// the module dies, kill -9 of the module or of the host included, so no
// command runs on unsupervised (a daemon in a session of its own is
// beyond it, unless already killed); after a restart such tasks are
// "lost", with their partial output.
//
// Everything lives in the module's data directory, which the host creates
// and hands over as <work_dir>/modules/<name> (name: the modules.json
// module name, known before the module's id): the task journal
// tasks.jsonl, each task's output spool under tasks/<id>/ (head and tail
// kept up to max_output_bytes per stream; none for a silent task) and the
// audit log audit.jsonl. A finished result is written to the journal
// before it is reported, so it survives kill -9 of the module and of the
// host; it is fsynced within 50ms (group commit), which bounds what a
// power loss can take.
//
// A full disk is said, not hidden: output that cannot be stored is still
// read and counted (totalBytes), and the stream says what was lost
// (storeError, droppedRanges). A result that cannot be written to the
// journal is not reported: the task stays running with persistError and
// the module retries until it can write it (a task the module loses
// before then is reported lost, never differently). The journal keeps
// journal_reserve of space for that, and new tasks get 503 with
// Retry-After once half of it is used, as they do when the audit log
// cannot be written, since nothing runs unaudited.
//
// Parameters (modules.json): default_timeout (30s), max_timeout (24h),
// kill_grace_period (10s), max_output_bytes (4MB), max_concurrent
// (8 × cores), max_queued (64), retention (24h), max_tasks (10000),
// allow_shell (true), env_allowlist (PATH,LANG,TZ: the module environment
// variables a task inherits; PATH defaults to the usual system one),
// max_args (4096 argv entries), max_arg_bytes (1MB of argv and
// environment), max_stdin (1MB decoded; at most 6MB), journal_reserve
// (1MB; 0 keeps none).
//
// Results carry rusage: userMs, sysMs, and maxRssKiB, the command's peak
// resident set, which is 0 when Linux cannot tell it from the module's own
// memory (it counts the forking process's until exec); maxRssBoundKiB is
// the kernel's figure, an upper bound.
//
// With the host's --acls, every request is authorized against that
// Mesos-style policy (package internal/acl: run_remote_commands,
// run_remote_commands_as_user, run_remote_shell, view_remote_tasks,
// kill_remote_tasks) for the principal the host authenticated; a denial is
// a 403 {"error", "rule"} naming the deciding rule, and
//
//	POST   /remote/policy/check         the /tasks body -> {"allowed","rule","checks"}, runs nothing
//
// answers in advance. Every run, signal, kill and refusal, and every
// task's end, is a line of the hash-chained audit log audit.jsonl in the
// data directory (package module/internal/audit).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/execmod/execmod/internal/acl"
	"github.com/execmod/execmod/module/internal/remote"
	"github.com/execmod/execmod/module/internal/task"
	"github.com/execmod/execmod/sdk"
)

type module struct {
	svc      *remote.Service
	sentinel *task.Sentinel
	reaper   *task.Reaper // nil if it could not be had
	// reap: this is the module's own process (main), not a test's
	// in-process copy, so it may take the process-wide subreaper role.
	reap bool
	info remote.Info
}

var (
	_ sdk.Provisioner     = (*module)(nil)
	_ sdk.MetricsProvider = (*module)(nil)
	_ io.Closer           = (*module)(nil)
)

// Provision checks the parameters and opens the task store under the
// module's data directory, recovering what a previous run left.
func (m *module) Provision(_ context.Context, env sdk.Env) error {
	p, err := remote.ParseParams(env.Params)
	if err != nil {
		return err
	}
	var base []string
	for _, name := range p.EnvAllowlist {
		if v, ok := os.LookupEnv(name); ok {
			base = append(base, name+"="+v)
		}
	}
	if !hasPath(base) {
		base = append(base, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	var opts []remote.Option
	if v := env.Flags["acls"]; v != "" {
		a, err := acl.Load(v)
		if err != nil {
			return err
		}
		opts = append(opts, remote.WithACLs(a))
		n := 0
		for _, rules := range a.Rules {
			n += len(rules)
		}
		env.Logger.Info("authorizing requests with the --acls policy", "rules", n, "permissive", a.Permissive)
	} else {
		env.Logger.Info("no --acls: every principal may run any command (audited)")
	}
	// A module started under nohup, or from a shell's background job,
	// inherited SIGHUP or SIGINT ignored; its commands get them back.
	if sigs, err := task.DefaultSignals(); err != nil {
		env.Logger.Warn("commands may inherit signals this module ignores", "error", err)
	} else if len(sigs) > 0 {
		env.Logger.Info("commands get the default action of signals this module inherited ignored", "signals", fmt.Sprint(sigs))
	}
	if m.reap {
		// The reaper kills what a command started that left its group.
		log := env.Logger
		m.reaper, err = task.NewReaper(task.ReaperOptions{Log: func(e task.Escapee) {
			log.Warn("killed a process that escaped its task", "pid", e.Pid, "comm", e.Comm,
				"session", e.Session, "pgid", e.Pgrp, "why", e.Why, "held_output_of", e.HeldOutputOf)
		}})
		if err != nil {
			log.Error("no reaper: a command's daemon that leaves its process group will outlive its task", "error", err)
		}
	}
	// The sentinel kills the tasks' process groups if this process dies
	// without stopping them (kill -9 of the module or of the host). The
	// tasks get the reaper through it.
	if m.sentinel, err = task.StartSentinel("/proc/self/exe", task.WithReaper(m.reaper)); err != nil {
		m.reaper.Close()
		return err
	}
	opts = append(opts, remote.WithSentinel(m.sentinel))
	m.svc, err = remote.Open(env.DataDir, p, base, env.Logger, opts...)
	if err != nil {
		m.sentinel.Close()
		m.reaper.Close()
		return err
	}
	m.info = remote.Info{Release: release(), WorkDir: env.WorkDir, SandboxDir: env.SandboxDir}
	return nil
}

func hasPath(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return true
		}
	}
	return false
}

func release() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func (m *module) Routes() []sdk.Route { return m.svc.Routes(m.info) }

func (m *module) Metrics() map[string]float64 {
	c := m.svc.Counts()
	if m.reaper != nil {
		st := m.reaper.Stats()
		c["escapees_killed"] = float64(st.Killed)
		c["orphans_reaped"] = float64(st.Reaped)
	}
	return c
}

// Close kills the running tasks, waits until their results are saved,
// then lets the reaper and the sentinel go.
func (m *module) Close() error {
	if m.svc == nil {
		return nil
	}
	return errors.Join(m.svc.Close(), m.reaper.Close(), m.sentinel.Close())
}

func main() {
	if task.IsSentinel() { // this binary, re-executed by task.StartSentinel
		os.Exit(task.RunSentinel(os.Stdin, os.Stderr))
	}
	sdk.Serve("remote", &module{reap: true})
}
