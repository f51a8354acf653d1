package sdk_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/execmod/execmod/sdk"
)

type routes []sdk.Route

func (r routes) Routes() []sdk.Route { return r }

// A module whose routes cannot be mounted fails to start with a message
// naming the route and what is wrong with it.
func TestBadRoutes(t *testing.T) {
	ok := http.NotFoundHandler()
	for _, tc := range []struct {
		name   string
		routes routes
		want   []string
	}{
		{"invalid pattern", routes{{Pattern: "GET /{x", Handler: ok}}, []string{`"GET /{x"`, "bad wildcard"}},
		{"collision", routes{{Pattern: "GET /a", Handler: ok}, {Pattern: "GET /a", Handler: ok}}, []string{`pattern "GET /a" conflicts with pattern "GET /a": GET /a matches the same requests as GET /a`}},
		{"host in pattern", routes{{Pattern: "example.com/a", Handler: ok}}, []string{"example.com/a"}},
		{"nil handler", routes{{Pattern: "GET /a"}}, []string{`"GET /a"`, "handler"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := sdk.ServeInProcess(t.Context(), "bad", tc.routes, sdk.InProcess{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}
