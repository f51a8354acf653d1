// Package agent is the host's HTTP surface: the Mesos agent's own endpoints
// (/health, /version, /flags, /state, /help, /metrics/snapshot, and /metrics
// in Prometheus text format) and every module's routes, mounted under
// /<id>/ and forwarded to the module. It builds the route table once, at
// start, and reports conflicts as errors naming both owners.
package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/execmod/execmod/host/internal/operator"
	"github.com/execmod/execmod/internal/acl"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/execmod/execmod/host/internal/help"
	"github.com/execmod/execmod/host/internal/supervisor"
	"github.com/execmod/execmod/internal/wire"
)

// Info describes the host for /version, /flags and /state.
type Info struct {
	Version   string
	BuildDate string
	BuildTime float64
	BuildUser string
	GitSHA    string
	StartTime time.Time
	ID        string
	Hostname  string
	Addr      string // ip:port
	Flags     []wire.Flag
}

// Module is a mounted module as the agent sees it; *supervisor.Module is
// the implementation, tests may mount others.
type Module interface {
	Manifest() wire.Manifest
	Backend() (*wire.Process, error)
	Status() supervisor.Status
	// Metrics returns the module's own metrics, or an error if it is down.
	// It must return when ctx is done.
	Metrics(ctx context.Context) (map[string]float64, error)
}

// Options configure New.
type Options struct {
	MaxBody int64 // request body limit for module routes
	// MetricsTimeout bounds how long /metrics/snapshot waits for the
	// modules' metrics; 0 means 2 seconds.
	MetricsTimeout time.Duration
	// Auth, if set, wraps the handler of every route, the agent's and the
	// modules', with the authentication of the route's realm (see
	// auth.Authenticator.Wrap).
	Auth func(realm wire.Realm, h http.Handler) http.Handler
	// Principal returns the authenticated principal of a request, which
	// module routes forward to the module.
	Principal func(*http.Request) string
	// ACLs authorize the agent's own endpoints as Mesos does: view_flags
	// guards /flags and GET_FLAGS (403 when denied) and the flags in
	// /state (left out when denied); get_endpoints guards
	// /metrics/snapshot, and /metrics, which serves the same figures.
	// Nil allows everything.
	ACLs *acl.ACLs
}

// Server is the host's HTTP handler.
type Server struct {
	info    Info
	modules []Module
	mux     *http.ServeMux
	table   Table

	metricsTimeout time.Duration
	acls           *acl.ACLs
	principal      func(*http.Request) string
}

// reserved ids are the host's own path roots; a module cannot mount there.
var reserved = map[string]bool{
	"api": true, "flags": true, "health": true, "help": true, "metrics": true,
	"state": true, "version": true, "files": true, "containers": true,
	"monitor": true, "system": true, "logging": true, "profiler": true,
}

// New builds the route table: the agent's endpoints, then each module's
// routes under /<id>/. Two modules with one id, a reserved id, or a route a
// module declares twice are errors that name the modules involved.
func New(info Info, modules []Module, opts Options) (*Server, error) {
	s := &Server{info: info, modules: modules, mux: http.NewServeMux(),
		metricsTimeout: cmp.Or(opts.MetricsTimeout, defaultMetricsTimeout), acls: opts.ACLs, principal: opts.Principal}
	if s.principal == nil {
		s.principal = func(*http.Request) string { return "" }
	}
	wrap := opts.Auth
	if wrap == nil {
		wrap = func(_ wire.Realm, h http.Handler) http.Handler { return h }
	}
	s.addAgentRoutes(wrap)
	mo := wire.MountOptions{MaxBody: opts.MaxBody, Principal: opts.Principal,
		Wrap: func(r wire.Route, h http.Handler) http.Handler { return wrap(r.Realm, h) }}

	owner := map[string]string{}
	var errs []error
	for _, m := range modules {
		man, st := m.Manifest(), m.Status()
		name := fmt.Sprintf("%s (%s)", st.Name, st.Path)
		switch {
		case reserved[man.ID]:
			errs = append(errs, fmt.Errorf("module %s: id %q is reserved for the agent's own /%s endpoints", name, man.ID, man.ID))
			continue
		case owner[man.ID] != "":
			errs = append(errs, fmt.Errorf("modules %s and %s both mount /%s/: a module's id (the first argument of sdk.Serve) is its mount point, and two modules cannot share one; remove one of them from modules.json, or give one of them another id", owner[man.ID], name, man.ID))
			continue
		}
		owner[man.ID] = name
		err := wire.Mount(s.mux, man, m.Backend, mo)
		if err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", name, err))
			continue
		}
		for _, r := range man.Routes {
			s.table = append(s.table, Entry{Method: r.Method, Path: "/" + man.ID + r.Path, Owner: st.Name, Realm: r.Realm})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.SliceStable(s.table, func(i, j int) bool { return s.table[i].Path < s.table[j].Path })
	return s, nil
}

// Handler returns the host's HTTP handler: every route, and a JSON 404 or
// 405 (with Allow) for a request that matches none.
func (s *Server) Handler() http.Handler { return wire.JSONErrors(s.mux) }

// Table returns the route table.
func (s *Server) Table() Table { return s.table }

func (s *Server) addAgentRoutes(wrap func(wire.Realm, http.Handler) http.Handler) {
	add := func(method, path string, realm wire.Realm, h http.HandlerFunc) {
		s.mux.Handle(method+" "+path, wrap(realm, h))
		s.table = append(s.table, Entry{Method: method, Path: path, Owner: "agent", Realm: realm})
	}
	add("GET", "/health", wire.RealmNone, func(w http.ResponseWriter, r *http.Request) {})
	add("GET", "/version", wire.RealmNone, s.version)
	add("GET", "/flags", wire.RealmReadOnly, s.flags)
	add("GET", "/state", wire.RealmReadOnly, s.state)
	add("GET", "/metrics/snapshot", wire.RealmReadOnly, s.metricsSnapshot)
	add("GET", "/metrics", wire.RealmReadOnly, s.metricsPrometheus)
	// The operator API: Mesos puts /api/v1 in the read-write realm.
	s.mux.Handle("/api/v1", wrap(wire.RealmReadWrite, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		operator.Handler(operatorSource{s: s, principal: s.principal(r), viewFlags: s.viewFlags(r)}).ServeHTTP(w, r)
	})))
	s.table = append(s.table, Entry{Method: "POST", Path: "/api/v1", Owner: "agent", Realm: wire.RealmReadWrite})
	h := wrap(wire.RealmNone, help.Handler(s.helpProcesses))
	s.mux.Handle("/help", h)
	s.mux.Handle("/help/", h)
	s.table = append(s.table, Entry{Method: "GET", Path: "/help", Owner: "agent", Realm: wire.RealmNone})
}

