package main

import (
	"io"
	"net/http"
	"testing"

	"github.com/execmod/execmod/sdk/sdktest"
)

func TestGreet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []sdktest.Option
		path   string
		status int
		body   string
	}{
		{"default greeting", nil, "/hello/world", 200, "Hello, world!\n"},
		{"greeting parameter", []sdktest.Option{sdktest.Params("greeting", "Bonjour")}, "/hello/Mesos", 200, "Bonjour, Mesos!\n"},
		{"escaped name", nil, "/hello/a%20b", 200, "Hello, a b!\n"},
		{"no such route", nil, "/hello/a/b", 404, `{"error":"no route for GET /hello/a/b (GET /help lists them)"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := sdktest.NewServer(t, "hello", &hello{}, tc.opts...)
			resp, err := srv.Client.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || string(body) != tc.body {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}

func TestWrongMethod(t *testing.T) {
	srv := sdktest.NewServer(t, "hello", &hello{})
	resp, err := srv.Client.Post(srv.URL+"/hello/world", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", resp.StatusCode)
	}
}
