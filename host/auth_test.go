package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/execmod/execmod/host/internal/auth/authtest"
	"github.com/execmod/execmod/internal/hosttest"
)

// The principals of the e2e credentials file. "colon" has a ':' in its
// secret; the secrets must never appear in a log line.
var e2eCreds = map[string]string{"ops": "s3cret-ops", "colon": "a:b:c-secret", "bob": "hunter2-bob"}

func basicAuth(user, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret))
}

// credentialsFile writes e2eCreds as Mesos's JSON, readable by its owner
// only, and returns its path.
func credentialsFile(t *testing.T) string {
	t.Helper()
	var list []map[string]string
	for _, p := range []string{"ops", "colon", "bob"} {
		list = append(list, map[string]string{"principal": p, "secret": e2eCreds[p]})
	}
	b, err := json.Marshal(map[string]any{"credentials": list})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "credentials.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// allModulesJSON loads the test module (all three realms, id testmod),
// hello (a path wildcard) and the remote-execute module (id remote).
func allModulesJSON(t *testing.T) string {
	return fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":"org_execmod_Test"}]},{"file":%q,"modules":[{"name":"org_execmod_Hello"}]},`+
		`{"file":%q,"modules":[{"name":"org_execmod_RemoteExecution"}]}]}`,
		filepath.Join(bins, "testmodule"), filepath.Join(bins, "hello"), remoteExecute(t))
}

var (
	remoteOnce  sync.Once
	remoteBuild error
)

// remoteExecute builds bin/remote-execute into bins, once, for the tests
// that need it (TestMain builds only what every test needs), and returns
// its path.
func remoteExecute(t *testing.T) string {
	t.Helper()
	remoteOnce.Do(func() {
		remoteBuild = hosttest.Build(bins, map[string]string{"remote-execute": "github.com/execmod/execmod/module/remote-execute"})
	})
	if remoteBuild != nil {
		t.Fatal(remoteBuild)
	}
	return filepath.Join(bins, "remote-execute")
}

// noSecretsLogged fails the test if the host's log holds a secret.
func noSecretsLogged(t *testing.T, h *hosttest.Host) {
	t.Helper()
	logs := h.Logs.String()
	for p, s := range e2eCreds {
		if strings.Contains(logs, s) {
			t.Errorf("the host logged the secret of %s", p)
		}
	}
}

// client talks to one host, over HTTP or HTTPS.
type client struct {
	t    *testing.T
	base string // scheme://127.0.0.1:port
	http *http.Client

	closeSSE func() // the stream prepare opened, if any
}

func plainClient(t *testing.T, h *hosttest.Host) *client {
	return &client{t: t, base: h.URL, http: &http.Client{}}
}

// probe sends one request and returns its status as soon as the headers
// are in; it does not wait for the body, so a route that streams or
// blocks (/testmod/block) answers too. A 401 must carry the realm's
// challenge and a JSON error.
func (c *client) probe(method, path string, realm string, header http.Header) int {
	c.t.Helper()
	ctx, cancel := context.WithCancel(c.t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		want := fmt.Sprintf("Basic realm=%q", realm)
		if got := resp.Header.Get("WWW-Authenticate"); got != want {
			c.t.Errorf("%s %s: 401 with WWW-Authenticate %q, want %q", method, path, got, want)
		}
		b, _ := io.ReadAll(resp.Body)
		var body map[string]any
		if json.Unmarshal(b, &body) != nil || body["error"] == nil {
			c.t.Errorf("%s %s: 401 body %q is not a JSON error", method, path, b)
		}
	}
	return resp.StatusCode
}

// get sends a GET with the given Authorization (none if "") and extra
// headers and returns the status and the whole body.
func (c *client) get(path, authorization string, extra ...string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), "GET", c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// principal is the principal /testmod/env saw.
func (c *client) principal(authorization string, extra ...string) (int, string) {
	c.t.Helper()
	code, body := c.get("/testmod/env", authorization, extra...)
	if code != 200 {
		return code, ""
	}
	p, _ := hosttest.Decode(c.t, body)["principal"].(string)
	return code, p
}

