package sdk

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/execmod/execmod/internal/wire"
)

// mount builds the module's mux from its routes and the manifest routes
// the host mounts under /<id>/. A route that cannot be served is an error
// written for the module's author: which route (its index in Routes() and
// its pattern), what is wrong and what to do. Every problem is reported.
func mount(id string, routes []Route) (*http.ServeMux, []wire.Route, error) {
	if len(routes) == 0 {
		return nil, nil, errors.New("Routes() returned no routes: a module serves at least one sdk.Route")
	}
	mux := http.NewServeMux()
	var (
		manifest []wire.Route
		mounted  []int // indexes of the routes on mux
		errs     []error
	)
	for i, r := range routes {
		wr, err := wireRoute(id, r)
		if err == nil {
			err = invalidPattern(id, r.Pattern)
		}
		if err == nil && register(mux, r) != nil {
			err = collision(routes, mounted, i)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("Routes()[%d] %q %w", i, r.Pattern, err))
			continue
		}
		mounted = append(mounted, i)
		manifest = append(manifest, wr)
	}
	switch len(errs) {
	case 0:
		return mux, manifest, nil
	case 1:
		return nil, nil, errs[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of its %d routes cannot be served:", len(errs), len(routes))
	for _, err := range errs {
		b.WriteString("\n\t" + err.Error())
	}
	return nil, nil, errors.New(b.String())
}

// register is mux.Handle, with its panic as an error.
func register(mux *http.ServeMux, r Route) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	mux.Handle(r.Pattern, r.Handler)
	return nil
}

// patternHint ends every message about a pattern.
func patternHint(id string) string {
	return fmt.Sprintf(`A pattern is a Go 1.22 ServeMux pattern relative to the mount point /%s/, such as "GET /items/{id}"`, id)
}

// invalidPattern says what is wrong with a pattern ServeMux cannot parse.
func invalidPattern(id, pattern string) error {
	err := register(http.NewServeMux(), Route{Pattern: pattern, Handler: http.NotFoundHandler()})
	if err == nil {
		return nil
	}
	// ServeMux says `parsing "GET /{x": at offset 5: bad wildcard ...`.
	why := strings.TrimPrefix(err.Error(), fmt.Sprintf("parsing %q: ", pattern))
	return fmt.Errorf("is not a valid pattern: %s. %s", why, patternHint(id))
}

// collision names the mounted route that routes[i] collides with, and
// how, in ServeMux's words.
func collision(routes []Route, mounted []int, i int) error {
	for _, j := range mounted {
		mux := http.NewServeMux()
		mux.Handle(routes[j].Pattern, routes[j].Handler)
		err := register(mux, routes[i])
		if err == nil {
			continue
		}
		// ServeMux says `pattern "B" (registered at ...) conflicts with
		// pattern "A" (registered at ...):\n<why, over several lines>`.
		_, why, ok := strings.Cut(err.Error(), "\n")
		if !ok {
			why = err.Error()
		}
		why = strings.Join(strings.Fields(why), " ")
		return fmt.Errorf("collides with Routes()[%d] %q: %s. Change or remove one of them in Routes()", j, routes[j].Pattern, strings.TrimSuffix(why, "."))
	}
	return errors.New("collides with the routes before it. Change or remove one of them in Routes()")
}

// wireRoute is r as the host mounts it.
func wireRoute(id string, r Route) (wire.Route, error) {
	method, path, err := splitPattern(id, r.Pattern)
	if err != nil {
		return wire.Route{}, err
	}
	if r.Handler == nil {
		return wire.Route{}, errors.New("has no Handler. Set it to an http.Handler, such as http.HandlerFunc(m.serveItem)")
	}
	realm := wire.RealmReadWrite
	switch r.Realm {
	case ReadOnly:
		realm = wire.RealmReadOnly
	case Public:
		realm = wire.RealmNone
	case ReadWrite:
	default:
		return wire.Route{}, fmt.Errorf("has an unknown Realm %d. Use sdk.ReadWrite (the zero value), sdk.ReadOnly or sdk.Public", r.Realm)
	}
	return wire.Route{Method: method, Path: path, Realm: realm, HelpTLDR: r.Help.TLDR, HelpDescription: r.Help.Description}, nil
}

// splitPattern splits "GET /x" into its method and path.
func splitPattern(id, p string) (method, path string, err error) {
	p = strings.TrimSpace(p)
	method, path, found := strings.Cut(p, " ")
	if !found {
		method, path = "", p
	}
	path = strings.TrimLeft(path, " \t")
	if !strings.HasPrefix(path, "/") {
		return "", "", fmt.Errorf("is not relative to the mount point: its path must start with '/' and it may not name a host. %s", patternHint(id))
	}
	return method, path, nil
}
