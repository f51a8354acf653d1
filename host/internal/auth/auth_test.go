package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execmod/execmod/host/internal/auth/authtest"
	"github.com/execmod/execmod/internal/wire"
)

const credsJSON = `{"credentials":[{"principal":"ops","secret":"s3cret"},{"principal":"colon","secret":"a:b:c"},{"principal":"bob","secret":"hunter2"}]}`

func basic(userpass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(userpass))
}

func TestParseBasic(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		user, secret string
		err          error
	}{
		{"ok", basic("ops:s3cret"), "ops", "s3cret", nil},
		{"lowercase scheme", "basic " + base64.StdEncoding.EncodeToString([]byte("ops:s3cret")), "ops", "s3cret", nil},
		{"upper-case scheme", "BASIC " + base64.StdEncoding.EncodeToString([]byte("ops:s3cret")), "ops", "s3cret", nil},
		{"several spaces", "Basic   " + base64.StdEncoding.EncodeToString([]byte("ops:x")), "ops", "x", nil},
		{"colon in secret splits at the first", basic("ops:a:b:c"), "ops", "a:b:c", nil},
		{"empty secret", basic("ops:"), "ops", "", nil},
		{"empty user", basic(":x"), "", "x", nil},
		{"empty header", "", "", "", ErrNoCredentials},
		{"bearer", "Bearer abc", "", "", ErrNotBasic},
		{"scheme only", "Basic", "", "", ErrMalformed},
		{"scheme and space", "Basic ", "", "", ErrMalformed},
		{"scheme glued", "Basicb3BzOnMzY3JldA==", "", "", ErrNotBasic},
		{"bad base64", "Basic !!!!", "", "", ErrMalformed},
		{"unpadded base64", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("ops:s3cret")), "", "", ErrMalformed},
		{"url base64", "Basic " + base64.URLEncoding.EncodeToString([]byte("o?>:s3cret")), "", "", ErrMalformed},
		{"no colon", basic("opss3cret"), "", "", ErrMalformed},
		{"two tokens", basic("ops:s3cret") + " extra", "", "", ErrMalformed},
		{"tab inside", "Basic\t" + base64.StdEncoding.EncodeToString([]byte("ops:x")), "", "", ErrNotBasic},
		{"huge", "Basic " + strings.Repeat("A", maxBasicLen+4), "", "", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, s, err := ParseBasic(tc.header)
			if !errors.Is(err, tc.err) || u != tc.user || s != tc.secret {
				t.Errorf("ParseBasic(%q) = %q, %q, %v; want %q, %q, %v", tc.header, u, s, err, tc.user, tc.secret, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	c, err := ParseCredentials([]byte(credsJSON))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, secret, want string
	}{
		{"ops", "s3cret", "ops"},
		{"bob", "hunter2", "bob"},
		{"colon", "a:b:c", "colon"},
		{"colon", "a", ""},
		{"ops", "hunter2", ""}, // another principal's secret
		{"ops", "s3cret ", ""},
		{"ops", "", ""},
		{"Ops", "s3cret", ""},
		{"nobody", "s3cret", ""},
		{"", "", ""},
	} {
		got, ok := c.Verify(tc.user, tc.secret)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("Verify(%q, %q) = %q, %v; want %q", tc.user, tc.secret, got, ok, tc.want)
		}
	}
	if _, ok := (Credentials{}).Verify("", ""); ok {
		t.Error("empty credentials verified something")
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask
			t.Fatal(err)
		}
		return p
	}
	private := write("private.json", credsJSON, 0o600)
	open := write("open.json", credsJSON, 0o644)
	empty := write("empty.json", "", 0o600)

	for _, tc := range []struct {
		name, value string
		principals  []string
		warn        string   // a warning containing this
		err         []string // an error containing all of these
	}{
		{name: "file://", value: "file://" + private, principals: []string{"ops", "colon", "bob"}},
		{name: "absolute path", value: private, principals: []string{"ops", "colon", "bob"}},
		{name: "inline", value: credsJSON, principals: []string{"ops", "colon", "bob"}},
		{name: "inline with space", value: "  " + credsJSON + "\n", principals: []string{"ops", "colon", "bob"}},
		{name: "readable by others", value: "file://" + open, principals: []string{"ops", "colon", "bob"}, warn: "too open (0644)"},
		{name: "missing file", value: "file://" + filepath.Join(dir, "nope.json"), err: []string{"nope.json", "no such file"}},
		{name: "directory", value: dir, err: []string{"not a regular file"}},
		{name: "empty file", value: empty, err: []string{"at least one credential"}},
		{name: "relative path", value: "creds.json", err: []string{"want file://PATH"}},
		{name: "empty value", value: " ", err: []string{"empty"}},
		{name: "empty list", value: `{"credentials":[]}`, err: []string{"$.credentials", "at least one credential"}},
		{name: "no credentials key", value: `{}`, err: []string{"at least one credential"}},
		{name: "unknown top key", value: `{"credentials":[{"principal":"a","secret":"b"}],"extra":1}`, err: []string{`$: unknown key "extra"`}},
		{name: "unknown entry key", value: `{"credentials":[{"principal":"a","secret":"b"},{"principal":"c","secret":"d","role":"x"}]}`, err: []string{`$.credentials[1]: unknown key "role"`}},
		{name: "empty principal", value: `{"credentials":[{"principal":"","secret":"b"}]}`, err: []string{"$.credentials[0].principal", "empty"}},
		{name: "missing principal", value: `{"credentials":[{"secret":"b"}]}`, err: []string{"$.credentials[0].principal", "missing"}},
		{name: "missing secret", value: `{"credentials":[{"principal":"a"}]}`, err: []string{"$.credentials[0].secret", "missing"}},
		{name: "duplicate principal", value: `{"credentials":[{"principal":"a","secret":"b"},{"principal":"x","secret":"y"},{"principal":"a","secret":"c"}]}`,
			err: []string{"$.credentials[2].principal", `duplicate principal "a"`, "$.credentials[0]"}},
		{name: "duplicate key", value: `{"credentials":[{"principal":"a","secret":"b","secret":"c"}]}`, err: []string{"$.credentials[0]", `"secret" given twice`}},
		{name: "colon in principal", value: `{"credentials":[{"principal":"a:b","secret":"c"}]}`, err: []string{"$.credentials[0].principal", "':'"}},
		{name: "control character in principal", value: `{"credentials":[{"principal":"a\nb","secret":"c"}]}`, err: []string{"control character"}},
		{name: "principal not a string", value: `{"credentials":[{"principal":7,"secret":"c"}]}`, err: []string{"$.credentials[0].principal: want a string"}},
		{name: "secret not a string", value: `{"credentials":[{"principal":"a","secret":["topsecret"]}]}`, err: []string{"$.credentials[0].secret: want a string"}},
		{name: "credentials not an array", value: `{"credentials":{"principal":"a"}}`, err: []string{"$.credentials: want a JSON array"}},
		{name: "entry not an object", value: `{"credentials":["a"]}`, err: []string{"$.credentials[0]: want a JSON object"}},
		{name: "trailing data", value: `{"credentials":[{"principal":"a","secret":"b"}]} {}`, err: []string{"after the object"}},
		{name: "syntax error", value: `{"credentials":[{"principal":"a","secret":topsecret}]}`, err: []string{"invalid JSON"}},
		{name: "truncated", value: `{"credentials":[{"principal":"a","secret":"topsecret"`, err: []string{"JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, warnings, err := LoadCredentials(tc.value)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("LoadCredentials: %v", err)
				}
				if got := strings.Join(c.Principals(), ","); got != strings.Join(tc.principals, ",") || c.Len() != len(tc.principals) {
					t.Errorf("principals = %s, want %v", got, tc.principals)
				}
			} else {
				for _, w := range tc.err {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error = %v, want it to contain %q", err, w)
					}
				}
			}
			if err != nil && (strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "s3cret")) {
				t.Errorf("error quotes a secret: %v", err)
			}
			joined := strings.Join(warnings, "\n")
			if (tc.warn == "") != (joined == "") || !strings.Contains(joined, tc.warn) {
				t.Errorf("warnings = %q, want one containing %q", warnings, tc.warn)
			}
			if strings.Contains(joined, "s3cret") {
				t.Errorf("warning quotes a secret: %q", warnings)
			}
		})
	}
}

