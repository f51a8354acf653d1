// Command agentinfo reads the agent's flags and writes only under its own
// folder. Mounted at /agentinfo/ it serves
//
//	GET /agentinfo/               {"work_dir", "sandbox_dir", "data_dir", "hostname", "flags": {...}}
//	PUT /agentinfo/notes/{name}   stores the body (at most 64 KiB, else 413) as <DataDir>/notes/{name}
//	GET /agentinfo/notes/{name}   answers the note (404 if there is none)
//
// A note's name is 1 to 64 letters, digits, '.', '_' or '-', not starting
// with '.'; any other name is refused with 400. hostname is the agent's
// --hostname, or the machine's name when the flag is not set.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"

	"github.com/execmod/execmod/sdk"
)

const maxNote = 64 << 10

var noteName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)

type agentinfo struct {
	info  map[string]any
	notes *os.Root // <DataDir>/notes: nothing outside it can be reached through it
}

var (
	_ sdk.Provisioner = (*agentinfo)(nil)
	_ io.Closer       = (*agentinfo)(nil)
)

// Provision keeps what the agent told the module and opens its notes folder.
func (a *agentinfo) Provision(_ context.Context, env sdk.Env) error {
	hostname, _ := os.Hostname()
	a.info = map[string]any{
		"work_dir": env.WorkDir, "sandbox_dir": env.SandboxDir, "data_dir": env.DataDir,
		"hostname": cmp.Or(env.Flags["hostname"], hostname), "flags": env.Flags,
	}
	dir := filepath.Join(env.DataDir, "notes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var err error
	a.notes, err = os.OpenRoot(dir)
	return err
}

func (a *agentinfo) Routes() []sdk.Route {
	return []sdk.Route{
		{Pattern: "GET /{$}", Handler: http.HandlerFunc(a.get), Realm: sdk.ReadOnly,
			Help: sdk.Help{TLDR: "The agent's directories, hostname and flags, as JSON."}},
		{Pattern: "PUT /notes/{name}", Handler: http.HandlerFunc(a.putNote), Realm: sdk.ReadWrite,
			Help: sdk.Help{TLDR: "Stores a note of at most 64 KiB.", Description: "The note is a file in the module's data directory."}},
		{Pattern: "GET /notes/{name}", Handler: http.HandlerFunc(a.getNote), Realm: sdk.ReadOnly,
			Help: sdk.Help{TLDR: "Answers a stored note."}},
	}
}

func (a *agentinfo) get(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a.info)
}

func (a *agentinfo) putNote(w http.ResponseWriter, r *http.Request) {
	name, ok := checkName(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNote))
	if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
		http.Error(w, "a note is at most 64 KiB", http.StatusRequestEntityTooLarge)
		return
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := a.notes.WriteFile(name, body, 0o600); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *agentinfo) getNote(w http.ResponseWriter, r *http.Request) {
	name, ok := checkName(w, r)
	if !ok {
		return
	}
	body, err := a.notes.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "no note named "+name, http.StatusNotFound)
		return
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(body)
}

// checkName answers 400 unless the request's {name} is a valid note name.
func checkName(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if !noteName.MatchString(name) {
		http.Error(w, "a note's name is 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'", http.StatusBadRequest)
		return "", false
	}
	return name, true
}

// Close releases the notes folder when the host stops the module.
func (a *agentinfo) Close() error {
	if a.notes == nil {
		return nil
	}
	return a.notes.Close()
}

func main() { sdk.Serve("agentinfo", &agentinfo{}) }
