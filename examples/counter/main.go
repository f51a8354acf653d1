// Command counter keeps a count that survives a restart of the host.
// Mounted at /counter/ it serves
//
//	POST /counter/hit    adds one and answers the new count
//	GET  /counter/       answers the count
//
// The count lives in memory. Close saves it to <DataDir>/count when the host
// stops the module cleanly, and Provision loads it back at the next start;
// hits since the last clean stop are lost if the module is killed. Metrics
// reports the count as "hits", which the host publishes in
// /metrics/snapshot as counter/hits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/execmod/execmod/sdk"
)

type counter struct {
	file string // <DataDir>/count
	n    atomic.Int64
}

var (
	_ sdk.Provisioner     = (*counter)(nil)
	_ sdk.MetricsProvider = (*counter)(nil)
	_ io.Closer           = (*counter)(nil)
)

// Provision loads the count saved by the last Close, if any.
func (c *counter) Provision(_ context.Context, env sdk.Env) error {
	c.file = filepath.Join(env.DataDir, "count")
	b, err := os.ReadFile(c.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("%s does not hold a count (%w): fix it or delete it to start from 0", c.file, err)
	}
	c.n.Store(n)
	return nil
}

func (c *counter) Routes() []sdk.Route {
	return []sdk.Route{
		{Pattern: "POST /hit", Handler: http.HandlerFunc(c.hit), Realm: sdk.ReadWrite,
			Help: sdk.Help{TLDR: "Adds one to the count.", Description: "Answers the new count."}},
		{Pattern: "GET /{$}", Handler: http.HandlerFunc(c.get), Realm: sdk.ReadOnly,
			Help: sdk.Help{TLDR: "Answers the count.", Description: "The count survives a clean restart of the host."}},
	}
}

func (c *counter) hit(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, c.n.Add(1)) }
func (c *counter) get(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, c.n.Load()) }

// Metrics is called by the host for /metrics/snapshot, concurrently with
// requests.
func (c *counter) Metrics() map[string]float64 {
	return map[string]float64{"hits": float64(c.n.Load())}
}

// Close saves the count when the host stops the module. It writes a new file
// and renames it over the old one, so a crash midway leaves the old count.
func (c *counter) Close() error {
	if c.file == "" {
		return nil // stopped before Provision: nothing to save
	}
	tmp := c.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(c.n.Load(), 10)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.file)
}

func main() { sdk.Serve("counter", &counter{}) }
