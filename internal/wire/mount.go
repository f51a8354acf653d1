package wire

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// CheckManifest reports everything wrong with a module's manifest, in
// words for the module's author.
func CheckManifest(m Manifest) error {
	var errs []error
	if !idPattern.MatchString(m.ID) {
		errs = append(errs, fmt.Errorf("module id %q is not valid: use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit", m.ID))
	}
	if len(m.Routes) == 0 {
		errs = append(errs, errors.New("module has no routes"))
	}
	for _, r := range m.Routes {
		if !strings.HasPrefix(r.Path, "/") {
			errs = append(errs, fmt.Errorf("route %q: the path must start with '/' (it is relative to the mount point /%s/)", r.Method+" "+r.Path, m.ID))
		}
		if r.Realm < RealmNone || r.Realm > RealmReadWrite {
			errs = append(errs, fmt.Errorf("route %q: unknown realm %d", r.Method+" "+r.Path, r.Realm))
		}
	}
	return errors.Join(errs...)
}

// Backend returns the module process to forward to or, while the module is
// down, an error saying why: the client reads it in a 503. An error that
// is ErrRestarting also tells the client to retry in a second.
type Backend func() (*Process, error)

// ErrRestarting classes a module that is down but coming back.
var ErrRestarting = errors.New("restarting")

// MountOptions configure Mount.
type MountOptions struct {
	MaxBody int64 // request body limit for every route; 0 means none
	// Wrap, if set, wraps each route's handler (the host adds
	// authentication here). It sees the route, realm included.
	Wrap func(Route, http.Handler) http.Handler
	// Principal returns the authenticated principal of a request.
	Principal func(*http.Request) string
}

// Mount registers every route of m on mux under /<m.ID>, each forwarding
// to the process backend returns. A pattern that is invalid or collides
// with one already on mux is an error naming both; it never panics.
func Mount(mux *http.ServeMux, m Manifest, backend Backend, opts MountOptions) error {
	if err := CheckManifest(m); err != nil {
		return err
	}
	mount := "/" + m.ID
	var errs []error
	for _, route := range m.Routes {
		fo := ForwardOptions{Module: m.ID, Mount: mount, MaxBody: opts.MaxBody}
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := backend()
			if p == nil || err != nil {
				if err == nil || errors.Is(err, ErrRestarting) {
					w.Header().Set("Retry-After", "1")
				}
				msg := fmt.Sprintf("module %q is not running", m.ID)
				if err != nil {
					msg = err.Error()
				}
				WriteError(w, http.StatusServiceUnavailable, msg)
				return
			}
			o := fo
			if opts.Principal != nil {
				o.Principal = opts.Principal(r)
			}
			p.Forward(w, r, o)
		})
		if opts.Wrap != nil {
			h = opts.Wrap(route, h)
		}
		if err := Handle(mux, route.Pattern(mount), h); err != nil {
			errs = append(errs, fmt.Errorf("module %q: route %q: %w", m.ID, strings.TrimSpace(route.Method+" "+route.Path), err))
		}
	}
	return errors.Join(errs...)
}

// Handle is mux.Handle with its panics (bad pattern, conflict) as errors.
// The "(registered at file:line)" notes net/http adds point into this
// package, not at the author's code, so they are dropped.
func Handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			msg := registeredAt.ReplaceAllString(fmt.Sprint(v), "")
			msg = strings.Join(strings.Fields(msg), " ")
			err = errors.New(msg)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

var registeredAt = regexp.MustCompile(` \(registered at [^)]*\)`)

// JSONErrors serves mux, and answers the requests that match none of its
// patterns (404, or 405 with Allow when another method would match) with a
// JSON error, as every other error the host produces, instead of
// net/http's text. A route's own answers pass through untouched.
func JSONErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" { // a route, or a redirect to its canonical path
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			WriteError(w, rec.status, fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
		case http.StatusNotFound:
			WriteError(w, rec.status, fmt.Sprintf("no route for %s %s (GET /help lists them)", r.Method, r.URL.Path))
		default: // net/http's other answers (a bad CONNECT, say) as they are
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body)
		}
	})
}

// statusRecorder keeps what the mux's own error handler writes.
type statusRecorder struct {
	header http.Header
	status int
	body   []byte
}

func (r *statusRecorder) Header() http.Header { return r.header }

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body = append(r.body, p...)
	return len(p), nil
}