// openSSE opens GET /testmod/sse?n=2 and reads its first event, so that
// a POST /testmod/sse/release that reaches the module has a stream to
// release and returns. The stream is closed by the returned func.
func (c *client) openSSE() func() {
	c.t.Helper()
	ctx, cancel := context.WithCancel(c.t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/testmod/sse?n=2", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		c.t.Fatalf("GET /testmod/sse: %v", err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: event 1\n" {
		c.t.Fatalf("GET /testmod/sse: %q %v", line, err)
	}
	return func() { cancel(); resp.Body.Close() }
}

type route struct{ method, path, owner, realm string }

var routeLine = regexp.MustCompile(`route: (\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$`)

// routes parses the route table the host logged at start.
func routes(t *testing.T, h *hosttest.Host) []route {
	t.Helper()
	var out []route
	for _, line := range strings.Split(h.Logs.String(), "\n") {
		if m := routeLine.FindStringSubmatch(line); m != nil {
			out = append(out, route{m[1], m[2], m[3], m[4]})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no route table in the log:\n%s", h.Logs)
	}
	return out
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// For every combination of --authenticate_http_readonly and
// --authenticate_http_readwrite, every route in the host's own route
// table, the agent's and those of the test module, hello and
// remote-execute: without credentials it is 401 exactly when its realm
// is authenticated, with valid ones it is never 401, with a wrong
// password it is 401 exactly when its realm is authenticated (a wrong
// password on an open route is ignored, as Mesos does). So no readwrite
// /remote/* route (execute, kill, tasks, signal, delete) is reachable
// without credentials once --authenticate_http_readwrite is on, and its
// readonly routes follow --authenticate_http_readonly.
func TestAuthMatrixEveryRoute(t *testing.T) {
	creds := credentialsFile(t)
	modules := allModulesJSON(t)
	for _, ro := range []bool{false, true} {
		for _, rw := range []bool{false, true} {
			t.Run(fmt.Sprintf("readonly=%v,readwrite=%v", ro, rw), func(t *testing.T) {
				t.Parallel()
				args := []string{"--modules=" + modules, "--http_credentials=file://" + creds}
				if ro {
					args = append(args, "--authenticate_http_readonly")
				}
				if rw {
					args = append(args, "--authenticate_http_readwrite")
				}
				h := startHost(t, nil, args...)
				want := fmt.Sprintf(`http authentication: authenticated_realms=%s principals=3 client_certificates=false`,
					map[[2]bool]string{{false, false}: "none", {true, false}: "mesos-agent-readonly",
						{false, true}: "mesos-agent-readwrite", {true, true}: `"mesos-agent-readonly,mesos-agent-readwrite"`}[[2]bool{ro, rw}])
				if !strings.Contains(h.Logs.String(), want) {
					t.Errorf("no %q line in the log", want)
				}
				c := plainClient(t, h)
				required := map[string]bool{"none": false, "mesos-agent-readonly": ro, "mesos-agent-readwrite": rw}
				seen := map[string]int{}
				for _, r := range routes(t, h) {
					need, ok := required[r.realm]
					if !ok {
						t.Errorf("route %s %s: unknown realm %q", r.method, r.path, r.realm)
						continue
					}
					seen[r.realm]++
					if strings.HasPrefix(r.path, "/remote/") {
						seen["remote "+r.realm]++
					}
					method := r.method
					if method == "*" {
						method = "GET"
					}
					path := wildcard.ReplaceAllString(r.path, "sample")
					for _, tc := range []struct {
						name      string
						authz     string
						want401   bool
						wantOther bool // must not be 401
					}{
						{"no credentials", "", need, !need},
						{"valid credentials", basicAuth("ops", e2eCreds["ops"]), false, true},
						{"wrong password", basicAuth("ops", "wrong"), need, !need},
						{"unknown principal", basicAuth("mallory", e2eCreds["ops"]), need, !need},
					} {
						c.prepare(path)
						hdr := http.Header{}
						if tc.authz != "" {
							hdr.Set("Authorization", tc.authz)
						}
						code := c.probe(method, path, r.realm, hdr)
						c.done(path)
						switch {
						case tc.want401 && code != http.StatusUnauthorized:
							t.Errorf("%s %s (%s) with %s: %d, want 401", method, path, r.realm, tc.name, code)
						case tc.wantOther && code == http.StatusUnauthorized:
							t.Errorf("%s %s (%s) with %s: 401, want it served", method, path, r.realm, tc.name)
						}
					}
				}
				for _, realm := range []string{"none", "mesos-agent-readonly", "mesos-agent-readwrite",
					"remote mesos-agent-readonly", "remote mesos-agent-readwrite"} {
					if seen[realm] == 0 {
						t.Errorf("no route of realm %s in the table: the matrix proves nothing for it", realm)
					}
				}
				noSecretsLogged(t, h)
			})
		}
	}
}

// prepare and done bracket a probe of a test-module route that would
// otherwise wait for another request: /testmod/sse/release waits for an
// open /sse stream, /testmod/cancelled for a /block request that was
// cancelled. Both are harmless when the probe is refused with 401.
func (c *client) prepare(path string) {
	c.t.Helper()
	switch path {
	case "/testmod/sse/release":
		c.closeSSE = c.openSSE()
	case "/testmod/cancelled":
		c.probe("GET", "/testmod/block", "none", nil) // cancelled once its headers are in
	}
}

func (c *client) done(string) {
	if c.closeSSE != nil {
		c.closeSSE()
		c.closeSSE = nil
	}
}

// A secret with ':' in it authenticates (the user id ends at the first
// colon); malformed Authorization headers are 401s, never 5xx; the
// principal a module sees is the host's, never one the client sends.
func TestAuthBasicDetails(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"), "--http_credentials=file://"+credentialsFile(t),
		"--authenticate_http_readonly", "--authenticate_http_readwrite")
	c := plainClient(t, h)

	if code, p := c.principal(basicAuth("colon", e2eCreds["colon"])); code != 200 || p != "colon" {
		t.Errorf("secret with ':': %d principal %q, want 200 colon", code, p)
	}
	if code, _ := c.principal(basicAuth("colon", "a")); code != 401 {
		t.Errorf("secret cut at its colon: %d, want 401", code)
	}
	if code, p := c.principal("basic " + base64.StdEncoding.EncodeToString([]byte("ops:"+e2eCreds["ops"]))); code != 200 || p != "ops" {
		t.Errorf(`lower-case "basic": %d principal %q`, code, p)
	}

	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	malformed := []string{
		"Basic", "Basic ", "Basic !!!!", "Basic " + b64("ops"), "Basic " + b64(":"), "Basic " + b64("ops:"),
		"Basic " + b64("ops:"+e2eCreds["ops"]) + " trailing", "Basic " + b64("ops:" + e2eCreds["ops"])[:8],
		"Bearer " + b64("ops:"+e2eCreds["ops"]), "Digest username=\"ops\"", "NTLM TlRMTVNTUAAB",
		"Basic " + strings.Repeat("QUFB", 4000), b64("ops:" + e2eCreds["ops"]),
		"Basic " + b64("ops\x00:"+e2eCreds["ops"]), "Basic " + b64("\xff\xfe:\xff"),
	}
	for _, path := range []struct{ method, path, realm string }{
		{"GET", "/testmod/env", "mesos-agent-readonly"}, {"POST", "/testmod/sha256", "mesos-agent-readwrite"},
		{"GET", "/state", "mesos-agent-readonly"}, {"GET", "/flags", "mesos-agent-readonly"},
	} {
		for _, m := range malformed {
			hdr := http.Header{"Authorization": {m}}
			if code := c.probe(path.method, path.path, path.realm, hdr); code != 401 {
				t.Errorf("%s %s with Authorization %.40q: %d, want 401", path.method, path.path, m, code)
			}
		}
		// Two Authorization headers, even both valid, are refused.
		valid := basicAuth("ops", e2eCreds["ops"])
		if code := c.probe(path.method, path.path, path.realm, http.Header{"Authorization": {valid, valid}}); code != 401 {
			t.Errorf("%s %s with two Authorization headers: %d, want 401", path.method, path.path, code)
		}
	}

	// A forged principal header is dropped: the module sees the host's.
	if code, p := c.principal(basicAuth("ops", e2eCreds["ops"]), "X-Execmod-Principal", "root"); code != 200 || p != "ops" {
		t.Errorf("forged X-Execmod-Principal with valid credentials: %d principal %q, want ops", code, p)
	}
	if code, _ := c.principal("", "X-Execmod-Principal", "root"); code != 401 {
		t.Errorf("forged X-Execmod-Principal without credentials: %d, want 401", code)
	}
	code, body := c.get("/flags", basicAuth("ops", e2eCreds["ops"]))
	if code != 200 || !strings.Contains(body, `"http_credentials":"file://`) {
		t.Errorf("/flags = %d %s", code, body)
	}
	noSecretsLogged(t, h)
	if !strings.Contains(h.Logs.String(), "authentication failed") {
		t.Errorf("refused requests were not logged")
	}
}

// Without authentication, the module still never sees a principal the
// client made up; valid credentials name one, invalid ones are ignored.
func TestAuthPrincipalOnOpenRoutes(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"), "--http_credentials=file://"+credentialsFile(t))
	c := plainClient(t, h)
	for _, tc := range []struct {
		name, authz, want string
	}{
		{"forged only", "", ""},
		{"forged with valid credentials", basicAuth("bob", e2eCreds["bob"]), "bob"},
		{"forged with a wrong password", basicAuth("bob", "nope"), ""},
		{"forged with garbage", "Basic !!", ""},
	} {
		if code, p := c.principal(tc.authz, "X-Execmod-Principal", "root"); code != 200 || p != tc.want {
			t.Errorf("%s: %d principal %q, want 200 %q", tc.name, code, p, tc.want)
		}
	}
	if !strings.Contains(h.Logs.String(), "no realm is authenticated") {
		t.Errorf("credentials without an authenticated realm gave no warning")
	}
	noSecretsLogged(t, h)
}

// A credentials file others can read starts with Mesos's warning; an
// invalid one stops the host with the JSON path and no secret.
func TestAuthCredentialsFileChecks(t *testing.T) {
	open := credentialsFile(t)
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHost(t, nil, "--http_credentials=file://"+open, "--authenticate_http_readwrite")
	if !strings.Contains(h.Logs.String(), "are too open") {
		t.Errorf("no warning about a world-readable credentials file")
	}
	noSecretsLogged(t, h)

	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"credentials":[{"principal":"a","secret":"topsecret"},{"principal":"a","secret":"othersecret"}]}`), 0o600)
	code, out := runHost(t, "--work_dir="+hosttest.ShortTemp(t), "--http_credentials="+bad, "--authenticate_http_readwrite")
	if code == 0 || !strings.Contains(out, `$.credentials[1].principal: duplicate principal "a"`) || strings.Contains(out, "secret\"") || strings.Contains(out, "topsecret") {
		t.Errorf("duplicate principal: exit %d\n%s", code, out)
	}
	code, out = runHost(t, "--port=0", "--work_dir="+hosttest.ShortTemp(t), `--acls={"view_flag":[]}`)
	if code != 1 || !strings.Contains(out, `view_flag`) {
		t.Errorf("a bad --acls: exit %d\n%s", code, out)
	}
}

// The host enforces the ACLs of its own endpoints: view_flags guards
// /flags (and the flags in /state), get_endpoints guards
// /metrics/snapshot and /metrics, which serves the same figures, so a
// rule written for Mesos's path guards both; a denial names the deciding
// rule. Mesos's actions that the host does not enforce are accepted, with
// one warning; a key that is no Mesos action is an error with its path.
func TestACLsOnAgentEndpoints(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "credentials.json")
	if err := os.WriteFile(creds, []byte(`{"credentials":[{"principal":"ops","secret":"o"},{"principal":"bob","secret":"b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	const viewFlags = `"view_flags":[{"principals":{"values":["ops"]},"flags":{"type":"ANY"}},{"principals":{"type":"ANY"},"flags":{"type":"NONE"}}]`
	// ops may read the metrics; nobody else may (principals NONE matches
	// every principal and denies).
	const getEndpoints = `"get_endpoints":[{"principals":{"values":["ops"]},"paths":{"values":["/metrics/snapshot"]}},` +
		`{"principals":{"type":"NONE"},"paths":{"values":["/metrics/snapshot"]}}]`
	for _, tc := range []struct{ acls, want string }{
		{`{` + viewFlags + `,"get_endpoints":[{"principals":{"values":["bob"]},"paths":{"type":"NONE"},"type":"x"}]}`, "get_endpoints[0].type: unknown field"},
		{`{` + viewFlags + `,"run_task":[]}`, "run_task: unknown action"},
		{`{` + viewFlags + `,"run_tasks":{}}`, "run_tasks: want a list of rules"},
	} {
		if code, out := runHost(t, "--port=0", "--work_dir="+hosttest.ShortTemp(t), "--acls="+tc.acls); code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("--acls=%s: exit %d, want 1 saying %q\n%s", tc.acls, code, tc.want, out)
		}
	}
	acls := `{"permissive":true,` + viewFlags + `,` + getEndpoints + `,` +
		`"run_tasks":[{"principals":{"type":"ANY"},"users":{"values":["nobody"]}}],"register_frameworks":[]}`
	h := startHost(t, nil, "--http_credentials=file://"+creds, "--authenticate_http_readonly", "--authenticate_http_readwrite", "--acls="+acls)
	warning := regexp.MustCompile(`(?m)\[WARN\]  modhost: --acls: these Mesos ACL actions are not enforced by modhost; their rules are ignored: actions="register_frameworks,run_tasks"$`)
	if n := len(warning.FindAllString(h.Logs.String(), -1)); n != 1 {
		t.Errorf("%d warnings about the unenforced Mesos actions, want 1:\n%s", n, h.Logs)
	}
	get := func(user, pass, path string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", h.URL+path, nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			m = map[string]any{"text": string(b)}
		}
		return resp.StatusCode, m
	}
	forbidden := func(m map[string]any, rule, msg string) bool {
		e, _ := m["error"].(string)
		return m["rule"] == rule && strings.Contains(e, msg) && strings.Contains(e, rule)
	}
	if code, m := get("ops", "o", "/flags"); code != 200 || m["flags"] == nil {
		t.Errorf("ops GET /flags = %d %v", code, m)
	}
	if code, m := get("bob", "b", "/flags"); code != 403 || !forbidden(m, "view_flags[1]", `principal "bob" may not view the flags`) {
		t.Errorf("bob GET /flags = %d %v, want 403 by view_flags[1]", code, m)
	}
	if code, m := get("bob", "b", "/state"); code != 200 || m["flags"] != nil || m["hostname"] == nil {
		t.Errorf("bob GET /state = %d, flags %v: want the state without its flags", code, m["flags"])
	}
	for _, path := range []string{"/metrics/snapshot", "/metrics"} {
		if code, m := get("bob", "b", path); code != 403 || !forbidden(m, "get_endpoints[1]", `principal "bob" may not GET `+path) {
			t.Errorf("bob GET %s = %d %v, want 403 by get_endpoints[1]", path, code, m)
		}
		if code, m := get("ops", "o", path); code != 200 {
			t.Errorf("ops GET %s = %d %v", path, code, m)
		}
	}
	if _, m := get("ops", "o", "/metrics"); !strings.Contains(fmt.Sprint(m["text"]), "# TYPE slave_uptime_secs gauge") {
		t.Errorf("ops GET /metrics: %v", m)
	}
}

// HTTPS with --ssl_cert_file/--ssl_key_file; with --ssl_ca_file a client
// needs a certificate of that CA, which names its principal.
func TestAuthTLS(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, dir, "test")
	server := ca.Server(dir, "server")
	ops := ca.Client(dir, "ops", "ops")
	stranger := authtest.NewCA(t, dir, "other").Client(dir, "stranger", "ops")

	tlsClient := func(h *hosttest.Host, certs ...tls.Certificate) *client {
		return &client{t: t, base: "https://" + strings.TrimPrefix(h.URL, "http://"), http: &http.Client{
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: certs}, ForceAttemptHTTP2: true},
		}}
	}

	t.Run("server only", func(t *testing.T) {
		h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"),
			"--ssl_cert_file="+server.CertFile, "--ssl_key_file="+server.KeyFile)
		if _, err := h.Logs.Wait(regexp.MustCompile(`listening: addr=127\.0\.0\.1:\d+ .*tls=true`), h.Exited); err != nil {
			t.Error(err)
		}
		c := tlsClient(h)
		if code, body := c.get("/health", ""); code != 200 || body != "" {
			t.Errorf("/health over TLS = %d %q", code, body)
		}
		if code, p := c.principal(""); code != 200 || p != "" {
			t.Errorf("/testmod/env over TLS = %d principal %q", code, p)
		}
		// A module route streams through HTTP/2 over TLS.
		req, _ := http.NewRequestWithContext(t.Context(), "POST", c.base+"/testmod/sha256", strings.NewReader("abc"))
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.HasPrefix(string(b), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3") {
			t.Errorf("POST /testmod/sha256 over %s = %d %q", resp.Proto, resp.StatusCode, b)
		}
		// Plain HTTP to the TLS port is refused.
		resp, err = http.Get(h.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP to the TLS port = %d", resp.StatusCode)
			}
		}
	})

	t.Run("client certificates", func(t *testing.T) {
		h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"),
			"--ssl_cert_file="+server.CertFile, "--ssl_key_file="+server.KeyFile, "--ssl_ca_file="+ca.File,
			"--http_credentials=file://"+credentialsFile(t), "--authenticate_http_readonly", "--authenticate_http_readwrite")
		if !strings.Contains(h.Logs.String(), "client_certificates=true") {
			t.Errorf("the log does not say client certificates are on")
		}
		from := h.Logs.Len()
		for name, c := range map[string]*client{"no certificate": tlsClient(h), "another CA's certificate": tlsClient(h, stranger.TLS)} {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", c.base+"/health", nil)
			if resp, err := c.http.Do(req); err == nil {
				resp.Body.Close()
				t.Errorf("%s: served %d, want the handshake refused", name, resp.StatusCode)
			}
		}
		if _, err := h.Logs.WaitFrom(from, regexp.MustCompile(`TLS handshake error .*certificate`), h.Exited); err != nil {
			t.Error(err)
		}
		c := tlsClient(h, ops.TLS)
		if code, p := c.principal(""); code != 200 || p != "ops" {
			t.Errorf("client certificate CN=ops: %d principal %q, want 200 ops", code, p)
		}
		if code := c.probe("POST", "/testmod/sha256", "mesos-agent-readwrite", nil); code != 200 {
			t.Errorf("readwrite route with a client certificate: %d", code)
		}
		if code, p := c.principal(basicAuth("bob", e2eCreds["bob"])); code != 200 || p != "bob" {
			t.Errorf("basic credentials on top of the certificate: %d principal %q, want 200 bob", code, p)
		}
		if code, _ := c.principal(basicAuth("bob", "wrong")); code != 401 {
			t.Errorf("a wrong password on top of the certificate: %d, want 401", code)
		}
		if code, p := c.principal("", "X-Execmod-Principal", "root"); code != 200 || p != "ops" {
			t.Errorf("forged principal over mTLS: %d principal %q, want ops", code, p)
		}
		noSecretsLogged(t, h)
	})
}

