package help_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/execmod/execmod/host/internal/help"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// fixture is a host with a module ("remote"), the agent's delegate process
// and a host endpoint, plus entries Handler must leave out.
func fixture() []help.Process {
	return []help.Process{
		{ID: "remote", Endpoints: []help.Endpoint{
			{Name: "/status", Text: help.Format(
				"Reports the module's status.",
				`Returns 200 OK with {"state": "running"}.`,
				false)},
			{Name: "/execute", Text: help.Format(
				"Executes a command on the agent.",
				"Runs the command given in the request body.\nReturns 200 OK with the task's id.",
				true)},
			{Name: "/task"},
			{Name: "/tasks/{id}", Text: help.Format("One task's state.", "", true)},
		}},
		{ID: "slave(1)", Delegate: true, Endpoints: []help.Endpoint{
			{Name: "/health", Text: help.Format(
				"Health check of the Agent.",
				"Returns 200 OK iff the Agent is healthy.\nDelayed responses are also indicative of poor health.",
				false)},
			{Name: "/flags"},
		}},
		{ID: "version", Endpoints: []help.Endpoint{
			{Name: "/", Text: help.Format("Provides version information.", "", false)},
		}},
		{ID: "help", Endpoints: []help.Endpoint{{Name: "/", Text: "never listed"}}},
		{ID: "__processes__", Endpoints: []help.Endpoint{{Name: "/", Text: "never listed"}}},
		{ID: "idle"}, // no endpoints: never listed
	}
}

// newServer serves h the way the agent mounts it: /help and /help/, with
// method-less patterns.
func newServer(t *testing.T, processes func() []help.Process) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h := help.Handler(processes)
	mux.Handle("/help", h)
	mux.Handle("/help/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request; an empty ua leaves Go's own User-Agent
// (Go-http-client/1.1) in place.
func do(t *testing.T, srv *httptest.Server, method, path, ua string) response {
	t.Helper()
	got, err := fetch(t.Context(), srv, method, path, ua)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// fetch is do for goroutines other than the test's, which must not call
// t.Fatal.
func fetch(ctx context.Context, srv *httptest.Server, method, path, ua string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
	if err != nil {
		return response{}, err
	}
	if ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}, nil
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal([]byte(got), want) {
		t.Errorf("%s differs (go test -update rewrites it)\n got %q\nwant %q", path, got, want)
	}
}

const curl = "curl/8.5.0"

func TestGolden(t *testing.T) {
	srv := newServer(t, fixture)
	tests := []struct {
		golden      string
		path, ua    string
		contentType string
	}{
		{"index.md", "/help", curl, "text/x-markdown"},
		{"index.md", "/help/", curl, "text/x-markdown"},
		{"index.json", "/help?format=json", curl, "application/json"},
		{"index.json", "/help?format=json", "", "application/json"},
		{"index.html", "/help", "", "text/html"},
		{"id_remote.md", "/help/remote", curl, "text/x-markdown"},
		{"id_remote.md", "/help/remote/", "HTTPie/3.2.2", "text/x-markdown"},
		{"id_remote.md", "/help/remote?format=json", curl, "text/x-markdown"}, // only /help has JSON
		{"id_delegate.md", "/help/slave(1)", curl, "text/x-markdown"},
		{"id_root_route.md", "/help/version", curl, "text/x-markdown"},
		{"route_help.md", "/help/remote/execute", curl, "text/x-markdown"},
		{"route_help.html", "/help/remote/execute", "Mozilla/5.0 (X11; Linux x86_64)", "text/html"},
		{"route_no_help.md", "/help/remote/task", curl, "text/x-markdown"},
		{"route_slashes.md", "/help/remote/tasks/{id}", curl, "text/x-markdown"},
		{"route_slashes.md", "/help/remote/tasks%2F%7Bid%7D", curl, "text/x-markdown"},
		{"route_delegate.md", "/help/slave(1)/health", curl, "text/x-markdown"},
		{"route_delegate_no_help.md", "/help/slave(1)/flags", curl, "text/x-markdown"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.ua, func(t *testing.T) {
			got := do(t, srv, http.MethodGet, tt.path, tt.ua)
			if got.status != http.StatusOK {
				t.Fatalf("status %d, want 200; body %q", got.status, got.body)
			}
			if ct := got.header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
			golden(t, tt.golden, got.body)
		})
	}
}

// TestWorkedExample is the example of the reference's §2.3, byte for byte.
func TestWorkedExample(t *testing.T) {
	srv := newServer(t, func() []help.Process {
		return []help.Process{{ID: "remote", Endpoints: []help.Endpoint{
			{Name: "/execute", Text: help.Format("Executes a command on the agent.", "<line1>\n<line2>", false)},
			{Name: "/status", Text: help.Format("Reports status.", "", false)},
			{Name: "/task"},
		}}}
	})
	tests := []struct{ path, want string }{
		{"/help/remote", "## `/remote` ##\n" +
			"> [/remote/execute][remote/execute]\n" +
			"> [/remote/status][remote/status]\n" +
			"> [/remote/task][remote/task]\n" +
			"\n" +
			"[remote/execute]: remote/execute\n" +
			"[remote/status]: remote/status\n" +
			"[remote/task]: remote/task\n"},
		{"/help/remote/execute", "### USAGE ###\n>        /remote/execute\n\n" +
			"### TL;DR; ###\nExecutes a command on the agent.\n\n" +
			"### DESCRIPTION ###\n<line1>\n<line2>\n\n\n" +
			"### AUTHENTICATION ###\nThis endpoint does not require authentication.\n\n"},
		{"/help/remote/task", "## No help page for `/remote/task`\n\n"},
		{"/help", "## HELP\n> [/remote][remote]\n\n[remote]: help/remote\n"},
	}
	for _, tt := range tests {
		got := do(t, srv, http.MethodGet, tt.path, "curl/8")
		if got.status != http.StatusOK || got.body != tt.want {
			t.Errorf("GET %s = %d %q\nwant 200 %q", tt.path, got.status, got.body, tt.want)
		}
		if ct := got.header.Get("Content-Type"); ct != "text/x-markdown" {
			t.Errorf("GET %s: Content-Type %q, want text/x-markdown", tt.path, ct)
		}
	}
}

func TestBadRequest(t *testing.T) {
	srv := newServer(t, fixture)
	tests := []struct{ path, want string }{
		{"/help/nope", "No help available for '/nope'.\n"},
		{"/help/nope/execute", "No help available for '/nope'.\n"},
		{"/help/remote/nope", "No help available for '/remote/nope'.\n"},
		{"/help/remote/tasks/{id}/more", "No help available for '/remote/tasks/{id}/more'.\n"},
		// libprocess looks the rest of the path up as it is, trailing slash included.
		{"/help/remote/execute/", "No help available for '/remote/execute/'.\n"},
		{"/help/help", "No help available for '/help'.\n"},
		{"/help/__processes__", "No help available for '/__processes__'.\n"},
		{"/help/idle", "No help available for '/idle'.\n"},
		{"/help/Remote", "No help available for '/Remote'.\n"},
	}
	for _, tt := range tests {
		for _, ua := range []string{curl, ""} { // the same for browsers
			got := do(t, srv, http.MethodGet, tt.path, ua)
			if got.status != http.StatusBadRequest || got.body != tt.want {
				t.Errorf("GET %s (UA %q) = %d %q, want 400 %q", tt.path, ua, got.status, got.body, tt.want)
			}
			if ct := got.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", tt.path, ct)
			}
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	srv := newServer(t, fixture)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodOptions} {
		for _, path := range []string{"/help", "/help/remote", "/help/remote/execute", "/help/nope"} {
			got := do(t, srv, method, path, curl)
			if got.status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s = %d, want 405", method, path, got.status)
			}
			if allow := got.header.Get("Allow"); allow != "GET" {
				t.Errorf("%s %s: Allow %q, want GET", method, path, allow)
			}
			want := "405 Method Not Allowed. Expecting one of { 'GET' }, but received '" + method + "'."
			if method == http.MethodHead {
				want = "" // no body in a HEAD response
			}
			if got.body != want {
				t.Errorf("%s %s: body %q, want %q", method, path, got.body, want)
			}
		}
	}
}

