package help_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/execmod/execmod/host/internal/help"
)

func ExampleFormat() {
	text := help.Format(
		"Executes a command on the agent.",
		"Runs the command given in the request body.\nReturns 200 OK with the task's id.",
		false,
	)
	// A margin keeps the blank lines visible: the DESCRIPTION section
	// always ends in two of them, as in libprocess.
	for line := range strings.Lines(text) {
		fmt.Print("|", line)
	}
	// Output:
	// |### TL;DR; ###
	// |Executes a command on the agent.
	// |
	// |### DESCRIPTION ###
	// |Runs the command given in the request body.
	// |Returns 200 OK with the task's id.
	// |
	// |
	// |### AUTHENTICATION ###
	// |This endpoint does not require authentication.
}

func ExampleHandler() {
	processes := func() []help.Process {
		return []help.Process{{ID: "hello", Endpoints: []help.Endpoint{
			{Name: "/{name}", Text: help.Format("Greets name.", "", false)},
			{Name: "/"},
		}}}
	}
	mux := http.NewServeMux()
	h := help.Handler(processes)
	mux.Handle("/help", h) // no method in the patterns: the handler answers 405 itself
	mux.Handle("/help/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/help/hello", nil)
	req.Header.Set("User-Agent", "curl/8.5.0") // raw markdown, not HTML
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Header.Get("Content-Type"), "\n", string(body))
	// Output:
	// text/x-markdown
	// ## `/hello` ##
	// > [/hello][hello]
	// > [/hello/{name}][hello/{name}]
	//
	// [hello]: hello
	// [hello/{name}]: hello/{name}
}
