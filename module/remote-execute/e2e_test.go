package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/internal/task"
)

// bins holds modhost and remote-execute, built by TestMain with -race.
var bins string

func TestMain(m *testing.M) {
	if task.IsSentinel() { // the module under sdktest re-executes this binary
		os.Exit(task.RunSentinel(os.Stdin, os.Stderr))
	}
	os.Exit(hosttest.Binaries(map[string]string{"modhost": "/host", "remote-execute": "/module/remote-execute"}, func(dir string) int {
		bins = dir
		return m.Run()
	}))
}

// remoteJSON is a modules.json loading remote-execute with params as key,
// value pairs.
func remoteJSON(params ...string) string {
	return hosttest.RemoteJSON(filepath.Join(bins, "remote-execute"), params...)
}

// startRemote starts the host with the remote module and extra args.
func startRemote(t *testing.T, params []string, args ...string) *hosttest.Host {
	t.Helper()
	return hosttest.Start(t, filepath.Join(bins, "modhost"), nil, append([]string{"--modules=" + remoteJSON(params...)}, args...)...)
}

// post sends a JSON body and decodes the JSON answer.
func post(t *testing.T, h *hosttest.Host, path, body string) (int, map[string]any) {
	t.Helper()
	code, b := h.Do("POST", path, strings.NewReader(body))
	return code, hosttest.Decode(t, b)
}

// execute runs a command through the seed API and returns its pid and id.
func execute(t *testing.T, h *hosttest.Host, body string) (int, string) {
	t.Helper()
	code, m := post(t, h, "/remote/execute", body)
	if code != 200 || m["result"] != "OK" {
		t.Fatalf("execute %s = %d %v", body, code, m)
	}
	return int(m["pid"].(float64)), m["id"].(string)
}

// waitTask long-polls until the task has ended and returns it.
func waitTask(t *testing.T, h *hosttest.Host, id string) map[string]any {
	t.Helper()
	code, b := h.Get("/remote/tasks/" + id + "?wait=60s")
	m := hosttest.Decode(t, b)
	if code != 200 || m["state"] == "running" || m["state"] == "queued" {
		t.Fatalf("task %s after a 60s wait: %d %v", id, code, m)
	}
	return m
}

// seedTask asks the seed API for a pid's outcome.
func seedTask(t *testing.T, h *hosttest.Host, pid int) (int, map[string]any) {
	t.Helper()
	return post(t, h, "/remote/task", fmt.Sprintf(`{"pid":%d}`, pid))
}

// groupAlive reports whether any process is in process group pgid.
func groupAlive(t *testing.T, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		// fields[0] is the state, [1] ppid, [2] pgrp.
		if len(fields) > 2 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// escapee is a process a task's daemon runs as, found by its pid: its
// stat if it still runs as the daemon (comm, and its own session or
// group), else ok is false. The cleanup kills it if it is.
func escapee(t *testing.T, pid int, comm string) (fields []string, ok bool) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || s[open+1:end] != comm {
		return nil, false // gone, and the pid reused
	}
	// fields[0] is the state, [1] ppid, [2] pgrp, [3] session.
	fields = strings.Fields(s[end+1:])
	if len(fields) < 4 || fields[0] == "Z" || (fields[2] != strconv.Itoa(pid) && fields[3] != strconv.Itoa(pid)) {
		return fields, false
	}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		t.Cleanup(func() {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		})
	}
	return fields, true
}

// The soak's find: a command whose daemon leaves its process group, by
// setsid or by setpgid in a child that then exits, left the daemon
// running with ppid 1 after the task, the module and the host. Now it is
// dead and reaped by the time the task's result is reported, and the
// module logs the kill.
func TestEscapedDaemonDiesWithItsTask(t *testing.T) {
	h := startRemote(t, nil)
	for _, tc := range []struct{ name, command string }{
		{"setsid", `setsid sleep 3600 </dev/null >/dev/null 2>&1 & d=$!; while [ "$(cut -d' ' -f6 /proc/$d/stat)" != "$d" ]; do :; done; echo spawned $d`},
		{"setpgid", `d=$(bash -c 'set -m; sleep 3600 </dev/null >/dev/null 2>&1 & echo $!'); echo spawned $d`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, res := post(t, h, "/remote/tasks?wait=10s", toJSON(map[string]any{"shell": true, "command": tc.command}))
			out, _ := res["stdout"].(map[string]any)["text"].(string)
			var pid int
			if _, err := fmt.Sscanf(out, "spawned %d", &pid); code != 201 || res["state"] != "exited" || err != nil {
				t.Fatalf("POST /remote/tasks?wait=10s = %d %v", code, res)
			}
			if f, ok := escapee(t, pid, "sleep"); ok {
				t.Errorf("the daemon %d still runs after its task ended: state %s, ppid %s, pgid %s, session %s", pid, f[0], f[1], f[2], f[3])
			} else if f != nil && f[0] == "Z" {
				t.Errorf("the daemon %d is a zombie", pid)
			}
			line, err := h.Logs.Wait(regexp.MustCompile(`killed a process that escaped its task.*pid=`+strconv.Itoa(pid)+`\b.*`), h.Exited)
			if err != nil {
				t.Errorf("no log of the kill of %d: %v", pid, err)
			} else if !strings.Contains(line[0], "why=") {
				// By pid, not by comm: the kill may come before the job's exec
				// of sleep, while it is still the forking shell.
				t.Errorf("log %q says not why", line[0])
			}
		})
	}
}

