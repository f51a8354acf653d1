package sdktest_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/execmod/execmod/sdk"
	"github.com/execmod/execmod/sdk/sdktest"
)

type hello struct{}

func (hello) Routes() []sdk.Route {
	return []sdk.Route{{Pattern: "GET /{name}", Realm: sdk.Public, Handler: http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "Hello, %s!\n", r.PathValue("name")) })}}
}

// NewServer needs a test's *testing.T, so this example is a test, as you
// would write it in your module's main_test.go, where go test runs it.
// The server stops when the test ends.
func ExampleNewServer() {
	TestHello := func(t *testing.T) {
		srv := sdktest.NewServer(t, "hello", hello{},
			sdktest.Params("greeting", "Hello"), // modules.json parameters
			sdktest.MaxBody(1<<20),              // as the host's --max_request_body
		)
		resp, err := srv.Client.Get(srv.URL + "/hello/world") // routes are under /<id>/
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "Hello, world!\n" {
			t.Errorf("GET /hello/world = %d %q, want 200 %q", resp.StatusCode, body, "Hello, world!\n")
		}
	}
	runAsTest(TestHello) // go test calls a TestHello in main_test.go; TestExamples calls this one
}

// runAsTest runs a test an example defines. It does nothing when go test
// runs the example itself (an example gets no *testing.T); TestExamples
// calls each example with runAsTest running the example's test.
var runAsTest = func(func(*testing.T)) {}

// TestExamples runs the tests the examples define, so that the code the
// documentation shows is the code that runs.
func TestExamples(t *testing.T) {
	for name, example := range map[string]func(){"ExampleNewServer": ExampleNewServer} {
		t.Run(name, func(t *testing.T) {
			ran := false
			runAsTest = func(test func(*testing.T)) {
				ran = true
				test(t)
			}
			t.Cleanup(func() { runAsTest = func(func(*testing.T)) {} })
			example()
			if !ran {
				t.Errorf("%s defines no test for runAsTest", name)
			}
		})
	}
}
