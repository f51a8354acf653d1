package sdk

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"

	"github.com/execmod/execmod/internal/wire"
)

// InProcess configures ServeInProcess.
type InProcess struct {
	Name    string            // modules.json name; default: the id
	Flags   map[string]string // agent flags the module sees
	Params  map[string]string // the module's parameters
	DataDir string            // Env.DataDir
	// Log receives the module's log lines (hclog JSON); nil discards them.
	Log io.Writer
	// LogLevel is TRACE, DEBUG, INFO (default), WARNING or ERROR.
	LogLevel string
	// MaxBody limits request bodies as the host's --max_request_body does;
	// 0 means no limit.
	MaxBody int64
	// Principal, if set, says which principal each request is
	// authenticated as; handlers see it as the X-Execmod-Principal header.
	Principal func(*http.Request) string
}

// ServeInProcess serves m as module id inside this process, through the
// same gRPC protocol and HTTP bridge the host uses, and returns the host's
// side: a handler with m's routes mounted under /<id>/. It is what package
// sdktest is built on; module code calls Serve instead.
//
// The module runs until ctx is done; then its io.Closer runs and its error
// (or nil) is sent on stopped.
func ServeInProcess(ctx context.Context, id string, m Module, opts InProcess) (h http.Handler, stopped <-chan error, err error) {
	if opts.Name == "" {
		opts.Name = id
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	level := parseLevel(opts.LogLevel)
	a := &adapter{id: id, module: m, logger: newLogger(opts.Log, level)}
	proc, closed, err := wire.ServeInProcess(ctx, a, wire.ServeOptions{Logger: newPluginLogger(opts.Log, level)})
	if err != nil {
		return nil, nil, err
	}
	req := wire.InitRequest{Name: opts.Name, DataDir: opts.DataDir, LogLevel: opts.LogLevel}
	for k, v := range opts.Flags {
		req.Flags = append(req.Flags, wire.Flag{Name: k, Value: v})
	}
	sort.Slice(req.Flags, func(i, j int) bool { return req.Flags[i].Name < req.Flags[j].Name })
	for k, v := range opts.Params {
		req.Params = append(req.Params, wire.Param{Key: k, Value: v})
	}
	sort.Slice(req.Params, func(i, j int) bool { return req.Params[i].Key < req.Params[j].Key })
	man, err := proc.Init(ctx, req)
	if err != nil {
		proc.Stop()
		return nil, nil, err
	}
	mux := http.NewServeMux()
	err = wire.Mount(mux, man, func() (*wire.Process, error) { return proc, nil }, wire.MountOptions{MaxBody: opts.MaxBody, Principal: opts.Principal})
	if err != nil {
		proc.Stop()
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() {
		<-closed
		proc.Stop()
		done <- a.close()
	}()
	return wire.JSONErrors(mux), done, nil // unmatched requests answered as the host answers them
}

func reattachJSON(ri wire.ReattachInfo) string {
	b, _ := json.Marshal(ri)
	return string(b)
}
