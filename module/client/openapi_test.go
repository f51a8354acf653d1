package client_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/client"
)

// specFile is the canonical OpenAPI document, embedded by the module and
// served at GET /remote/openapi.json.
var specFile = filepath.Join("..", "internal", "remote", "openapi.json")

// spec is the OpenAPI document, decoded for checking answers against it.
type spec struct {
	raw   []byte
	paths map[string]map[string]any // path -> method (lower case) -> operation
	comps map[string]any            // components
}

var (
	specOnce sync.Once
	specDoc  *spec
	specErr  error
)

// loadSpec reads and checks the document once: valid JSON, every $ref
// resolves, and every schema uses only what schemaCheck understands.
func loadSpec(t testing.TB) *spec {
	t.Helper()
	specOnce.Do(func() {
		b, err := os.ReadFile(specFile)
		if err != nil {
			specErr = err
			return
		}
		specDoc, specErr = parseSpec(b)
	})
	if specErr != nil {
		t.Fatalf("%s: %v", specFile, specErr)
	}
	return specDoc
}

func parseSpec(b []byte) (*spec, error) {
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, err
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		return nil, fmt.Errorf("openapi is %q, want 3.0.x", v)
	}
	s := &spec{raw: b, paths: map[string]map[string]any{}}
	s.comps, _ = doc["components"].(map[string]any)
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		return nil, errors.New("no paths")
	}
	for p, item := range paths {
		ops := map[string]any{}
		for k, v := range item.(map[string]any) {
			if k != "parameters" {
				ops[k] = v
			}
		}
		s.paths[p] = ops
	}
	var errs []error
	walk(doc, "#", func(where string, m map[string]any) {
		if r, ok := m["$ref"].(string); ok {
			if _, err := s.resolve(r); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	})
	// Every schema, wherever it is, must be one the checker understands.
	walk(doc, "#", func(where string, m map[string]any) {
		if sch, ok := m["schema"].(map[string]any); ok && !strings.Contains(where, "/schemas/") {
			errs = append(errs, s.lintSchema(where+"/schema", sch)...)
		}
	})
	schemas, _ := s.comps["schemas"].(map[string]any)
	for name, sch := range schemas {
		errs = append(errs, s.lintSchema("#/components/schemas/"+name, sch.(map[string]any))...)
	}
	return s, errors.Join(errs...)
}

func walk(v any, where string, f func(string, map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(where, v)
		for k, e := range v {
			walk(e, where+"/"+k, f)
		}
	case []any:
		for i, e := range v {
			walk(e, where+"/"+strconv.Itoa(i), f)
		}
	}
}

// resolve follows a local $ref.
func (s *spec) resolve(ref string) (map[string]any, error) {
	rest, ok := strings.CutPrefix(ref, "#/components/")
	if !ok {
		return nil, fmt.Errorf("$ref %q is not under #/components/", ref)
	}
	var cur any = s.comps
	for _, k := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		if cur, ok = m[k]; !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q is not an object", ref)
	}
	return m, nil
}

// The keywords schemaCheck validates, and those it may ignore.
var (
	checked     = []string{"$ref", "type", "required", "properties", "additionalProperties", "items", "enum", "nullable", "oneOf", "minItems", "maxItems", "minLength", "maxLength", "maxProperties", "minimum", "maximum", "pattern", "format"}
	annotations = []string{"description", "default", "example", "title"}
	formats     = []string{"date-time", "byte", "binary"}
)