// handler answers with the principal the request carries and the
// Authorization header it still has.
var handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_ = json.NewEncoder(w).Encode(map[string]string{"principal": Principal(r), "authorization": r.Header.Get("Authorization")})
})

func TestWrap(t *testing.T) {
	creds, err := ParseCredentials([]byte(credsJSON))
	if err != nil {
		t.Fatal(err)
	}
	var failures []string
	onFailure := func(r *http.Request, realm wire.Realm, reason string) {
		failures = append(failures, realm.String()+": "+reason)
	}
	valid, wrong := basic("ops:s3cret"), basic("ops:nope")
	for _, tc := range []struct {
		name           string
		cfg            Config
		realm          wire.Realm
		headers        []string // Authorization headers
		code           int
		principal      string
		keepsAuthorize bool // the handler still sees the Authorization header
	}{
		{name: "none realm, no credentials", cfg: Config{Readonly: true, Readwrite: true, Credentials: creds}, realm: wire.RealmNone, code: 200},
		{name: "none realm, valid", cfg: Config{Readonly: true, Readwrite: true, Credentials: creds}, realm: wire.RealmNone, headers: []string{valid}, code: 200, principal: "ops"},
		{name: "none realm, wrong ignored", cfg: Config{Readonly: true, Readwrite: true, Credentials: creds}, realm: wire.RealmNone, headers: []string{wrong}, code: 200},
		{name: "readonly on, missing", cfg: Config{Readonly: true, Credentials: creds}, realm: wire.RealmReadOnly, code: 401},
		{name: "readonly on, valid", cfg: Config{Readonly: true, Credentials: creds}, realm: wire.RealmReadOnly, headers: []string{valid}, code: 200, principal: "ops"},
		{name: "readonly on, wrong secret", cfg: Config{Readonly: true, Credentials: creds}, realm: wire.RealmReadOnly, headers: []string{wrong}, code: 401},
		{name: "readonly on, unknown principal", cfg: Config{Readonly: true, Credentials: creds}, realm: wire.RealmReadOnly, headers: []string{basic("eve:s3cret")}, code: 401},
		{name: "readonly on, readwrite route open", cfg: Config{Readonly: true, Credentials: creds}, realm: wire.RealmReadWrite, code: 200},
		{name: "readwrite on, missing", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadWrite, code: 401},
		{name: "readwrite on, readonly route open", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadOnly, code: 200},
		{name: "readwrite on, colon in secret", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{basic("colon:a:b:c")}, code: 200, principal: "colon"},
		{name: "readwrite on, lowercase scheme", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadWrite,
			headers: []string{"basic " + base64.StdEncoding.EncodeToString([]byte("bob:hunter2"))}, code: 200, principal: "bob"},
		{name: "readwrite on, bearer", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{"Bearer x"}, code: 401},
		{name: "readwrite on, bad base64", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{"Basic %%%"}, code: 401},
		{name: "readwrite on, no colon", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{basic("ops")}, code: 401},
		{name: "readwrite on, empty header", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{""}, code: 401},
		{name: "readwrite on, two headers", cfg: Config{Readwrite: true, Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{valid, valid}, code: 401},
		{name: "off, valid recorded", cfg: Config{Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{valid}, code: 200, principal: "ops"},
		{name: "off, wrong ignored", cfg: Config{Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{wrong}, code: 200},
		{name: "off, bearer forwarded", cfg: Config{Credentials: creds}, realm: wire.RealmReadWrite, headers: []string{"Bearer x"}, code: 200, keepsAuthorize: true},
		{name: "no credentials: header not ours", cfg: Config{}, realm: wire.RealmReadWrite, headers: []string{valid}, code: 200, keepsAuthorize: true},
		{name: "unknown realm is closed", cfg: Config{Credentials: creds}, realm: wire.Realm(7), code: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failures = nil
			tc.cfg.OnFailure = onFailure
			h := New(tc.cfg).Wrap(tc.realm, handler)
			req := httptest.NewRequest("GET", "/x", nil)
			for _, v := range tc.headers {
				req.Header.Add("Authorization", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code == 401 {
				want := `Basic realm="` + tc.realm.String() + `"`
				if got := rec.Header().Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
				var body map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] == "" || rec.Header().Get("Content-Type") != "application/json" {
					t.Errorf("401 body = %q (%v), want a JSON error", rec.Body, err)
				}
				if strings.Contains(rec.Body.String(), "s3cret") || strings.Contains(rec.Body.String(), "nope") {
					t.Errorf("401 body quotes a secret: %s", rec.Body)
				}
				if len(failures) != 1 {
					t.Errorf("OnFailure called %d times, want once", len(failures))
				}
				return
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body["principal"] != tc.principal {
				t.Errorf("principal = %q, want %q", body["principal"], tc.principal)
			}
			if kept := body["authorization"] != ""; kept != tc.keepsAuthorize {
				t.Errorf("handler sees Authorization %q, want it kept: %v", body["authorization"], tc.keepsAuthorize)
			}
			if len(req.Header.Values("Authorization")) != len(tc.headers) {
				t.Errorf("the caller's request headers were changed")
			}
		})
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, dir, "test")
	srvCert := ca.Server(dir, "server")
	ops := ca.Client(dir, "ops", "ops")
	uri := ca.Client(dir, "uri", "", "spiffe://example.org/ops")
	other := authtest.NewCA(t, dir, "other").Client(dir, "stranger", "ops")

	creds, err := ParseCredentials([]byte(credsJSON))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ServerTLS(srvCert.CertFile, srvCert.KeyFile, ca.File)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("tls.Config MinVersion %x ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	a := New(Config{Readonly: true, Readwrite: true, Credentials: creds, ClientCertificates: true})
	srv := httptest.NewUnstartedServer(a.Wrap(wire.RealmReadWrite, handler))
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)

	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: certs}}}
	}
	get := func(c *http.Client, authz string) (int, map[string]string, error) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m, nil
	}

	if _, _, err := get(client(), ""); err == nil {
		t.Error("a client without a certificate was served")
	}
	if _, _, err := get(client(other.TLS), ""); err == nil {
		t.Error("a client with a certificate of another CA was served")
	}
	for _, tc := range []struct {
		name      string
		cert      tls.Certificate
		authz     string
		code      int
		principal string
	}{
		{"common name", ops.TLS, "", 200, "ops"},
		{"URI SAN", uri.TLS, "", 200, "spiffe://example.org/ops"},
		{"basic on top", ops.TLS, basic("bob:hunter2"), 200, "bob"},
		{"wrong basic on top", ops.TLS, basic("bob:nope"), 401, ""},
	} {
		code, body, err := get(client(tc.cert), tc.authz)
		if err != nil || code != tc.code || body["principal"] != tc.principal {
			t.Errorf("%s: %d %v %v, want %d principal %q", tc.name, code, body, err, tc.code, tc.principal)
		}
	}
}

func TestServerTLSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, dir, "test")
	srv := ca.Server(dir, "server")
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	for _, tc := range []struct {
		cert, key, ca, want string
	}{
		{srv.CertFile, "", "", "go together"},
		{filepath.Join(dir, "missing.pem"), srv.KeyFile, "", "missing.pem"},
		{srv.CertFile, ca.File, "", "--ssl_cert_file/--ssl_key_file"},
		{srv.CertFile, srv.KeyFile, junk, "holds no PEM certificate"},
		{srv.CertFile, srv.KeyFile, filepath.Join(dir, "noca.pem"), "--ssl_ca_file"},
	} {
		if _, err := ServerTLS(tc.cert, tc.key, tc.ca); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ServerTLS(%s, %s, %s) = %v, want %q", tc.cert, tc.key, tc.ca, err, tc.want)
		}
	}
	cfg, err := ServerTLS(srv.CertFile, srv.KeyFile, "")
	if err != nil || cfg.ClientAuth != tls.NoClientCert || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("ServerTLS without CA = %+v, %v", cfg, err)
	}
}

func TestCertificatePrincipal(t *testing.T) {
	if p := CertificatePrincipal(&x509.Certificate{}); p != "" {
		t.Errorf("empty certificate names %q", p)
	}
}

func FuzzParseCredentials(f *testing.F) {
	for _, s := range []string{credsJSON, `{}`, `{"credentials":[]}`, `{"credentials":[{"principal":"a","secret":"b","secret":"c"}]}`,
		`{"credentials":[{"principal":"a:b","secret":"c"}]}`, `[`, `{"credentials":[{"principal":"a","secret":"b"}]}x`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCredentials(data)
		if err != nil {
			if c.Len() != 0 {
				t.Errorf("error %v with %d credentials", err, c.Len())
			}
			return
		}
		if c.Len() == 0 {
			t.Fatal("no error and no credentials")
		}
		seen := map[string]bool{}
		for _, p := range c.Principals() {
			if checkBasicPrincipal(p) != nil || seen[p] {
				t.Errorf("accepted principal %q", p)
			}
			seen[p] = true
		}
	})
}