func (s *Server) versionJSON() map[string]any {
	v := map[string]any{
		"version": s.info.Version, "build_date": s.info.BuildDate,
		"build_time": s.info.BuildTime, "build_user": s.info.BuildUser,
	}
	if s.info.GitSHA != "" {
		v["git_sha"] = s.info.GitSHA
	}
	return v
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.versionJSON())
}

func (s *Server) flagMap() map[string]string {
	m := make(map[string]string, len(s.info.Flags))
	for _, f := range s.info.Flags {
		m[f.Name] = f.Value
	}
	return m
}

func (s *Server) flags(w http.ResponseWriter, r *http.Request) {
	if d := s.viewFlags(r); !d.Allowed {
		forbid(w, flagsDenied(s.principal(r), d.Rule), d.Rule)
		return
	}
	writeJSON(w, map[string]any{"flags": s.flagMap()})
}

// viewFlags is the view_flags decision for r's principal.
func (s *Server) viewFlags(r *http.Request) acl.Decision {
	return s.acls.Evaluate(acl.ViewFlags, s.principal(r), acl.NoObject)
}

// mayViewFlags is view_flags for r's principal.
func (s *Server) mayViewFlags(r *http.Request) bool { return s.viewFlags(r).Allowed }

func flagsDenied(principal, rule string) string {
	return fmt.Sprintf("%s may not view the flags (denied by %s)", who(principal), rule)
}

// forbid answers 403 with the rule that decided.
func forbid(w http.ResponseWriter, msg, rule string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "rule": rule})
}

func who(principal string) string {
	if principal == "" {
		return "the unauthenticated principal"
	}
	return fmt.Sprintf("principal %q", principal)
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	st := s.versionJSON()
	st["start_time"] = float64(s.info.StartTime.UnixNano()) / 1e9
	st["id"] = s.info.ID
	st["pid"] = "slave(1)@" + s.info.Addr
	st["hostname"] = s.info.Hostname
	if s.mayViewFlags(r) {
		st["flags"] = s.flagMap()
	}
	st["resources"] = map[string]any{}
	st["attributes"] = map[string]any{}
	st["frameworks"] = []any{}
	st["completed_frameworks"] = []any{}
	mods := make([]supervisor.Status, len(s.modules))
	for i, m := range s.modules {
		mods[i] = m.Status()
	}
	st["modules"] = mods
	writeJSON(w, st)
}

// agentHelp documents the agent's own endpoints under Mesos's delegate
// process id, with Mesos's texts.
var agentHelp = help.Process{ID: "slave(1)", Delegate: true, Endpoints: []help.Endpoint{
	{Name: "/health", Text: help.Format("Health check of the Agent.",
		"Returns 200 OK iff the Agent is healthy.\nDelayed responses are also indicative of poor health.", false)},
	{Name: "/flags", Text: help.Format("Exposes the agent's flag configuration.",
		"Returns the agent's flags as a JSON object {\"flags\": {name: value}}.", true)},
	{Name: "/state", Text: help.Format("Information about state of the Agent.",
		"Returns a JSON object with the agent's version, flags, and the modules it runs with their state and restart counts.", true)},
}}

func (s *Server) helpProcesses() []help.Process {
	procs := []help.Process{agentHelp, metricsHelp}
	for _, m := range s.modules {
		man := m.Manifest()
		p := help.Process{ID: man.ID}
		for _, r := range man.Routes {
			text := ""
			if r.HelpTLDR != "" || r.HelpDescription != "" {
				text = help.Format(r.HelpTLDR, r.HelpDescription, r.Realm != wire.RealmNone)
			}
			p.Endpoints = append(p.Endpoints, help.Endpoint{Name: r.Path, Text: text})
		}
		procs = append(procs, p)
	}
	return procs
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "agent: encode:", err)
	}
}

// Entry is one line of the route table.
type Entry struct {
	Method, Path, Owner string
	Realm               wire.Realm
}

// Table is the host's route table; it prints itself as aligned
// METHOD PATH OWNER REALM lines.
type Table []Entry

func (t Table) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, e := range t {
		method := cmp.Or(e.Method, "*")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", method, e.Path, e.Owner, e.Realm)
	}
	tw.Flush()
	return b.String()
}