// lintSchema reports keywords the checker does not know, so that the
// document cannot say more than the test checks.
func (s *spec) lintSchema(where string, sch map[string]any) []error {
	var errs []error
	for k, v := range sch {
		switch {
		case slices.Contains(annotations, k):
		case !slices.Contains(checked, k):
			errs = append(errs, fmt.Errorf("%s: keyword %q is not supported by the test's schema checker", where, k))
		case k == "format" && !slices.Contains(formats, v.(string)):
			errs = append(errs, fmt.Errorf("%s: format %q is not supported by the test's schema checker", where, v))
		case k == "$ref" && len(sch) > 1:
			errs = append(errs, fmt.Errorf("%s: $ref has siblings, which OpenAPI 3.0 ignores", where))
		case k == "properties":
			for p, sub := range v.(map[string]any) {
				errs = append(errs, s.lintSchema(where+"/properties/"+p, sub.(map[string]any))...)
			}
		case k == "items" || (k == "additionalProperties" && v != false && v != true):
			errs = append(errs, s.lintSchema(where+"/"+k, v.(map[string]any))...)
		case k == "oneOf":
			for i, sub := range v.([]any) {
				errs = append(errs, s.lintSchema(where+"/oneOf/"+strconv.Itoa(i), sub.(map[string]any))...)
			}
		case k == "pattern":
			if _, err := regexp.Compile(v.(string)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return errs
}

// schemaCheck validates a decoded JSON value (numbers as json.Number)
// against sch.
func (s *spec) schemaCheck(sch map[string]any, v any, where string) []error {
	if r, ok := sch["$ref"].(string); ok {
		target, err := s.resolve(r)
		if err != nil {
			return []error{err}
		}
		return s.schemaCheck(target, v, where)
	}
	bad := func(format string, args ...any) []error {
		return []error{fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))}
	}
	if v == nil {
		if sch["nullable"] == true {
			return nil
		}
		return bad("null, and the schema is not nullable")
	}
	if alts, ok := sch["oneOf"].([]any); ok {
		n := 0
		var all []error
		for _, alt := range alts {
			errs := s.schemaCheck(alt.(map[string]any), v, where)
			if len(errs) == 0 {
				n++
			}
			all = append(all, errs...)
		}
		if n != 1 {
			return append(bad("matches %d of the oneOf alternatives, want exactly 1", n), all...)
		}
	}
	if enum, ok := sch["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		return bad("%v is not one of %v", v, enum)
	}
	typ, _ := sch["type"].(string)
	num := func(k string) (float64, bool) {
		n, ok := sch[k].(json.Number)
		if !ok {
			return 0, false
		}
		f, _ := n.Float64()
		return f, true
	}
	switch typ {
	case "":
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return bad("%T, want an object", v)
		}
		var errs []error
		required, _ := sch["required"].([]any)
		for _, r := range required {
			if _, ok := m[r.(string)]; !ok {
				errs = append(errs, bad("required field %q is missing", r)...)
			}
		}
		props, _ := sch["properties"].(map[string]any)
		if n, ok := num("maxProperties"); ok && float64(len(m)) > n {
			errs = append(errs, bad("%d properties, at most %v", len(m), n)...)
		}
		for k, e := range m {
			if p, ok := props[k]; ok {
				errs = append(errs, s.schemaCheck(p.(map[string]any), e, where+"."+k)...)
				continue
			}
			switch ap := sch["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, bad("field %q is not in the schema (additionalProperties: false)", k)...)
				}
			case map[string]any:
				errs = append(errs, s.schemaCheck(ap, e, where+"."+k)...)
			}
		}
		return errs
	case "array":
		a, ok := v.([]any)
		if !ok {
			return bad("%T, want an array", v)
		}
		var errs []error
		if n, ok := num("minItems"); ok && float64(len(a)) < n {
			errs = append(errs, bad("%d items, at least %v", len(a), n)...)
		}
		if n, ok := num("maxItems"); ok && float64(len(a)) > n {
			errs = append(errs, bad("%d items, at most %v", len(a), n)...)
		}
		if items, ok := sch["items"].(map[string]any); ok {
			for i, e := range a {
				errs = append(errs, s.schemaCheck(items, e, fmt.Sprintf("%s[%d]", where, i))...)
			}
		}
		return errs
	case "string":
		str, ok := v.(string)
		if !ok {
			return bad("%T, want a string", v)
		}
		if n, ok := num("minLength"); ok && float64(utf8.RuneCountInString(str)) < n {
			return bad("%q is shorter than %v", str, n)
		}
		if n, ok := num("maxLength"); ok && float64(utf8.RuneCountInString(str)) > n {
			return bad("%q is longer than %v", str, n)
		}
		if p, ok := sch["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			return bad("%q does not match %s", str, p)
		}
		switch sch["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				return bad("%q is not a date-time: %v", str, err)
			}
		case "byte":
			if _, err := base64.StdEncoding.DecodeString(str); err != nil {
				return bad("%q is not base64: %v", str, err)
			}
		}
		return nil
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			return bad("%T, want a %s", v, typ)
		}
		f, err := n.Float64()
		if err != nil {
			return bad("%s is not a number", n)
		}
		if _, err := n.Int64(); typ == "integer" && err != nil {
			return bad("%s is not an integer", n)
		}
		if m, ok := num("minimum"); ok && f < m {
			return bad("%v is below the minimum %v", f, m)
		}
		if m, ok := num("maximum"); ok && f > m {
			return bad("%v is above the maximum %v", f, m)
		}
		return nil
	case "boolean":
		if _, ok := v.(bool); !ok {
			return bad("%T, want a boolean", v)
		}
		return nil
	default:
		return bad("the checker does not know type %q", typ)
	}
	return nil
}

