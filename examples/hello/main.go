// Command hello is the smallest complete module. Mounted at /hello/ it serves
//
//	GET /hello/{name}
//
// with a greeting set by the "greeting" parameter in modules.json.
package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"

	"github.com/execmod/execmod/sdk"
)

type hello struct{ greeting string }

var _ sdk.Provisioner = (*hello)(nil)

// Provision reads the module's parameters from modules.json.
func (h *hello) Provision(_ context.Context, env sdk.Env) error {
	h.greeting = cmp.Or(env.Params["greeting"], "Hello")
	return nil
}

func (h *hello) Routes() []sdk.Route {
	return []sdk.Route{{
		Pattern: "GET /{name}", Handler: http.HandlerFunc(h.greet), Realm: sdk.Public,
		Help: sdk.Help{TLDR: "Greets {name}.", Description: "Answers with the greeting from the module's parameters."},
	}}
}

func (h *hello) greet(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s, %s!\n", h.greeting, r.PathValue("name"))
}

func main() { sdk.Serve("hello", &hello{}) }