// Listening beyond loopback needs read-write authentication.
func TestAuthNonLoopbackBind(t *testing.T) {
	code, out := runHost(t, "--work_dir="+hosttest.ShortTemp(t), "--ip=0.0.0.0", "--port=0")
	if code == 0 || !strings.Contains(out, "refusing to listen on 0.0.0.0") {
		t.Errorf("--ip=0.0.0.0 without authentication: exit %d\n%s", code, out)
	}
	h := startHost(t, nil, "--ip=0.0.0.0", "--modules="+testmodJSON("org_execmod_Test"),
		"--http_credentials=file://"+credentialsFile(t), "--authenticate_http_readwrite")
	_, port, err := net.SplitHostPort(strings.TrimPrefix(h.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, base: "http://127.0.0.1:" + port, http: &http.Client{}}
	if code := c.probe("POST", "/testmod/sha256", "mesos-agent-readwrite", nil); code != 401 {
		t.Errorf("readwrite route without credentials on 0.0.0.0: %d, want 401", code)
	}
	hdr := http.Header{"Authorization": {basicAuth("ops", e2eCreds["ops"])}}
	if code := c.probe("POST", "/testmod/sha256", "mesos-agent-readwrite", hdr); code != 200 {
		t.Errorf("readwrite route with credentials on 0.0.0.0: %d, want 200", code)
	}
}
