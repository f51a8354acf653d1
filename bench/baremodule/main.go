// Command baremodule is the benchmark's architectural floor for the
// remote-execute figures: a module that answers POST /remote/tasks by
// running the command with os/exec and nothing else (no task ids, spool,
// journal, audit, sentinel or ACLs). Through bin/modhost it costs what the
// host-to-module hop and a bare exec cost, so the report can tell the
// architecture's share of a figure from remote-execute's own. It is built
// by make bench; it is not a module to deploy.
package main

import (
	"encoding/json"
	"net/http"
	"os/exec"

	"github.com/execmod/execmod/sdk"
)

type bare struct{}

func (bare) Routes() []sdk.Route {
	return []sdk.Route{{Pattern: "POST /tasks", Realm: sdk.Public, Handler: http.HandlerFunc(run)}}
}

func run(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Command   string   `json:"command"`
		Arguments []string `json:"arguments"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	code := 0
	if err := exec.Command(body.Command, body.Arguments...).Run(); err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"state": "exited", "result": map[string]int{"exitCode": code}})
}

func main() { sdk.Serve("remote", bare{}) }