func TestHTMLEscapesHelpText(t *testing.T) {
	srv := newServer(t, func() []help.Process {
		return []help.Process{{ID: "evil", Endpoints: []help.Endpoint{{
			Name: "/x",
			Text: help.Format(`<script>alert("x")</script>`, "a & b </pre><img src=x onerror=alert(1)>", false),
		}}}}
	})
	got := do(t, srv, http.MethodGet, "/help/evil/x", "Mozilla/5.0")
	if got.status != http.StatusOK {
		t.Fatalf("status %d", got.status)
	}
	for _, bad := range []string{"<script", "<img", "</pre><"} {
		if strings.Contains(got.body, bad) {
			t.Errorf("page contains %q unescaped:\n%s", bad, got.body)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;",
		"a &amp; b &lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;",
	} {
		if !strings.Contains(got.body, want) {
			t.Errorf("page lacks %q:\n%s", want, got.body)
		}
	}
	if csp := got.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// The raw markdown is left alone for curl.
	raw := do(t, srv, http.MethodGet, "/help/evil/x", curl)
	if !strings.Contains(raw.body, `<script>alert("x")</script>`) {
		t.Errorf("markdown altered: %q", raw.body)
	}
}

func TestHTMLLoadsNothing(t *testing.T) {
	srv := newServer(t, fixture)
	for _, path := range []string{"/help", "/help/remote", "/help/remote/execute"} {
		got := do(t, srv, http.MethodGet, path, "")
		for _, bad := range []string{"://", "src=", "href=", "<script", "<link", "@import"} {
			if strings.Contains(got.body, bad) {
				t.Errorf("GET %s: page contains %q", path, bad)
			}
		}
	}
}

// The user agent is matched by prefix and case, as libprocess does.
func TestUserAgent(t *testing.T) {
	srv := newServer(t, fixture)
	tests := []struct{ ua, contentType string }{
		{"curl/7.68.0", "text/x-markdown"},
		{"curl", "text/x-markdown"},
		{"HTTPie/3.2.2", "text/x-markdown"},
		{"Curl/8", "text/html"},
		{"httpie/3", "text/html"},
		{"Wget/1.21", "text/html"},
		{"Mozilla/5.0 curl/8", "text/html"},
		{"", "text/html"}, // Go-http-client/1.1
	}
	for _, tt := range tests {
		got := do(t, srv, http.MethodGet, "/help", tt.ua)
		if ct := got.header.Get("Content-Type"); ct != tt.contentType {
			t.Errorf("UA %q: Content-Type %q, want %q", tt.ua, ct, tt.contentType)
		}
	}
}

func TestJSON(t *testing.T) {
	srv := newServer(t, fixture)
	got := do(t, srv, http.MethodGet, "/help?format=json", "")
	if !json.Valid([]byte(got.body)) {
		t.Fatalf("invalid JSON: %s", got.body)
	}
	// stout escapes '/' as "\/".
	if !strings.Contains(got.body, `"name":"\/execute"`) {
		t.Errorf(`body lacks "name":"\/execute": %s`, got.body)
	}
	var doc struct {
		Processes []struct {
			ID        string `json:"id"`
			Endpoints []struct {
				Name string `json:"name"`
				Text string `json:"text"`
			} `json:"endpoints"`
		} `json:"processes"`
	}
	if err := json.Unmarshal([]byte(got.body), &doc); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range doc.Processes {
		ids = append(ids, p.ID)
	}
	if want := "remote slave(1) version"; strings.Join(ids, " ") != want {
		t.Errorf("ids %q, want %q", ids, want)
	}
	// Every "text" is the stored page: what /help/<id><name> serves, less
	// the final newline.
	for _, p := range doc.Processes {
		for _, e := range p.Endpoints {
			if e.Name == "/" {
				continue // /help/<id>/ is the process index, as in libprocess
			}
			page := do(t, srv, http.MethodGet, "/help/"+p.ID+e.Name, curl)
			if page.body != e.Text+"\n" {
				t.Errorf("%s%s: JSON text %q, page %q", p.ID, e.Name, e.Text, page.body)
			}
		}
	}

	empty := newServer(t, func() []help.Process { return nil })
	if got := do(t, empty, http.MethodGet, "/help?format=json", curl); got.body != `{"processes":[]}` {
		t.Errorf("empty JSON %q", got.body)
	}
	if got := do(t, empty, http.MethodGet, "/help", curl); got.body != "## HELP\n\n" {
		t.Errorf("empty index %q", got.body)
	}
}

// Duplicate ids merge and a repeated route keeps its last text, as
// libprocess's map does; a name without a leading slash gets one.
func TestMerge(t *testing.T) {
	srv := newServer(t, func() []help.Process {
		return []help.Process{
			{ID: "m", Endpoints: []help.Endpoint{{Name: "/a", Text: "first\n"}}},
			{ID: "m", Endpoints: []help.Endpoint{{Name: "/a", Text: "second\n"}, {Name: "b"}}},
		}
	})
	want := "## `/m` ##\n> [/m/a][m/a]\n> [/m/b][m/b]\n\n[m/a]: m/a\n[m/b]: m/b\n"
	if got := do(t, srv, http.MethodGet, "/help/m", curl); got.body != want {
		t.Errorf("GET /help/m = %q, want %q", got.body, want)
	}
	want = "### USAGE ###\n>        /m/a\n\nsecond\n\n"
	if got := do(t, srv, http.MethodGet, "/help/m/a", curl); got.body != want {
		t.Errorf("GET /help/m/a = %q, want %q", got.body, want)
	}
}

// processes is consulted on every request, so modules that load later are
// listed, and calls may overlap.
func TestProcessesChange(t *testing.T) {
	var (
		mu    sync.Mutex
		procs []help.Process
	)
	srv := newServer(t, func() []help.Process {
		mu.Lock()
		defer mu.Unlock()
		return procs
	})
	if got := do(t, srv, http.MethodGet, "/help/hello", curl); got.status != http.StatusBadRequest {
		t.Fatalf("before load: %d %q", got.status, got.body)
	}
	mu.Lock()
	procs = append(procs, help.Process{ID: "hello", Endpoints: []help.Endpoint{{Name: "/{name}"}}})
	mu.Unlock()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := fetch(t.Context(), srv, http.MethodGet, "/help/hello/{name}", curl)
			if err != nil {
				t.Error(err)
				return
			}
			if want := "## No help page for `/hello/{name}`\n\n"; got.status != http.StatusOK || got.body != want {
				t.Errorf("after load: %d %q, want 200 %q", got.status, got.body, want)
			}
		})
	}
	wg.Wait()
}

func TestHandlerNilPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Handler(nil) did not panic")
		}
	}()
	help.Handler(nil)
}
