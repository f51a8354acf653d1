package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Client talks to the remote-execution module of one agent. It is safe
// for concurrent use.
type Client struct {
	base       string // scheme://host:port[/prefix], no trailing slash
	hc         *http.Client
	user, pass string
	basic      bool
}

type config struct {
	user, pass, caFile, certFile, keyFile string
	basic, tls                            bool
	hc                                    *http.Client
}

// Option configures New.
type Option func(*config)

// WithBasicAuth sends HTTP basic credentials with every request (the
// host's --http_credentials).
func WithBasicAuth(principal, secret string) Option {
	return func(c *config) { c.user, c.pass, c.basic = principal, secret, true }
}

// WithTLS talks HTTPS. caFile is the PEM bundle of the authorities to
// trust ("" for the system's); certFile and keyFile, both or neither, are
// a client certificate and its key for hosts started with --ssl_ca_file
// (mutual TLS), whose certificate names the principal. With an agent
// given as "host:port", WithTLS makes the scheme https.
func WithTLS(caFile, certFile, keyFile string) Option {
	return func(c *config) { c.caFile, c.certFile, c.keyFile, c.tls = caFile, certFile, keyFile, true }
}

// WithHTTPClient uses hc for every request instead of a client of the
// package's own. Its Timeout should be zero: Wait, Run and a followed
// Output hold requests open for long. With WithTLS too, hc's Transport
// must be nil or an *http.Transport; a clone of it gets the TLS settings.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.hc = hc }
}

// New returns a client of the agent at agent: "host:port" (http, or https
// when WithTLS is given) or a URL such as "https://agent.example:5051".
// The module's routes are under <agent>/remote/.
func New(agent string, opts ...Option) (*Client, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	raw := agent
	if !strings.Contains(agent, "://") {
		scheme := "http://"
		if cfg.tls {
			scheme = "https://"
		}
		raw = scheme + agent
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("client: agent %q: %w", agent, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("client: agent %q: the scheme must be http or https", agent)
	case u.Host == "":
		return nil, fmt.Errorf("client: agent %q: no host (want \"host:port\" or a URL)", agent)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("client: agent %q: want scheme://host:port[/path] (give credentials with WithBasicAuth)", agent)
	case cfg.tls && u.Scheme == "http":
		return nil, fmt.Errorf("client: agent %q: WithTLS with an http:// URL", agent)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""

	hc := cfg.hc
	if cfg.tls || hc == nil {
		var tr *http.Transport
		switch t := http.DefaultTransport; {
		case hc != nil && hc.Transport != nil:
			var ok bool
			if tr, ok = hc.Transport.(*http.Transport); !ok {
				return nil, errors.New("client: WithTLS needs WithHTTPClient's Transport to be nil or an *http.Transport")
			}
			tr = tr.Clone()
		default:
			tr = t.(*http.Transport).Clone()
		}
		if cfg.tls {
			tc, err := tlsConfig(cfg)
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = tc
			tr.ForceAttemptHTTP2 = true
		}
		if hc == nil {
			hc = &http.Client{Transport: tr}
		} else {
			cp := *hc
			cp.Transport = tr
			hc = &cp
		}
	}
	return &Client{base: u.String(), hc: hc, user: cfg.user, pass: cfg.pass, basic: cfg.basic}, nil
}

func tlsConfig(cfg config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.caFile != "" {
		pem, err := os.ReadFile(cfg.caFile)
		if err != nil {
			return nil, fmt.Errorf("client: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: CA file %s holds no PEM certificate", cfg.caFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case cfg.certFile != "" && cfg.keyFile != "":
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			return nil, fmt.Errorf("client: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case cfg.certFile != "" || cfg.keyFile != "":
		return nil, errors.New("client: WithTLS needs both a certificate file and a key file for a client certificate, or neither")
	}
	return tc, nil
}

// Agent returns the agent's base URL, such as "http://127.0.0.1:5051".
func (c *Client) Agent() string { return c.base }

// Errors.
var (
	// ErrUnreachable is the class of requests that got no answer: the
	// agent is down or unreachable, the TLS handshake failed, or the
	// connection broke (also while reading a body).
	ErrUnreachable = errors.New("agent unreachable")

	// The following match an *Error by its status code.
	ErrBadRequest   = errors.New("bad request (400)")
	ErrUnauthorized = errors.New("unauthorized (401)")
	ErrForbidden    = errors.New("forbidden (403)")
	ErrNotFound     = errors.New("not found (404)")
	ErrConflict     = errors.New("conflict (409)")
	ErrBusy         = errors.New("too many tasks (429)")
	ErrUnavailable  = errors.New("unavailable (503)")
)

var sentinels = map[error]int{
	ErrBadRequest: http.StatusBadRequest, ErrUnauthorized: http.StatusUnauthorized, ErrForbidden: http.StatusForbidden,
	ErrNotFound: http.StatusNotFound, ErrConflict: http.StatusConflict, ErrBusy: http.StatusTooManyRequests,
	ErrUnavailable: http.StatusServiceUnavailable,
}

// Error is an answer that is not a 2xx: the status, the server's
// {"error", "rule"} and the Retry-After of a 429 or 503.
type Error struct {
	StatusCode int           // the HTTP status, e.g. 403
	Message    string        // the server's "error", or the body's text when it is not JSON
	Rule       string        // the ACL rule that denied a 403, when the server names it
	RetryAfter time.Duration // from the Retry-After header; 0 when absent
}

// Error returns "403 Forbidden: message (rule: ...)"; the rule is added
// when the message does not already name it.
func (e *Error) Error() string {
	s := strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Rule != "" && !strings.Contains(e.Message, e.Rule) {
		s += " (rule: " + e.Rule + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrForbidden) and its siblings true for an
// *Error of that status.
func (e *Error) Is(target error) bool {
	code, ok := sentinels[target]
	return ok && code == e.StatusCode
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// newError reads an error answer and closes its body.
func newError(resp *http.Response) error {
	defer resp.Body.Close()
	e := &Error{StatusCode: resp.StatusCode}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Error string `json:"error"`
		Rule  string `json:"rule"`
	}
	switch {
	case err == nil && json.Unmarshal(b, &body) == nil && body.Error != "":
		e.Message, e.Rule = body.Error, body.Rule
	case len(bytes.TrimSpace(b)) > 0:
		e.Message = strings.TrimSpace(string(b))
	}
	return e
}

// request is one API call.
type request struct {
	method, path string // path under /remote, e.g. "/tasks"
	query        url.Values
	body         any // JSON-encoded when non-nil
}

// send sends r and returns the response of a 2xx, its body open; any
// other answer is an *Error, a failure to get one wraps ErrUnreachable.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	u := c.base + "/remote" + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("client: encoding the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.basic {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newError(resp)
	}
	return resp, nil
}

// transportError classes err as ErrUnreachable unless ctx ended.
func transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

// call sends r and decodes a JSON answer into out (unless nil). It
// returns the response, its body closed.
func (c *Client) call(ctx context.Context, r request, out any) (*http.Response, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp, nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("client: %s %s answered %d with %q, not JSON", r.method, r.path, resp.StatusCode, mt)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("client: %s %s: decoding the answer: %w", r.method, r.path, err)
	}
	return resp, nil
}
