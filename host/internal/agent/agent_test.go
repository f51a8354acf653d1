package agent

import (
	"cmp"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/execmod/execmod/host/internal/supervisor"
	"github.com/execmod/execmod/internal/wire"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixed is a mounted module with a fixed manifest and no process: its
// routes answer 503, which is all the route table needs.
type fixed struct {
	name string
	man  wire.Manifest
}

func (f fixed) Manifest() wire.Manifest         { return f.man }
func (f fixed) Backend() (*wire.Process, error) { return nil, nil }
func (f fixed) Status() supervisor.Status {
	return supervisor.Status{Name: f.name, Path: "/bin/" + f.name}
}
func (f fixed) Metrics(context.Context) (map[string]float64, error) { return nil, nil }

func TestRouteTableGolden(t *testing.T) {
	srv, err := New(Info{}, []Module{
		fixed{"org_execmod_Hello", wire.Manifest{ID: "hello", Routes: []wire.Route{{Method: "GET", Path: "/{name}"}}}},
		fixed{"org_execmod_Remote", wire.Manifest{ID: "remote", Routes: []wire.Route{
			{Method: "POST", Path: "/execute", Realm: wire.RealmReadWrite},
			{Method: "GET", Path: "/status", Realm: wire.RealmReadOnly},
			{Path: "/task", Realm: wire.RealmReadOnly},
		}}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Table().String()
	golden := filepath.Join("testdata", "routes.golden")
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("route table changed (run go test -update to accept):\n%s\nwant:\n%s", got, want)
	}
}

func TestConflictsNameBothModules(t *testing.T) {
	r := []wire.Route{{Method: "GET", Path: "/x"}}
	for _, tc := range []struct {
		mods []Module
		want []string
	}{
		{[]Module{fixed{"a", wire.Manifest{ID: "same", Routes: r}}, fixed{"b", wire.Manifest{ID: "same", Routes: r}}},
			[]string{"a (/bin/a)", "b (/bin/b)", "both mount /same/"}},
		{[]Module{fixed{"c", wire.Manifest{ID: "state", Routes: r}}}, []string{"c (/bin/c)", `"state" is reserved`}},
		{[]Module{fixed{"d", wire.Manifest{ID: "dup", Routes: append(r, r...)}}}, []string{"d (/bin/d)", "conflicts"}},
	} {
		_, err := New(Info{}, tc.mods, Options{})
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("New = %v, want it to contain %q", err, w)
			}
		}
	}
}

// Every route, the agent's and the modules', goes through Options.Auth
// with the realm the route table shows.
func TestEveryRouteGoesThroughAuthWithItsRealm(t *testing.T) {
	srv, err := New(Info{}, []Module{
		fixed{"org_execmod_Hello", wire.Manifest{ID: "hello", Routes: []wire.Route{{Method: "GET", Path: "/{name}"}}}},
		fixed{"org_execmod_Remote", wire.Manifest{ID: "remote", Routes: []wire.Route{
			{Method: "POST", Path: "/execute", Realm: wire.RealmReadWrite},
			{Method: "GET", Path: "/status", Realm: wire.RealmReadOnly},
			{Path: "/task", Realm: wire.RealmReadOnly},
			{Method: "DELETE", Path: "/tasks/{id}/{rest...}", Realm: wire.RealmReadWrite},
		}}},
	}, Options{Auth: func(realm wire.Realm, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Realm", realm.String())
			w.WriteHeader(http.StatusTeapot)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	wildcard := regexp.MustCompile(`\{[^}]*\}`)
	for _, e := range srv.Table() {
		method := cmp.Or(e.Method, "PUT")
		path := wildcard.ReplaceAllString(e.Path, "x")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		if rec.Code != http.StatusTeapot || rec.Header().Get("X-Realm") != e.Realm.String() {
			t.Errorf("%s %s: %d realm %q, want it wrapped with %s", method, path, rec.Code, rec.Header().Get("X-Realm"), e.Realm)
		}
	}
	// /help/<id>/<route> is /help's handler too.
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/help/remote/execute", nil))
	if rec.Code != http.StatusTeapot || rec.Header().Get("X-Realm") != "none" {
		t.Errorf("/help/remote/execute: %d realm %q", rec.Code, rec.Header().Get("X-Realm"))
	}
}
