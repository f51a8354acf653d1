package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/execmod/execmod/internal/acl"
	"maps"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/execmod/execmod/host/internal/help"
	"github.com/execmod/execmod/host/internal/supervisor"
)

// defaultMetricsTimeout bounds how long /metrics/snapshot waits for a
// module's own figures.
const defaultMetricsTimeout = 2 * time.Second

// metricsHelp documents /metrics and /metrics/snapshot under Mesos's
// "metrics" process id, as libprocess's metrics process does.
var metricsHelp = help.Process{ID: "metrics", Endpoints: []help.Endpoint{
	{Name: "/snapshot", Text: help.Format("Provides a snapshot of the current metrics.",
		"Returns a flat JSON object {\"name\": number}: the host's own figures\n"+
			"(slave/uptime_secs, system/load_1min, system/load_5min, system/load_15min,\n"+
			"system/cpus_total, system/mem_total_bytes, system/mem_free_bytes,\n"+
			"modhost/modules_running, modhost/modules_failed, modhost/module_restarts)\n"+
			"and every running module's own metrics as \"<id>/<name>\".\n"+
			"A module that is down, or does not answer within 2 seconds, contributes nothing.", true)},
	{Name: "/", Text: help.Format("The metrics of /metrics/snapshot in Prometheus text format.",
		"Every figure of /metrics/snapshot as a gauge, its name with each character\n"+
			"outside [a-zA-Z0-9_:] replaced by '_': slave/uptime_secs is slave_uptime_secs,\n"+
			"counter/hits is counter_hits.\n"+
			"--acls get_endpoints guards it as it guards /metrics/snapshot: a rule\n"+
			"whose paths name \"/metrics\" or \"/metrics/snapshot\" decides.", true)},
}}

// snapshot gathers the host's figures and every module's metrics. Modules
// are asked concurrently, each within s.metricsTimeout; one that is down,
// fails or is late is left out. Non-finite values are left out too (JSON
// cannot carry them).
func (s *Server) snapshot(ctx context.Context) map[string]float64 {
	ctx, cancel := context.WithTimeout(ctx, s.metricsTimeout)
	defer cancel()
	type result struct {
		id string
		m  map[string]float64
	}
	// Buffered, so a module that answers after the deadline does not block
	// its goroutine forever.
	results := make(chan result, len(s.modules))
	for _, m := range s.modules {
		go func() {
			metrics, err := m.Metrics(ctx)
			if err != nil {
				metrics = nil
			}
			results <- result{m.Manifest().ID, metrics}
		}()
	}

	out := map[string]float64{}
	add := func(prefix string, metrics map[string]float64) {
		for name, v := range metrics {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out[prefix+name] = v
			}
		}
	}
	pending := len(s.modules)
wait:
	for pending > 0 {
		select {
		case r := <-results:
			add(r.id+"/", r.m)
			pending--
		case <-ctx.Done():
			break wait
		}
	}
	// The host's own figures go last, so that a module cannot shadow them.
	add("", s.hostMetrics())
	return out
}

// hostMetrics returns the host's own figures; those it cannot read (no
// /proc) are missing.
func (s *Server) hostMetrics() map[string]float64 {
	m := map[string]float64{
		"slave/uptime_secs": time.Since(s.info.StartTime).Seconds(),
		"system/cpus_total": float64(runtime.NumCPU()),
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if l1, l5, l15, err := parseLoadavg(b); err == nil {
			m["system/load_1min"], m["system/load_5min"], m["system/load_15min"] = l1, l5, l15
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if total, avail, err := parseMeminfo(b); err == nil {
			m["system/mem_total_bytes"], m["system/mem_free_bytes"] = total, avail
		}
	}
	var running, failed, restarts float64
	for _, mod := range s.modules {
		st := mod.Status()
		switch st.State {
		case supervisor.Running:
			running++
		case supervisor.Failed:
			failed++
		}
		restarts += float64(st.Restarts)
	}
	m["modhost/modules_running"], m["modhost/modules_failed"], m["modhost/module_restarts"] = running, failed, restarts
	return m
}

// parseLoadavg reads the three load averages of /proc/loadavg.
func parseLoadavg(b []byte) (l1, l5, l15 float64, err error) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, 0, 0, fmt.Errorf("loadavg: %q: want at least 3 fields", b)
	}
	var v [3]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return 0, 0, 0, fmt.Errorf("loadavg: %w", err)
		}
	}
	return v[0], v[1], v[2], nil
}

// parseMeminfo reads MemTotal and MemAvailable of /proc/meminfo, in bytes.
func parseMeminfo(b []byte) (total, avail float64, err error) {
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "MemTotal" && name != "MemAvailable") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("meminfo: %s: %q: want \"<n> kB\"", name, rest)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("meminfo: %s: %w", name, err)
		}
		if name == "MemTotal" {
			total = float64(kb) * 1024
		} else {
			avail = float64(kb) * 1024
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("meminfo: MemTotal or MemAvailable missing")
	}
	return total, avail, nil
}

// mayGetMetrics is get_endpoints for r's principal on the metrics at
// path: /metrics/snapshot is Mesos's path and matches only itself;
// /metrics serves the same figures, so a rule naming either path decides
// it (a policy written for Mesos guards both). A denial is answered here
// with a 403 naming the rule, and false.
func (s *Server) mayGetMetrics(w http.ResponseWriter, r *http.Request, path string) bool {
	obj := acl.Value(path)
	if path != "/metrics/snapshot" {
		obj = acl.Values(path, "/metrics/snapshot")
	}
	d := s.acls.Evaluate(acl.GetEndpoints, s.principal(r), obj)
	if !d.Allowed {
		forbid(w, fmt.Sprintf("%s may not GET %s (denied by %s)", who(s.principal(r)), path, d.Rule), d.Rule)
	}
	return d.Allowed
}

func (s *Server) metricsSnapshot(w http.ResponseWriter, r *http.Request) {
	if !s.mayGetMetrics(w, r, "/metrics/snapshot") {
		return
	}
	writeJSON(w, s.snapshot(r.Context()))
}

// metricsPrometheus serves the snapshot in Prometheus text format (0.0.4),
// every figure a gauge. Two names that sanitise alike keep the first in
// byte order of the original names.
func (s *Server) metricsPrometheus(w http.ResponseWriter, r *http.Request) {
	if !s.mayGetMetrics(w, r, "/metrics") {
		return
	}
	snap := s.snapshot(r.Context())
	names := slices.Sorted(maps.Keys(snap))
	var b strings.Builder
	seen := map[string]bool{}
	for _, name := range names {
		p := promName(name)
		if seen[p] {
			continue
		}
		seen[p] = true
		fmt.Fprintf(&b, "# TYPE %s gauge\n%s %s\n", p, p, strconv.FormatFloat(snap[name], 'g', -1, 64))
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

// promName makes name a valid Prometheus metric name: every character
// outside [a-zA-Z0-9_:] becomes '_', and a leading digit gets a '_' before
// it.
func promName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}
