package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/execmod/execmod/sdk"
	"github.com/execmod/execmod/sdk/sdktest"
)

// readEvent reads one event, "data: <time>\n\n", and returns its time.
func readEvent(t *testing.T, br *bufio.Reader) time.Time {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading an event: %v (read %q)", err, line)
	}
	blank, err := br.ReadString('\n')
	if err != nil || blank != "\n" {
		t.Fatalf("event %q not followed by a blank line: %q, %v", line, blank, err)
	}
	data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
	if !ok {
		t.Fatalf("event %q does not start with \"data: \"", line)
	}
	ts, err := time.Parse(time.RFC3339, data)
	if err != nil {
		t.Fatalf("event data %q: %v", data, err)
	}
	return ts
}

func get(t *testing.T, ctx context.Context, srv *sdktest.Server, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	resp, err := srv.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestStreamEndsAfterN(t *testing.T) {
	srv := sdktest.NewServer(t, "clock", clock{})
	resp := get(t, t.Context(), srv, "/clock/ticks?n=5&every=10ms")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	var prev time.Time
	for i := range 5 {
		ts := readEvent(t, br)
		if ts.Before(prev) {
			t.Errorf("event %d: %v is before the previous event's %v", i, ts, prev)
		}
		prev = ts
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after 5 events: %q, %v; want the end of the stream", rest, err)
	}
}

// finished tells when a handler has returned.
type finished struct {
	clock
	done chan struct{}
}

func (f finished) Routes() []sdk.Route {
	routes := f.clock.Routes()
	h := routes[0].Handler
	routes[0].Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(f.done)
		h.ServeHTTP(w, r)
	})
	return routes
}

// With an hour between events, the first can only arrive if it was flushed
// on its own; and when the client goes away the handler returns at once
// instead of waiting for the next tick.
func TestEachEventIsFlushedAndClientCanLeave(t *testing.T) {
	m := finished{done: make(chan struct{})}
	srv := sdktest.NewServer(t, "clock", m)
	ctx, cancel := context.WithCancel(t.Context())
	resp := get(t, ctx, srv, "/clock/ticks?n=2&every=1h")
	readEvent(t, bufio.NewReader(resp.Body))
	cancel()
	<-m.done
}

func TestBadQuery(t *testing.T) {
	srv := sdktest.NewServer(t, "clock", clock{})
	for _, q := range []string{"n=0", "n=1001", "n=x", "every=1ms", "every=2h", "every=1"} {
		resp := get(t, t.Context(), srv, "/clock/ticks?"+q)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.HasPrefix(string(body), strings.Split(q, "=")[0]+": ") {
			t.Errorf("?%s = %d %q, want 400 naming the parameter", q, resp.StatusCode, body)
		}
	}
}