func FuzzBasicHeader(f *testing.F) {
	for _, s := range []string{basic("ops:s3cret"), basic("ops:a:b"), "basic", "Basic ", "Basic !!", "Bearer x", "", basic("nocolon")} {
		f.Add(s)
	}
	creds, err := ParseCredentials([]byte(credsJSON))
	if err != nil {
		f.Fatal(err)
	}
	a := New(Config{Readonly: true, Readwrite: true, Credentials: creds})
	h := a.Wrap(wire.RealmReadWrite, handler)
	f.Fuzz(func(t *testing.T, header string) {
		user, secret, err := ParseBasic(header)
		if err == nil {
			// An accepted header round-trips through the canonical form.
			u2, s2, err2 := ParseBasic(basic(user + ":" + secret))
			if err2 != nil || u2 != user || s2 != secret || strings.Contains(user, ":") {
				t.Errorf("ParseBasic(%q) = %q, %q; the canonical form gives %q, %q, %v", header, user, secret, u2, s2, err2)
			}
		} else if user != "" || secret != "" {
			t.Errorf("error %v with user %q", err, user)
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.Header["Authorization"] = []string{header}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		_, ok := creds.Verify(user, secret)
		switch {
		case err == nil && ok:
			if rec.Code != 200 {
				t.Errorf("valid credentials answered %d", rec.Code)
			}
		case rec.Code != 401:
			t.Errorf("Authorization %q answered %d, want 401", header, rec.Code)
		}
	})
}
