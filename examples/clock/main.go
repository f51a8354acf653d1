// Command clock streams the time as Server-Sent Events. Mounted at /clock/ it
// serves
//
//	GET /clock/ticks?n=10&every=1s
//
// a text/event-stream of n events (default 10, at most 1000), the first at
// once and then one every "every" (a Go duration, default 1s, from 10ms to
// 1h). Each event is "data: <time, RFC 3339>\n\n", flushed as soon as it is
// written. The stream ends after n events, or as soon as the client goes
// away.
package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/execmod/execmod/sdk"
)

type clock struct{}

func (clock) Routes() []sdk.Route {
	return []sdk.Route{{
		Pattern: "GET /ticks", Handler: http.HandlerFunc(ticks), Realm: sdk.Public,
		Help: sdk.Help{TLDR: "Streams the time as Server-Sent Events.",
			Description: "Query parameters: n, the number of events (default 10, at most 1000);\n" +
				"every, the interval between them (a Go duration, default 1s, from 10ms to 1h)."},
	}}
}

func ticks(w http.ResponseWriter, r *http.Request) {
	n, every, err := parseQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher := http.NewResponseController(w)
	t := time.NewTicker(every)
	defer t.Stop()
	for i := range n {
		if i > 0 {
			select {
			case <-r.Context().Done(): // the client went away
				return
			case <-t.C:
			}
		}
		fmt.Fprintf(w, "data: %s\n\n", time.Now().UTC().Format(time.RFC3339Nano))
		if err := flusher.Flush(); err != nil {
			return
		}
	}
}

func parseQuery(q url.Values) (n int, every time.Duration, err error) {
	n, every = 10, time.Second
	if s := q.Get("n"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 1 || n > 1000 {
			return 0, 0, errors.New("n: want a number of events from 1 to 1000")
		}
	}
	if s := q.Get("every"); s != "" {
		if every, err = time.ParseDuration(s); err != nil || every < 10*time.Millisecond || every > time.Hour {
			return 0, 0, errors.New("every: want a Go duration from 10ms to 1h, such as 500ms")
		}
	}
	return n, every, nil
}

func main() { sdk.Serve("clock", clock{}) }
