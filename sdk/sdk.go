package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/execmod/execmod/internal/wire"
)

// Module is a module: a value that lists its routes.
type Module interface {
	// Routes lists the module's routes. It is called once, after
	// Provision and before any request.
	Routes() []Route
}

// Route is one HTTP route of a module.
type Route struct {
	// Pattern is a Go 1.22 ServeMux pattern relative to the module's mount
	// point: "GET /{name}" is served at GET /<id>/{name}. A pattern without
	// a method matches every method. Host names are not allowed.
	Pattern string
	// Handler serves the route's requests. r.URL.Path is relative to the
	// mount point and r.PathValue gives the pattern's wildcards. It must
	// not be nil.
	Handler http.Handler
	// Realm says who may call the route when the host authenticates. The
	// zero value is ReadWrite: a route is closed unless it says otherwise.
	Realm Realm
	// Help is shown by the host's /help pages, in Mesos's format.
	Help Help
}

// Realm is a route's authentication realm, as in Mesos.
type Realm int

const (
	// ReadWrite routes need a principal allowed to change things
	// (mesos-agent-readwrite). It is the default.
	ReadWrite Realm = iota
	// ReadOnly routes need a principal allowed to read
	// (mesos-agent-readonly).
	ReadOnly
	// Public routes are never authenticated, like Mesos's /health.
	Public
)

// Help is a route's help text, shown by the host at /help/<id>/<path>.
type Help struct {
	TLDR        string // one line
	Description string // paragraphs; may be several lines
}

// Env is what a module learns about its host when it starts.
type Env struct {
	// Name is the module's name in modules.json.
	Name string
	// Flags holds every agent flag by name: "work_dir", "sandbox_directory",
	// "hostname", ...
	Flags map[string]string
	// Params holds the module's modules.json parameters.
	Params Params
	// WorkDir and SandboxDir are the agent's --work_dir and
	// --sandbox_directory.
	WorkDir, SandboxDir string
	// DataDir is the one directory the module may write to
	// (<work_dir>/modules/<name>); the host creates it.
	DataDir string
	// Logger logs into the host's log under the module's name. The
	// standard log package is redirected to it too.
	Logger *slog.Logger
}

// Params are a module's parameters, the "parameters" of its entry in
// modules.json, by key. Index it for a parameter that may be left out
// (cmp.Or(env.Params["greeting"], "Hello") gives a default); call
// Required for one that may not.
type Params map[string]string

// Required returns the parameter key's value. When modules.json does not
// give the parameter, it returns an error for Provision to return as it
// is: it tells the operator what to add where. A parameter given with an
// empty value is given; checking values is the module's job.
func (p Params) Required(key string) (string, error) {
	v, ok := p[key]
	if !ok {
		return "", fmt.Errorf(`parameter %q is required: add {"key":%q,"value":...} to the module's entry in modules.json`, key, key)
	}
	return v, nil
}

// Provisioner is implemented by modules that need configuration.
type Provisioner interface {
	// Provision runs once, before Routes and before any request. An error
	// stops the host's start with the error's message, so say what is
	// wrong and how to fix it. ctx is done when the host stops waiting
	// for the module to start (its start timeout).
	Provision(ctx context.Context, env Env) error
}

// MetricsProvider is implemented by modules with metrics.
type MetricsProvider interface {
	// Metrics is called for each /metrics/snapshot of the host,
	// concurrently with requests; the host prefixes each name with
	// "<id>/".
	Metrics() map[string]float64
}

// Principal returns the principal the host authenticated r as, or "" when
// the request was not authenticated. The host strips any copy of its
// header a client sends, so a handler can trust it.
func Principal(r *http.Request) string { return r.Header.Get(wire.PrincipalHeader) }
