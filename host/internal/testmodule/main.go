// Command testmodule is the module the host's end-to-end tests load. Its
// routes exist to observe the host from the inside:
//
//	GET  /testmod/env              what Provision received and the process environment
//	POST /testmod/sha256           digest and length of the streamed request body
//	GET  /testmod/sse?n=N          N events; each after the previous is released
//	POST /testmod/sse/release      lets the open /sse stream send its next event
//	GET  /testmod/block            blocks until the client goes away
//	GET  /testmod/cancelled        long-polls until a /block request was cancelled
//	GET  /testmod/panic            panics
//	POST /testmod/spawn            starts `sleep 300` in the module's process group
//	GET  /testmod/pid              the module's pid
//	POST /testmod/print            prints a line to stdout and one to stderr
//
// POST /testmod/sha256 logs "sha256: request started" when it begins, and
// a gated restart (below) logs "waiting at the gate" with its pid.
//
// Close (run when the host stops the module) writes "closed" to
// <data_dir>/closed.
//
// Parameters: "fail" makes Provision fail with its value as the message;
// "id" is reported back by /env; "gate_restarts" makes every start after
// the first wait in Provision until a writer opens the FIFO
// <data_dir>/gate, so a test can look at the host while the module is down.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/execmod/execmod/sdk"
)

type module struct {
	env       sdk.Env
	release   chan struct{}
	cancelled chan struct{}
	nCancel   atomic.Int64
}

func (m *module) Provision(_ context.Context, env sdk.Env) error {
	if msg, ok := env.Params["fail"]; ok {
		return errors.New(msg)
	}
	if _, ok := env.Params["gate_restarts"]; ok {
		marker := filepath.Join(env.DataDir, "started")
		if _, err := os.Stat(marker); err == nil {
			env.Logger.Info("waiting at the gate", "pid", os.Getpid())
			f, err := os.Open(filepath.Join(env.DataDir, "gate")) // blocks until the test opens it for writing
			if err != nil {
				return err
			}
			f.Close()
		} else if err := os.WriteFile(marker, nil, 0o600); err != nil {
			return err
		}
	}
	m.env = env
	m.release = make(chan struct{})
	m.cancelled = make(chan struct{}, 16)
	log.Printf("provisioned with %d flags", len(env.Flags))
	env.Logger.Info("provisioned", "work_dir", env.WorkDir)
	return nil
}

// Close records that the host stopped the module gracefully.
func (m *module) Close() error {
	m.env.Logger.Info("closing")
	return os.WriteFile(filepath.Join(m.env.DataDir, "closed"), []byte("closed\n"), 0o600)
}

var (
	_ sdk.Provisioner = (*module)(nil)
	_ io.Closer       = (*module)(nil)
)

func (m *module) Routes() []sdk.Route {
	return []sdk.Route{
		{Pattern: "GET /env", Handler: http.HandlerFunc(m.envHandler), Realm: sdk.ReadOnly,
			Help: sdk.Help{TLDR: "Reports the module's configuration.", Description: "Flags, parameters and environment."}},
		{Pattern: "POST /sha256", Handler: http.HandlerFunc(m.sha)},
		{Pattern: "GET /sse", Handler: http.HandlerFunc(m.sse), Realm: sdk.Public},
		{Pattern: "POST /sse/release", Handler: http.HandlerFunc(m.releaseHandler)},
		{Pattern: "GET /block", Handler: http.HandlerFunc(m.block), Realm: sdk.Public},
		{Pattern: "GET /cancelled", Handler: http.HandlerFunc(m.cancelledHandler), Realm: sdk.Public},
		{Pattern: "GET /panic", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("test panic") }), Realm: sdk.Public},
		{Pattern: "POST /spawn", Handler: http.HandlerFunc(m.spawn)},
		{Pattern: "GET /pid", Handler: http.HandlerFunc(m.pid), Realm: sdk.Public},
		{Pattern: "POST /print", Handler: http.HandlerFunc(m.print)},
	}
}

// print writes to the process's own stdout and stderr, as a careless
// module would after Serve.
func (m *module) print(w http.ResponseWriter, r *http.Request) {
	fmt.Println("plain stdout line from the module")
	fmt.Fprintln(os.Stderr, "plain stderr line from the module")
}

func (m *module) envHandler(w http.ResponseWriter, r *http.Request) {
	_ = json.NewEncoder(w).Encode(map[string]any{
		"name": m.env.Name, "flags": m.env.Flags, "params": m.env.Params,
		"work_dir": m.env.WorkDir, "sandbox_dir": m.env.SandboxDir, "data_dir": m.env.DataDir,
		"environ": os.Environ(), "principal": r.Header.Get("X-Execmod-Principal"),
		"path": r.URL.Path, "query": r.URL.RawQuery,
	})
}

func (m *module) sha(w http.ResponseWriter, r *http.Request) {
	m.env.Logger.Info("sha256: request started") // a test's cue that the request is in flight
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %d\n", hex.EncodeToString(h.Sum(nil)), n)
}

func (m *module) sse(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	w.Header().Set("Content-Type", "text/event-stream")
	for i := 1; i <= n; i++ {
		if i > 1 {
			select {
			case <-m.release:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "data: event %d\n\n", i)
		w.(http.Flusher).Flush()
	}
}

func (m *module) releaseHandler(w http.ResponseWriter, r *http.Request) {
	select {
	case m.release <- struct{}{}:
	case <-r.Context().Done():
	}
}

func (m *module) block(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	<-r.Context().Done()
	m.cancelled <- struct{}{}
}

func (m *module) cancelledHandler(w http.ResponseWriter, r *http.Request) {
	select {
	case <-m.cancelled:
		m.nCancel.Add(1)
		fmt.Fprintf(w, "cancelled %d\n", m.nCancel.Load())
	case <-r.Context().Done():
	}
}

func (m *module) spawn(w http.ResponseWriter, r *http.Request) {
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	go func() { _ = cmd.Wait() }() // reaped if it ever ends
	fmt.Fprintln(w, cmd.Process.Pid)
}

func (m *module) pid(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, os.Getpid())
}

func main() { sdk.Serve("testmod", &module{}) }