// kill -9 of the host while a task runs: the sentinel kills the task's
// session, so a job moved to a process group of its own (setpgid) dies
// with the task's group.
func TestHostKilledNoSessionMemberSurvives(t *testing.T) {
	h := startRemote(t, nil)
	_, task := post(t, h, "/remote/tasks", toJSON(map[string]any{"shell": true,
		"command": `d=$(bash -c 'set -m; sleep 3600 </dev/null >/dev/null 2>&1 & echo $!'); echo "job $d"; exec sleep 300`}))
	id := task["id"].(string)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+"/remote/tasks/"+id+"/stdout?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	var pid int
	if _, err2 := fmt.Sscanf(line, "job %d", &pid); err != nil || err2 != nil {
		t.Fatalf("stdout %q: %v %v", line, err, err2)
	}
	if _, ok := escapee(t, pid, "sleep"); !ok {
		t.Fatalf("the job %d does not run in a group of its own", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.Exited
	waitFds(t, map[int]int{pid: fd}, "the setpgid job after kill -9 of the host")
	unix.Close(fd)
}

// A host started under nohup (here: sh's empty trap for SIGHUP and SIGINT,
// then exec) passes those ignores to its module; the module's commands
// start with none ignored, and a command's HUP trap works.
func TestCommandsGetDefaultSignals(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "modhost-nohup")
	script := fmt.Sprintf("#!/bin/sh\ntrap '' HUP INT\nexec %q \"$@\"\n", filepath.Join(bins, "modhost"))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := hosttest.Start(t, wrapper, nil, "--modules="+remoteJSON())
	// The host, a Go program that does not catch SIGHUP, still ignores it.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.Cmd.Process.Pid))
	if mask, ok := sigIgn(string(b)); err != nil || !ok || mask&1 == 0 {
		t.Fatalf("the host does not ignore SIGHUP (%v): the test's set-up failed", err)
	}
	code, task := post(t, h, "/remote/tasks?wait=60s", `{"command":"grep '^SigIgn:' /proc/self/status","shell":true}`)
	if code != 201 || task["state"] != "exited" {
		t.Fatalf("= %d %v", code, task)
	}
	// Signals 32 and 33 are the C library's, left as they are.
	got, _ := task["stdout"].(map[string]any)["text"].(string)
	if mask, ok := sigIgn(got); !ok || mask&^(1<<31|1<<32) != 0 {
		t.Errorf("a command of a host under nohup: %q, want no signal ignored", got)
	}
	_, task = post(t, h, "/remote/tasks", `{"command":"trap 'echo got HUP; exit 3' HUP; echo ready; while :; do sleep 1; done","shell":true}`)
	id := task["id"].(string)
	waitLine(t, h, id, "ready\n")
	if code, m := post(t, h, "/remote/tasks/"+id+"/signal", `{"signal":"SIGHUP","scope":"leader"}`); code != 200 {
		t.Fatalf("signal = %d %v", code, m)
	}
	if res := waitTask(t, h, id); res["state"] != "exited" || res["result"].(map[string]any)["exitCode"] != 3.0 {
		t.Errorf("after SIGHUP: %v", res)
	}
}

// sigIgn is the SigIgn mask (bit 0: SIGHUP) of a /proc/<pid>/status text.
func sigIgn(status string) (uint64, bool) {
	m := regexp.MustCompile(`(?m)^SigIgn:\s*([0-9a-f]+)$`).FindStringSubmatch(status)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseUint(m[1], 16, 64)
	return v, err == nil
}