// operation finds the documented operation of a request path (under the
// document's paths, /remote/...), literal segments first.
func (s *spec) operation(method, path string) (string, map[string]any, error) {
	segs := strings.Split(path, "/")
	best, bestLiterals := "", -1
	for p := range s.paths {
		ps := strings.Split(p, "/")
		if len(ps) != len(segs) {
			continue
		}
		literals, ok := 0, true
		for i := range ps {
			switch {
			case strings.HasPrefix(ps[i], "{") && strings.HasSuffix(ps[i], "}") && segs[i] != "":
			case ps[i] == segs[i]:
				literals++
			default:
				ok = false
			}
		}
		if ok && literals > bestLiterals {
			best, bestLiterals = p, literals
		}
	}
	if best == "" {
		return "", nil, fmt.Errorf("%s is not a documented path", path)
	}
	op, ok := s.paths[best][strings.ToLower(method)].(map[string]any)
	if !ok {
		return best, nil, fmt.Errorf("%s %s is not documented", method, best)
	}
	return best, op, nil
}

// response is the documented response of an operation for status.
func (s *spec) response(op map[string]any, status int) (map[string]any, error) {
	resps := op["responses"].(map[string]any)
	r, ok := resps[strconv.Itoa(status)].(map[string]any)
	if !ok {
		if r, ok = resps["default"].(map[string]any); !ok {
			return nil, fmt.Errorf("status %d is not documented", status)
		}
	}
	if ref, ok := r["$ref"].(string); ok {
		return s.resolve(ref)
	}
	return r, nil
}

// checkExchange checks an answer against the document: its path, method
// and status are documented, its content type is the documented one, and
// a JSON body matches the schema.
func (s *spec) checkExchange(e exchange) error {
	path, op, err := s.operation(e.method, e.path)
	if err != nil {
		return err
	}
	r, err := s.response(op, e.status)
	if err != nil {
		return fmt.Errorf("%s %s: %w", e.method, path, err)
	}
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		if len(e.body) > 0 || e.contentType != "" && e.status != http.StatusNoContent {
			return fmt.Errorf("%s %s %d: documented without a body, got %s", e.method, path, e.status, e.contentType)
		}
		return nil
	}
	media, ok := content[e.contentType].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s %d: content type %q is not documented", e.method, path, e.status, e.contentType)
	}
	if e.contentType != "application/json" {
		return nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(e.body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return fmt.Errorf("%s %s %d: not JSON: %v", e.method, path, e.status, err)
	}
	if errs := s.schemaCheck(media["schema"].(map[string]any), v, "body"); len(errs) > 0 {
		return fmt.Errorf("%s %s %d does not match the document: %w", e.method, path, e.status, errors.Join(errs...))
	}
	return nil
}

