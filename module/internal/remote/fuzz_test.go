package remote

import (
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzReadRoutes: the module's routes that run nothing answer whatever
// path, query and body they get with a 2xx or a 4xx carrying a JSON error,
// never a 5xx or a panic. One finished task exists, so that lookups can
// succeed.
func FuzzReadRoutes(f *testing.F) {
	p := DefaultParams()
	s, err := Open(f.TempDir(), p, []string{"PATH=/usr/bin:/bin"}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	mux := http.NewServeMux()
	for _, r := range s.Routes(Info{Release: "fuzz"}) {
		mux.Handle(r.Pattern, r.Handler)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, jsonRequest("POST", "/tasks?wait=30s", `{"command":"echo","arguments":["hi"]}`))
	var task struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Pid   int    `json:"pid"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &task); err != nil || task.State != "exited" {
		f.Fatalf("the task to look up: %d %s", rec.Code, rec.Body)
	}
	pid := strconv.Itoa(task.Pid)

	// What a request is made of: a route, a path argument, a query, a body.
	routes := []struct{ method, path string }{
		{"GET", "/status"}, {"GET", "/task"}, {"POST", "/task"}, {"POST", "/kill"},
		{"GET", "/tasks"}, {"GET", "/tasks/{id}"}, {"GET", "/tasks/{id}/{stream}"},
		{"POST", "/tasks/{id}/signal"}, {"POST", "/policy/check"}, {"GET", "/openapi.json"},
	}
	for i := range routes {
		f.Add(uint8(i), task.ID, "stdout", "", "")
	}
	f.Add(uint8(4), "", "", "state=exited&limit=1000&label=a%3Db&cursor=0", "")
	f.Add(uint8(4), "", "", "state=nope&limit=0&label=novalue", "")
	f.Add(uint8(5), task.ID, "", "wait=1ms", "")
	f.Add(uint8(5), task.ID, "", "wait=-1s", "")
	f.Add(uint8(5), "../../etc/passwd", "", "wait=1e400s", "")
	f.Add(uint8(6), task.ID, "stdout", "offset=1&limit=1", "")
	f.Add(uint8(6), task.ID, "stdin", "offset=-1&follow=maybe", "")
	f.Add(uint8(6), task.ID, "stderr", "offset=99999999999999999999&limit=-5", "")
	f.Add(uint8(7), task.ID, "", "", `{"signal":"SIGTERM","scope":"group"}`)
	f.Add(uint8(3), "", "", "", `{"pid":`+pid+`,"signal":"KILL"}`)
	f.Add(uint8(2), "", "", "", `{"pid":`+pid+`}`)
	f.Add(uint8(8), "", "", "", `{"command":"true","env":{"A":"1"},"user":"root","cwd":"/"}`)
	f.Fuzz(func(t *testing.T, which uint8, id, stream, query, body string) {
		rt := routes[int(which)%len(routes)]
		path := strings.NewReplacer("{id}", url.PathEscape(id), "{stream}", url.PathEscape(stream)).Replace(rt.path)
		if query != "" {
			path += "?" + query
		}
		u, err := url.ParseRequestURI(path)
		if err != nil || strings.ContainsFunc(path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return // not a request line net/http would hand a handler
		}
		req := jsonRequest(rt.method, "/", body)
		req.URL, req.RequestURI = u, u.RequestURI()
		// wait= and follow=true on a finished task answer at once; on an
		// unknown one, at once too. The deadline only bounds a bug.
		ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req.WithContext(ctx))
		code := rec.Code
		if code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, u.RequestURI(), body, code, rec.Body)
		}
		if mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type")); mt == "application/json" && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: %d with a body that is not JSON: %q", rt.method, u.RequestURI(), code, rec.Body)
		}
		if code >= 400 && code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%s %s: %d without a JSON error: %q", rt.method, u.RequestURI(), code, rec.Body)
			}
		}
	})
}

func jsonRequest(method, target, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}
