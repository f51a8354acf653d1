package sdk_test

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execmod/execmod/sdk"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

type routes []sdk.Route

func (r routes) Routes() []sdk.Route { return r }

// A module whose routes cannot be mounted fails to start with a message
// for its author: which route (index and pattern), what is wrong, what to
// do. testdata/bad-routes.golden holds them as the host prints them after
// "Error loading modules: module <name> (<where>): ".
func TestBadRoutes(t *testing.T) {
	ok := http.NotFoundHandler()
	var got strings.Builder
	for _, tc := range []struct {
		name   string
		routes routes
	}{
		{"invalid pattern", routes{{Pattern: "GET /items", Handler: ok}, {Pattern: "GET /items/{id", Handler: ok}}},
		{"duplicate wildcard", routes{{Pattern: "GET /{id}/{id}", Handler: ok}}},
		{"same requests", routes{{Pattern: "GET /items/{id}", Handler: ok}, {Pattern: "GET /items", Handler: ok}, {Pattern: "GET /items/{name}", Handler: ok}}},
		{"overlap", routes{{Pattern: "GET /items/{id}", Handler: ok}, {Pattern: "GET /{kind}/new", Handler: ok}}},
		{"host in pattern", routes{{Pattern: "example.com/items", Handler: ok}}},
		{"relative path", routes{{Pattern: "GET items", Handler: ok}}},
		{"nil handler", routes{{Pattern: "GET /items"}}},
		{"unknown realm", routes{{Pattern: "GET /items", Handler: ok, Realm: 7}}},
		{"no routes", nil},
		{"every problem at once", routes{{Pattern: "GET /a", Handler: ok}, {Pattern: "GET /{x", Handler: ok}, {Pattern: "GET /a", Handler: ok}, {Pattern: "/b"}}},
	} {
		_, _, err := sdk.ServeInProcess(t.Context(), "shop", tc.routes, sdk.InProcess{})
		if err == nil {
			t.Errorf("%s: the module started", tc.name)
			continue
		}
		fmt.Fprintf(&got, "== %s\n%v\n\n", tc.name, err)
	}
	golden(t, "testdata/bad-routes.golden", got.String())
}

// golden compares got with the file, or rewrites the file with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}
