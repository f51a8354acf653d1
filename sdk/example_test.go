package sdk_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"

	"github.com/execmod/execmod/sdk"
)

// hello is a module: a value with routes. Provision is optional.
type hello struct{ greeting string }

func (h *hello) Provision(_ context.Context, env sdk.Env) error {
	h.greeting = cmp.Or(env.Params["greeting"], "Hello")
	return nil
}

func (h *hello) Routes() []sdk.Route {
	return []sdk.Route{{
		Pattern: "GET /{name}",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s, %s!\n", h.greeting, r.PathValue("name"))
		}),
		Realm: sdk.Public,
		Help:  sdk.Help{TLDR: "Greets {name}.", Description: "Answers with the greeting from the module's parameters."},
	}}
}

// A module's main is one call to Serve. The host (bin/modhost) starts the
// executable, mounts the module's routes under /hello/ and forwards
// requests to it. Serve does not return.
func ExampleServe() {
	// func main() {
	sdk.Serve("hello", &hello{})
	// }
}

// Each route is a Go 1.22 ServeMux pattern relative to the module's mount
// point, a plain net/http handler, a realm and help text for the host's
// /help pages.
func ExampleRoute() {
	status := func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) }
	run := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }
	routes := []sdk.Route{
		{
			Pattern: "GET /status", // served at GET /<id>/status
			Handler: http.HandlerFunc(status),
			Realm:   sdk.ReadOnly, // mesos-agent-readonly
			Help:    sdk.Help{TLDR: "Reports the module's status."},
		},
		{
			Pattern: "POST /run",
			Handler: http.HandlerFunc(run),
			// No Realm: the zero value is sdk.ReadWrite (mesos-agent-readwrite).
			Help: sdk.Help{
				TLDR:        "Runs something.",
				Description: "Answers 202 at once.\nA description may have several lines.",
			},
		},
	}
	for _, r := range routes {
		fmt.Printf("%-12s realm=%d %s\n", r.Pattern, r.Realm, r.Help.TLDR)
	}
	// Output:
	// GET /status  realm=1 Reports the module's status.
	// POST /run    realm=0 Runs something.
}

// counter checks its parameter in Provision.
type counter struct{ start int }

func (c *counter) Provision(_ context.Context, env sdk.Env) error {
	n, err := strconv.Atoi(cmp.Or(env.Params["start"], "0"))
	if err != nil {
		return fmt.Errorf("parameter start: %q is not a whole number", env.Params["start"])
	}
	c.start = n
	return nil
}

func (c *counter) Routes() []sdk.Route { return nil }

// Provision gets the module's modules.json parameters in env.Params. An
// error stops the host's start: the host prints
// "Error loading modules: ..." with the message and exits 1.
func ExampleProvisioner() {
	var c counter
	err := c.Provision(context.Background(), sdk.Env{Params: map[string]string{"start": "ten"}})
	fmt.Println(err)
	// Output:
	// parameter start: "ten" is not a whole number
}

// greeter cannot work without its greeting: Required makes a missing
// parameter an error that tells the operator what to add.
type greeter struct{ greeting string }

func (g *greeter) Provision(_ context.Context, env sdk.Env) error {
	var err error
	g.greeting, err = env.Params.Required("greeting")
	return err
}

func (g *greeter) Routes() []sdk.Route { return nil }

// A parameter the module cannot do without: Required returns its value,
// or an error that Provision returns as it is. The host then prints it
// after "Error loading modules: " and exits 1.
func ExampleParams_Required() {
	var g greeter
	fmt.Println(g.Provision(context.Background(), sdk.Env{Params: sdk.Params{"greeting": "Bonjour"}}), g.greeting)
	fmt.Println(g.Provision(context.Background(), sdk.Env{Params: sdk.Params{}}))
	// Output:
	// <nil> Bonjour
	// parameter "greeting" is required: add {"key":"greeting","value":...} to the module's entry in modules.json
}

// ServeInProcess runs a module inside this process, through the same
// protocol the host uses, and returns the host's side as an http.Handler
// with the routes mounted under /<id>/. Tests usually call
// sdktest.NewServer, which is built on it.
func ExampleServeInProcess() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, stopped, err := sdk.ServeInProcess(ctx, "hello", &hello{}, sdk.InProcess{
		Params: map[string]string{"greeting": "Bonjour"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(h)
	resp, err := http.Get(srv.URL + "/hello/Mesos")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))

	srv.Close()
	cancel() // stops the module; its io.Closer, if any, runs
	fmt.Println("closed:", <-stopped)
	// Output:
	// Bonjour, Mesos!
	// closed: <nil>
}