// The checker itself: each rule catches what it should.
func TestSchemaChecker(t *testing.T) {
	s := loadSpec(t)
	task := map[string]any{"$ref": "#/components/schemas/Task"}
	good := `{"id":"01h2x3y4z5a6b7c8d9e0f1g2h3","state":"exited","command":"/bin/echo","arguments":["echo"],"shell":false,` +
		`"timeoutMs":30000,"graceMs":10000,"createdAt":"2026-01-02T03:04:05.123Z","result":{"exitCode":0,"signaled":false,` +
		`"timedOut":false,"killed":false,"killEscalated":false,"durationMs":1,"userMs":0,"sysMs":0,"maxRssKiB":1000}}`
	decode := func(s string) any {
		var v any
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if errs := s.schemaCheck(task, decode(good), "task"); len(errs) > 0 {
		t.Fatalf("a good task fails: %v", errs)
	}
	for name, c := range map[string]struct{ from, to, want string }{
		"added field":       {`"shell":false`, `"shell":false,"extra":1`, `field "extra" is not in the schema`},
		"renamed field":     {`"graceMs"`, `"grace_ms"`, `required field "graceMs" is missing`},
		"wrong type":        {`"shell":false`, `"shell":"no"`, `want a boolean`},
		"not an integer":    {`"timeoutMs":30000`, `"timeoutMs":1.5`, `not an integer`},
		"enum":              {`"state":"exited"`, `"state":"done"`, `is not one of`},
		"pattern":           {`"id":"01h2x3y4z5a6b7c8d9e0f1g2h3"`, `"id":"nope"`, `does not match`},
		"null":              {`"command":"/bin/echo"`, `"command":null`, `not nullable`},
		"items":             {`["echo"]`, `[1]`, `want a string`},
		"nested":            {`"durationMs":1`, `"durationMs":"1"`, `body.result.durationMs`},
		"date-time":         {`2026-01-02T03:04:05.123Z`, `yesterday`, `not a date-time`},
		"nested additional": {`"maxRssKiB":1000`, `"maxRssKiB":1000,"gpu":true`, `field "gpu"`},
	} {
		bad := strings.Replace(good, c.from, c.to, 1)
		errs := s.schemaCheck(task, decode(bad), "body")
		if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, errs, c.want)
		}
	}
	seed := s.paths["/remote/task"]["post"].(map[string]any)
	r, err := s.response(seed, 200)
	if err != nil {
		t.Fatal(err)
	}
	sch := r["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	if errs := s.schemaCheck(sch, decode(`{"result":"pending","pid":1,"id":"01h2x3y4z5a6b7c8d9e0f1g2h3","state":"running"}`), "body"); len(errs) > 0 {
		t.Errorf("oneOf: pending fails: %v", errs)
	}
	if errs := s.schemaCheck(sch, decode(`{"result":"pending","pid":1}`), "body"); len(errs) == 0 {
		t.Errorf("oneOf: an incomplete answer passes")
	}
	if _, err := parseSpec([]byte(`{"openapi":"3.0.3","paths":{"/x":{"get":{"responses":{"200":{"description":"","content":{"application/json":{"schema":{"type":"object","anyOf":[]}}}}}}}}}`)); err == nil ||
		!strings.Contains(err.Error(), `"anyOf" is not supported`) {
		t.Errorf("an unsupported keyword is not reported: %v", err)
	}
}

// The module serves the canonical document at GET /remote/openapi.json,
// in the Public realm: without credentials on a host that wants them.
func TestOpenAPIServed(t *testing.T) {
	s := loadSpec(t)
	h := startHost(t, nil, "--http_credentials=file://"+credentialsFile(t), "--authenticate_http_readonly", "--authenticate_http_readwrite")
	resp, err := http.Get(h.URL + "/remote/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(b, s.raw) {
		t.Errorf("GET /remote/openapi.json = %d %s, %d bytes; want 200 and the %d bytes of %s",
			resp.StatusCode, resp.Header.Get("Content-Type"), len(b), len(s.raw), specFile)
	}
	c, err := client.New(addr(h))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.OpenAPI(t.Context()); err != nil || !bytes.Equal(got, s.raw) {
		t.Errorf("Client.OpenAPI = %d bytes, %v", len(got), err)
	}
	if _, err := c.Status(t.Context()); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("Status without credentials = %v, want 401: the host does authenticate", err)
	}
}

