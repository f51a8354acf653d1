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

// NewServer needs a test's *testing.T, so this example is a whole test,
// as you would write it in your module's _test.go file. The server stops
// when the test ends.
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
		if string(body) != "Hello, world!\n" {
			t.Errorf("GET /hello/world = %q", body)
		}
	}
	_ = TestHello
}

// The example above, run as a test.
func TestExampleNewServer(t *testing.T) {
	srv := sdktest.NewServer(t, "hello", hello{}, sdktest.Params("greeting", "Hello"), sdktest.MaxBody(1<<20))
	resp, err := srv.Client.Get(srv.URL + "/hello/world")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "Hello, world!\n" {
		t.Errorf("GET /hello/world = %q", body)
	}
}
