package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// exchange is one HTTP request the soak sent and what came back.
type exchange struct {
	Method, Route string // route with task ids replaced by {id}
	Start, End    time.Time
	Status        int    // 0: no valid HTTP response
	Err           string // transport error, a cut body, or a body that is not what its Content-Type says
	Body          string // the start of a 5xx body, for the report
}

// recorder records every exchange, so that the HTTP invariant sees all of
// them, including those the soak retried.
type recorder struct {
	mu  sync.Mutex
	all []exchange
}

func (r *recorder) add(e exchange) {
	r.mu.Lock()
	r.all = append(r.all, e)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.all...)
}

// route names a path for the report: /remote/tasks/01J.../stdout is
// /remote/tasks/{id}/stdout.
func route(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if len(p) == 26 && i > 0 && parts[i-1] == "tasks" {
			parts[i] = "{id}"
		}
	}
	return strings.Join(parts, "/")
}

// api talks plain HTTP to the host; every call is recorded.
type api struct {
	mu   sync.Mutex
	base string // http://127.0.0.1:port
	hc   *http.Client
	tr   *http.Transport
	rec  *recorder
}

func newAPI(base string, rec *recorder, conns int) *api {
	tr := &http.Transport{MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2, IdleConnTimeout: 30 * time.Second}
	return &api{base: base, hc: &http.Client{Transport: tr}, tr: tr, rec: rec}
}

func (a *api) setBase(base string) {
	a.mu.Lock()
	a.base = base
	a.mu.Unlock()
	a.tr.CloseIdleConnections()
}

// reply is an answer read whole.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request (body JSON-encoded unless nil or []byte) and reads the
// whole answer. An error means there was no complete, valid HTTP answer.
// A request that the soak itself abandons (parent is done: the run is
// ending) is not recorded: it says nothing about the system.
func (a *api) do(parent context.Context, timeout time.Duration, method, path string, body any) (reply, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(j)
	}
	a.mu.Lock()
	base := a.base
	a.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	p, _, _ := strings.Cut(path, "?")
	ex := exchange{Method: method, Route: route(p), Start: time.Now()}
	resp, err := a.hc.Do(req)
	if err != nil {
		ex.End, ex.Err = time.Now(), err.Error()
		if parent.Err() == nil {
			a.rec.add(ex)
		}
		return reply{}, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	ex.End, ex.Status = time.Now(), resp.StatusCode
	if err != nil && parent.Err() != nil {
		return reply{}, err
	}
	if err != nil {
		ex.Err = "body: " + err.Error()
	} else if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" && resp.StatusCode != http.StatusNoContent && !json.Valid(b) {
		ex.Err = fmt.Sprintf("a %d with Content-Type application/json whose body is not JSON: %.200q", resp.StatusCode, b)
	}
	if resp.StatusCode >= 500 {
		ex.Body = string(b[:min(len(b), 300)])
	}
	a.rec.add(ex)
	if ex.Err != "" {
		return reply{}, fmt.Errorf("%s %s: %s", method, path, ex.Err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}
