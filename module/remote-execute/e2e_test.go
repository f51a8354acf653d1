package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/internal/task"
)

// bins holds modhost and remote-execute, built by TestMain with -race.
var bins string

func TestMain(m *testing.M) {
	if task.IsSentinel() { // the module under sdktest re-executes this binary
		os.Exit(task.RunSentinel(os.Stdin, os.Stderr))
	}
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "execmod-remote-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		const mod = "github.com/execmod/execmod"
		if err := hosttest.Build(dir, map[string]string{
			"modhost": mod + "/host", "remote-execute": mod + "/module/remote-execute",
		}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bins = dir
		return m.Run()
	}())
}

// remoteJSON is a modules.json loading remote-execute with params as key,
// value pairs.
func remoteJSON(params ...string) string {
	var ps []string
	for i := 0; i+1 < len(params); i += 2 {
		ps = append(ps, fmt.Sprintf(`{"key":%q,"value":%q}`, params[i], params[i+1]))
	}
	return fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":"org_execmod_RemoteExecution","parameters":[%s]}]}]}`,
		filepath.Join(bins, "remote-execute"), strings.Join(ps, ","))
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
