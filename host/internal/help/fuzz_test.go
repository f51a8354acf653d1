package help_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/execmod/execmod/host/internal/help"
)

// FuzzHandler feeds the handler arbitrary paths (already decoded, as
// r.URL.Path is), methods, queries and user agents: it must not panic and
// must answer 200, 400 or 405, with the body each status implies.
func FuzzHandler(f *testing.F) {
	for _, path := range []string{
		"", "/", "/help", "/help/", "//help//", "/help/remote", "/help/remote/",
		"/help/remote/execute", "/help/remote/execute/", "/help/remote/tasks/{id}",
		"/help/remote//tasks/{id}", "/help/slave(1)/health", "/help/nope/x",
		"/help/\x00/\xff", "/help/%2F", "/help/../remote", "/other/remote/execute",
	} {
		f.Add(path, http.MethodGet, "", "curl/8")
	}
	f.Add("/help", http.MethodGet, "format=json", "")
	f.Add("/help", http.MethodGet, "format=json;format=x", "Mozilla/5.0")
	f.Add("/help/remote", http.MethodPost, "", "curl/8")
	f.Add("/help", "", "", "")

	h := help.Handler(fixture)
	f.Fuzz(func(t *testing.T, path, method, query, ua string) {
		r := &http.Request{
			Method: method,
			URL:    &url.URL{Path: path, RawQuery: query},
			Header: http.Header{"User-Agent": {ua}},
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		body := w.Body.String()
		switch w.Code {
		case http.StatusOK:
			if method != http.MethodGet {
				t.Fatalf("%s %q: 200 for a non-GET", method, path)
			}
		case http.StatusBadRequest:
			if !strings.HasPrefix(body, "No help available for '/") || !strings.HasSuffix(body, "'.\n") {
				t.Fatalf("GET %q: 400 body %q", path, body)
			}
		case http.StatusMethodNotAllowed:
			if method == http.MethodGet || w.Header().Get("Allow") != http.MethodGet {
				t.Fatalf("%s %q: 405 with Allow %q", method, path, w.Header().Get("Allow"))
			}
		default:
			t.Fatalf("%s %q: status %d", method, path, w.Code)
		}
	})
}