// The drift test's tour: through the real host and module, every
// documented operation and the answers that matter are produced, and
// each JSON answer must match the document (required fields present, no
// undocumented field, types, enums): a field renamed or added in the
// module without the document fails here.
func TestOpenAPIDrift(t *testing.T) {
	s := loadSpec(t)
	acls := `{"permissive":false,` +
		`"run_remote_commands":[{"principals":{"values":["ops"]},"commands":{"type":"ANY"}}],` +
		`"run_remote_shell":[{"principals":{"values":["ops"]}}],` +
		`"view_remote_tasks":[{"principals":{"values":["ops"]},"owners":{"type":"ANY"}}],` +
		`"kill_remote_tasks":[{"principals":{"values":["ops"]},"owners":{"type":"ANY"}}]}`
	h := startHost(t, []string{"max_concurrent", "1", "max_queued", "1"}, "--http_credentials=file://"+credentialsFile(t),
		"--authenticate_http_readonly", "--authenticate_http_readwrite", "--acls="+acls)
	rec := &recorder{next: http.DefaultTransport}
	ops := recordedClient(t, h, rec, client.WithBasicAuth("ops", "o"))
	bob := recordedClient(t, h, rec, client.WithBasicAuth("bob", "b"))
	anon := recordedClient(t, h, rec)
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// Busy: one running, one queued (202), one refused (429).
	fifo, release := hosttest.Gate(t, "")
	first, err := ops.Start(ctx, client.RunRequest{Command: "cat", Args: []string{fifo}, Labels: map[string]string{"a": "b"}})
	must(err)
	queued, err := ops.Start(ctx, client.RunRequest{Command: "echo", Args: []string{"q"}, IdempotencyKey: "q"})
	must(err)
	_, err = ops.Start(ctx, client.RunRequest{Command: "true"})
	apiError(t, err, 429)
	// Seed: a pending pid, the pids.
	r, err := ops.TaskByPid(ctx, first.Pid)
	if err != nil || !r.Pending {
		t.Fatalf("TaskByPid = %+v, %v", r, err)
	}
	_, _, err = ops.Pids(ctx)
	must(err)
	release()
	_, err = ops.Wait(ctx, queued.ID)
	must(err)
	_, err = ops.Start(ctx, client.RunRequest{Command: "echo", Args: []string{"q"}, IdempotencyKey: "q"}) // 200: replayed
	must(err)
	_, err = ops.Run(ctx, client.RunRequest{Command: "printf", Args: []string{`\377`}, Env: map[string]string{"X": "1"}, Cwd: "/",
		Stdin: []byte("x"), Grace: time.Second, Timeout: time.Minute})
	must(err)

	// Seed: execute, the result of an ended command (with binary
	// stderr), a command that cannot start, an unknown pid, kill.
	pid, id, err := ops.Execute(ctx, "echo out; echo err >&2; printf '\\377' >&2", nil, true, time.Minute)
	must(err)
	_, err = ops.Wait(ctx, id)
	must(err)
	_, err = ops.TaskByPid(ctx, pid)
	must(err)
	_, _, err = ops.Execute(ctx, "/no/such/program", nil, false, 0)
	apiError(t, err, 400)
	_, err = ops.TaskByPid(ctx, 2147483647)
	apiError(t, err, 404)
	pid, id, err = ops.Execute(ctx, "sleep", []string{"300"}, false, 0)
	must(err)
	must(ops.KillPid(ctx, pid, "SIGTERM"))
	_, err = ops.Wait(ctx, id)
	must(err)
	apiError(t, ops.KillPid(ctx, pid, ""), 409)

	// REST: signal, kill, purge, list, output, errors.
	sig, err := ops.Start(ctx, client.RunRequest{Command: "trap 'exit 3' HUP; echo ready; while :; do sleep 1; done", Shell: true})
	must(err)
	waitOutput(t, ops, sig.ID, "ready\n")
	must(ops.Signal(ctx, sig.ID, "SIGHUP", "group"))
	_, err = ops.Wait(ctx, sig.ID)
	must(err)
	apiError(t, ops.Signal(ctx, sig.ID, "SIGHUP", ""), 409)
	long, err := ops.Start(ctx, client.RunRequest{Command: "sleep", Args: []string{"300"}})
	must(err)
	must(ops.Kill(ctx, long.ID))
	_, err = ops.Wait(ctx, long.ID)
	must(err)
	must(ops.Delete(ctx, long.ID))
	_, err = ops.Get(ctx, long.ID)
	apiError(t, err, 404)
	_, _, err = ops.List(ctx, client.ListOptions{Labels: map[string]string{"a": "b"}, Limit: 1})
	must(err)
	_, _, err = ops.List(ctx, client.ListOptions{State: "bogus"})
	apiError(t, err, 400)
	for _, stream := range []string{"stdout", "stderr"} {
		rc, err := ops.Output(ctx, sig.ID, stream, 0, false)
		must(err)
		_, err = io.ReadAll(rc)
		must(err)
		rc.Close()
	}
	_, err = ops.Status(ctx)
	must(err)
	_, err = ops.PolicyCheck(ctx, client.RunRequest{Command: "id", User: "nobody"})
	must(err)
	_, err = bob.PolicyCheck(ctx, client.RunRequest{Command: "echo", Shell: true})
	must(err)
	_, err = bob.Start(ctx, client.RunRequest{Command: "echo"})
	apiError(t, err, 403)
	_, err = bob.Get(ctx, first.ID)
	apiError(t, err, 403)
	_, err = anon.Status(ctx)
	apiError(t, err, 401)
	_, err = anon.OpenAPI(ctx)
	must(err)
	raw := &http.Client{Transport: rec}
	req, _ := http.NewRequestWithContext(ctx, "POST", h.URL+"/remote/tasks", strings.NewReader(`{"command":"true"}`))
	req.Header.Set("Content-Type", "text/plain")
	req.SetBasicAuth("ops", "o")
	resp, err := raw.Do(req)
	must(err)
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("a text/plain body = %d, want 415", resp.StatusCode)
	}

	// Every exchange matches the document; every operation was seen, and
	// the answers that matter.
	rec.check(t)
	seen := map[string]bool{}
	for _, e := range rec.exchanges() {
		path, _, err := s.operation(e.method, e.path)
		if err != nil {
			continue // reported by check
		}
		seen[e.method+" "+path] = true
		seen[fmt.Sprintf("%s %s %d", e.method, path, e.status)] = true
		if e.method == "POST" && path == "/remote/task" && e.status == 200 {
			seen["POST /remote/task 200 "+map[bool]string{true: "pending", false: "ended"}[bytes.Contains(e.body, []byte(`"pending"`))]] = true
		}
	}
	for path, ops := range s.paths {
		for method := range ops {
			if k := strings.ToUpper(method) + " " + path; !seen[k] {
				t.Errorf("the tour never called %s", k)
			}
		}
	}
	for _, k := range []string{
		"GET /remote/status 200", "GET /remote/status 401",
		"POST /remote/execute 200", "POST /remote/execute 400",
		"POST /remote/task 200 pending", "POST /remote/task 200 ended", "POST /remote/task 404", "GET /remote/task 200",
		"POST /remote/kill 200", "POST /remote/kill 409",
		"POST /remote/tasks 201", "POST /remote/tasks 202", "POST /remote/tasks 200", "POST /remote/tasks 403", "POST /remote/tasks 415", "POST /remote/tasks 429",
		"GET /remote/tasks 200", "GET /remote/tasks 400",
		"GET /remote/tasks/{id} 200", "GET /remote/tasks/{id} 403", "GET /remote/tasks/{id} 404",
		"DELETE /remote/tasks/{id} 202", "DELETE /remote/tasks/{id} 204",
		"GET /remote/tasks/{id}/stdout 200", "GET /remote/tasks/{id}/stderr 200",
		"POST /remote/tasks/{id}/signal 200", "POST /remote/tasks/{id}/signal 409",
		"POST /remote/policy/check 200", "GET /remote/openapi.json 200",
	} {
		if !seen[k] {
			t.Errorf("the tour never saw %s", k)
		}
	}
}
