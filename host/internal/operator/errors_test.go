package operator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/mesos/mesos-go/api/v1/lib/agent"
)

func pb(t *testing.T, c *agent.Call) string {
	t.Helper()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func recordio(s string) string { return strconv.Itoa(len(s)) + "\n" + s }

func TestRequests(t *testing.T) {
	const (
		textPlain = "text/plain; charset=utf-8"
		badAccept = "Expecting 'Accept' to allow application/json or application/x-protobuf or application/recordio"
		bad415    = "Expecting 'Content-Type' of application/json or application/x-protobuf or application/recordio"
		noType    = "Failed to validate agent::Call: Expecting 'type' to be present"
	)
	type hdr = map[string]string
	tests := []struct {
		name    string
		method  string // default POST
		header  hdr    // nil values: none; Content-Type defaults to JSON unless set (use "-" for none)
		body    string
		status  int
		ctype   string // response Content-Type; default text/plain for non-200
		want    string // exact body
		allow   string
		wantPfx bool // want is a prefix
	}{
		{name: "GET", method: "GET", status: 405, allow: "POST",
			want: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'."},
		{name: "PUT", method: "PUT", body: `{"type":"GET_HEALTH"}`, status: 405, allow: "POST",
			want: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'PUT'."},
		{name: "no content type", header: hdr{"Content-Type": "-"}, body: `{"type":"GET_HEALTH"}`,
			status: 400, want: "Expecting 'Content-Type' to be present"},
		{name: "empty content type", header: hdr{"Content-Type": ""}, status: 415, want: bad415},
		{name: "charset", header: hdr{"Content-Type": "application/json; charset=utf-8"}, status: 415, want: bad415},
		{name: "text/plain", header: hdr{"Content-Type": "text/plain"}, status: 415, want: bad415},
		{name: "case differs", header: hdr{"Content-Type": "Application/JSON"}, status: 415, want: bad415},
		{name: "recordio without message content type", header: hdr{"Content-Type": "application/recordio"},
			status: 400, want: "Expecting 'Message-Content-Type' to be set for streaming requests"},
		{name: "recordio bad message content type",
			header: hdr{"Content-Type": "application/recordio", "Message-Content-Type": "text/plain"},
			status: 415, want: "Expecting 'Message-Content-Type' of application/json or application/x-protobuf"},
		{name: "message content type on non-streaming", header: hdr{"Message-Content-Type": "application/json"},
			status: 415, want: "Expecting 'Message-Content-Type' to be not set for non-streaming requests"},
		{name: "accept html", header: hdr{"Accept": "text/html"}, body: `{"type":"GET_HEALTH"}`,
			status: 406, want: badAccept},
		{name: "accept json q=0", header: hdr{"Accept": "application/json;q=0"}, status: 406, want: badAccept},
		{name: "accept all q=0", header: hdr{"Accept": "*/*;q=0.0"}, status: 406, want: badAccept},
		{name: "message-accept on non-streaming", header: hdr{"Message-Accept": "application/json"},
			status: 406, want: "Expecting 'Message-Accept' to be not set for non-streaming responses"},
		{name: "recordio accept, bad message-accept",
			header: hdr{"Accept": "application/recordio", "Message-Accept": "text/html"},
			status: 406, want: "Expecting 'Message-Accept' to allow application/json or application/x-protobuf"},
		{name: "recordio accept for GET_HEALTH", header: hdr{"Accept": "application/recordio"},
			body: `{"type":"GET_HEALTH"}`, status: 406, want: "Streaming response is not supported for GET_HEALTH call"},
		{name: "checks before body: 406 wins over bad body", header: hdr{"Accept": "text/html"}, body: "{",
			status: 406, want: badAccept},

		// JSON bodies.
		{name: "empty body", status: 400, want: "Failed to parse body into JSON: EOF"},
		{name: "truncated", body: `{"type":`, status: 400, want: "Failed to parse body into JSON: unexpected EOF"},
		{name: "garbage", body: `nope`, status: 400, wantPfx: true, want: "Failed to parse body into JSON: invalid character"},
		{name: "trailing data", body: `{"type":"GET_HEALTH"} {}`, status: 400,
			want: "Failed to parse body into JSON: trailing data after JSON value"},
		{name: "array", body: `[]`, status: 400, want: "Expecting a JSON object"},
		{name: "null", body: `null`, status: 400, want: "Expecting a JSON object"},
		{name: "empty object", body: `{}`, status: 400, want: noType},
		{name: "null type", body: `{"type":null}`, status: 400, want: noType},
		{name: "unknown type name dropped", body: `{"type":"GET_EVERYTHING"}`, status: 400, want: noType},
		{name: "type key case differs", body: `{"Type":"GET_HEALTH"}`, status: 400, want: noType},
		{name: "numeric type", body: `{"type":1}`, status: 400, want: "Not expecting a JSON number for field 'type'"},
		{name: "boolean type", body: `{"type":true}`, status: 400, want: "Not expecting a JSON boolean for field 'type'"},
		{name: "array type", body: `{"type":["GET_HEALTH"]}`, status: 400, want: "Not expecting a JSON array for field 'type'"},
		{name: "object type", body: `{"type":{}}`, status: 400, want: "Not expecting a JSON object for field 'type'"},
		{name: "GET_METRICS without get_metrics", body: `{"type":"GET_METRICS"}`, status: 400,
			want: "Failed to validate agent::Call: Expecting 'get_metrics' to be present"},
		{name: "GET_METRICS null get_metrics", body: `{"type":"GET_METRICS","get_metrics":null}`, status: 400,
			want: "Failed to validate agent::Call: Expecting 'get_metrics' to be present"},
		{name: "get_metrics a string", body: `{"type":"GET_METRICS","get_metrics":"x"}`, status: 400,
			want: "Not expecting a JSON string for field 'get_metrics'"},
		{name: "timeout without nanoseconds", body: `{"type":"GET_METRICS","get_metrics":{"timeout":{}}}`,
			status: 400, want: "Missing required fields: get_metrics.timeout.nanoseconds"},
		{name: "nanoseconds a string", body: `{"type":"GET_METRICS","get_metrics":{"timeout":{"nanoseconds":"1"}}}`,
			status: 400, want: "Not expecting a JSON string for field 'nanoseconds'"},
		{name: "SET_LOGGING_LEVEL without sub-message", body: `{"type":"SET_LOGGING_LEVEL"}`, status: 400,
			want: "Failed to validate agent::Call: Expecting 'set_logging_level' to be present"},
		{name: "WAIT_CONTAINER without sub-message", body: `{"type":"WAIT_CONTAINER"}`, status: 400,
			want: "Failed to validate agent::Call: Expecting 'wait_container' to be present"},
		{name: "nested required", body: `{"type":"WAIT_CONTAINER","wait_container":{}}`, status: 400,
			want: "Missing required fields: wait_container.container_id"},
		{name: "UNKNOWN", body: `{"type":"UNKNOWN"}`, status: 501, want: "501 Not Implemented."},
		{name: "GET_CONTAINERS", body: `{"type":"GET_CONTAINERS"}`, status: 501,
			want: "501 Not Implemented. GET_CONTAINERS is not supported by this agent"},
		{name: "PRUNE_IMAGES", body: `{"type":"PRUNE_IMAGES"}`, status: 501,
			want: "501 Not Implemented. PRUNE_IMAGES is not supported by this agent"},
		{name: "ATTACH_CONTAINER_INPUT not streamed",
			body:   `{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"CONTAINER_ID"}}`,
			status: 415, want: "Expecting 'Content-Type' to be application/recordio for ATTACH_CONTAINER_INPUT call"},
		{name: "LAUNCH_NESTED_CONTAINER_SESSION with recordio accept",
			header: hdr{"Accept": "application/recordio", "Message-Accept": "application/json"},
			body:   `{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"x"}}}`,
			status: 501, want: "501 Not Implemented. LAUNCH_NESTED_CONTAINER_SESSION is not supported by this agent"},
		{name: "too large", body: `{"type":"GET_HEALTH","x":"` + strings.Repeat("a", MaxBody) + `"}`, status: 413,
			want: "Request body is larger than 1048576 bytes"},

		// Protobuf bodies.
		{name: "protobuf garbage", header: hdr{"Content-Type": "application/x-protobuf"}, body: "\xff\xff",
			status: 400, want: "Failed to parse body into a protobuf object"},
		{name: "protobuf empty", header: hdr{"Content-Type": "application/x-protobuf"}, body: "",
			status: 400, want: noType},
		{name: "protobuf unknown type number", header: hdr{"Content-Type": "application/x-protobuf"},
			body: "\x08\xe7\x07", status: 400, want: noType},
		{name: "protobuf GET_METRICS without get_metrics", header: hdr{"Content-Type": "application/x-protobuf"},
			body: "\x08\x04", status: 400, want: "Failed to validate agent::Call: Expecting 'get_metrics' to be present"},
		{name: "protobuf missing required", header: hdr{"Content-Type": "application/x-protobuf"},
			body:   "\x08\x04\x12\x02\x0a\x00", // get_metrics{timeout{}}
			status: 400, want: "Failed to parse body into a protobuf object"},
		{name: "protobuf UNKNOWN", header: hdr{"Content-Type": "application/x-protobuf"}, body: "\x08\x00",
			status: 501, want: "501 Not Implemented."},

		// Streaming requests.
		{name: "recordio empty", header: hdr{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"},
			status: 400, want: "Received EOF while reading request body"},
		{name: "recordio bad size", header: hdr{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"},
			body: "abc\n{}", status: 400, want: "Failed to decode RecordIO record: invalid record size"},
		{name: "recordio short record", header: hdr{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"},
			body: "10\n{}", status: 400, want: "Failed to decode RecordIO record: unexpected EOF in record data"},
		{name: "recordio huge record", header: hdr{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"},
			body: "99999999999\n{}", status: 413, want: "Request body is larger than 1048576 bytes"},
		{name: "recordio bad call", header: hdr{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"},
			body: recordio(`{}`), status: 400, want: noType},
		{name: "recordio GET_HEALTH", header: hdr{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"},
			body: recordio(`{"type":"GET_HEALTH"}`), status: 415,
			want: "Streaming 'Content-Type' application/recordio is not supported for GET_HEALTH call"},
		{name: "recordio protobuf ATTACH_CONTAINER_INPUT",
			header: hdr{"Content-Type": "application/recordio", "Message-Content-Type": "application/x-protobuf"},
			body: recordio(pb(t, &agent.Call{Type: agent.Call_ATTACH_CONTAINER_INPUT,
				AttachContainerInput: &agent.Call_AttachContainerInput{Type: agent.Call_AttachContainerInput_PROCESS_IO}})),
			status: 501, want: "501 Not Implemented. ATTACH_CONTAINER_INPUT is not supported by this agent"},

		// Successes: exact encodings and Accept negotiation.
		{name: "json, no Accept", body: `{"type":"GET_HEALTH"}`, status: 200, ctype: "application/json",
			want: `{"type":"GET_HEALTH","get_health":{"healthy":true}}`},
		{name: "protobuf request, no Accept: JSON as in Mesos", header: hdr{"Content-Type": "application/x-protobuf"},
			body: "\x08\x01", status: 200, ctype: "application/json",
			want: `{"type":"GET_HEALTH","get_health":{"healthy":true}}`},
		{name: "Accept */*", header: hdr{"Accept": "*/*"}, body: `{"type":"GET_HEALTH"}`, status: 200,
			ctype: "application/json", want: `{"type":"GET_HEALTH","get_health":{"healthy":true}}`},
		{name: "Accept protobuf", header: hdr{"Accept": "application/x-protobuf"}, body: `{"type":"GET_HEALTH"}`,
			status: 200, ctype: "application/x-protobuf", want: "\x08\x01\x12\x02\x08\x01"},
		{name: "Accept json q=0, protobuf", header: hdr{"Accept": "application/json;q=0, application/x-protobuf"},
			body: `{"type":"GET_HEALTH"}`, status: 200, ctype: "application/x-protobuf", want: "\x08\x01\x12\x02\x08\x01"},
		{name: "unknown fields ignored", body: `{"type":"GET_HEALTH","extra":{"a":[1,{"b":null}]},"get_metrics":null}`,
			status: 200, ctype: "application/json", want: `{"type":"GET_HEALTH","get_health":{"healthy":true}}`},
		{name: "GET_METRICS minimal", body: `{"type":"GET_METRICS","get_metrics":{}}`, status: 200,
			ctype: "application/json", want: `{"type":"GET_METRICS","get_metrics":{"metrics":[` +
				`{"name":"slave/uptime_secs","value":12.5},{"name":"system/cpus_total","value":8}]}}`},
		{name: "GET_METRICS fractional nanoseconds truncated",
			body:   `{"type":"GET_METRICS","get_metrics":{"timeout":{"nanoseconds":1e9}}}`,
			status: 200, ctype: "application/json", wantPfx: true, want: `{"type":"GET_METRICS"`},
		{name: "GET_FLAGS", body: `{"type":"GET_FLAGS"}`, status: 200, ctype: "application/json",
			want: `{"type":"GET_FLAGS","get_flags":{"flags":[{"name":"acls","value":""},` +
				`{"name":"port","value":"5051"},{"name":"work_dir","value":"/var/lib/mesos"}]}}`},
		// build_time as mesos-go's codec (ffjson) writes a float64.
		{name: "GET_VERSION", body: `{"type":"GET_VERSION"}`, status: 200, ctype: "application/json",
			want: `{"type":"GET_VERSION","get_version":{"version_info":{"version":"1.11.0",` +
				`"build_date":"2024-01-02 03:04:05","build_time":1.704164645e+09,"build_user":"builder","git_sha":"abc123"}}}`},
		{name: "GET_AGENT", body: `{"type":"GET_AGENT"}`, status: 200, ctype: "application/json",
			want: `{"type":"GET_AGENT","get_agent":{"agent_info":{"hostname":"node1.example","port":5051,` +
				`"resources":[],"attributes":[],"id":{"value":"agent-1-S0"}}}}`},
	}
	h := Handler(&fakeSource{healthy: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(cmpOr(tt.method, "POST"), "/api/v1", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tt.header {
				if v == "-" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %q", rec.Code, tt.status, body)
			}
			if tt.wantPfx && !strings.HasPrefix(body, tt.want) || !tt.wantPfx && body != tt.want {
				t.Errorf("body\n %q\nwant\n %q", body, tt.want)
			}
			ctype := tt.ctype
			if ctype == "" {
				ctype = textPlain
			}
			if got := rec.Header().Get("Content-Type"); got != ctype {
				t.Errorf("Content-Type %q, want %q", got, ctype)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q, want %d", got, len(body))
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestMultipleAcceptHeaders: mesos-go sends Accept twice; both count.
func TestMultipleAcceptHeaders(t *testing.T) {
	req := httptest.NewRequest("POST", "/api/v1", strings.NewReader(`{"type":"GET_HEALTH"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("Accept", "text/html")
	req.Header.Add("Accept", "application/x-protobuf")
	rec := httptest.NewRecorder()
	Handler(&fakeSource{}).ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-protobuf" {
		t.Errorf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestAcceptsMediaType(t *testing.T) {
	tests := []struct {
		field   string
		present bool
		media   string
		want    bool
	}{
		{"", false, "application/json", true},
		{"", true, "application/json", false},
		{"application/json", true, "application/json", true},
		{"APPLICATION/JSON", true, "application/json", true},
		{"application/*", true, "application/x-protobuf", true},
		{"text/*", true, "application/json", false},
		{"*/*", true, "application/json", true},
		{"application/json; q=0.5", true, "application/json", true},
		{"application/json;q=0", true, "application/json", false},
		{"application/json;q=x", true, "application/json", false},
		{"application/json;q=0;q=1", true, "application/json", true},   // two q: malformed, accepted
		{"application/json;q=0, */*", true, "application/json", false}, // exact match decides first
		{"text/html, */*;q=0.1", true, "application/json", true},
		{"application/json", true, "bogus", false},
	}
	for _, tt := range tests {
		if got := acceptsMediaType(tt.field, tt.present, tt.media); got != tt.want {
			t.Errorf("acceptsMediaType(%q, %v, %q) = %v, want %v", tt.field, tt.present, tt.media, got, tt.want)
		}
	}
}

func TestPidPort(t *testing.T) {
	for pid, want := range map[string]int32{"slave(1)@10.0.0.1:5051": 5051, "slave(1)@[::1]:80": 80,
		"": -1, "slave(1)@host": -1, "slave(1)@h:99999": -1} {
		got, ok := pidPort(pid)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("pidPort(%q) = %d, want %d", pid, got, want)
		}
	}
}

// TestNoIDNoPort: what we do not know is left out of agent_info.
func TestNoIDNoPort(t *testing.T) {
	h := handler{src: stateOnly{StateInfo{Hostname: "h"}}}
	ai := h.agent().AgentInfo
	if ai.ID != nil || ai.Port != nil || ai.Hostname != "h" {
		t.Errorf("%v", ai)
	}
	var buf bytes.Buffer
	b, _ := ai.MarshalJSON()
	buf.Write(b)
	if strings.Contains(buf.String(), `"id"`) || strings.Contains(buf.String(), `"port"`) {
		t.Errorf("%s", b)
	}
}

type stateOnly struct{ st StateInfo }

func (s stateOnly) Health() bool                               { return true }
func (s stateOnly) Flags() ([]Flag, error)                     { return nil, nil }
func (s stateOnly) Version() VersionInfo                       { return VersionInfo{} }
func (s stateOnly) Metrics(context.Context) map[string]float64 { return nil }
func (s stateOnly) State() StateInfo                           { return s.st }

// TestFlagsRefused: a Source that refuses GET_FLAGS gets Mesos's 403,
// with a JSON body naming the rule; any other error of the Source is a
// 500 that says what failed.
func TestFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		ctype  string
		body   string
	}{
		{&Forbidden{Message: `principal "bob" may not view the flags (denied by view_flags[1])`, Rule: "view_flags[1]"},
			403, "application/json", `{"error":"principal \"bob\" may not view the flags (denied by view_flags[1])","rule":"view_flags[1]"}` + "\n"},
		{fmt.Errorf("wrapped: %w", &Forbidden{Message: "no", Rule: "r"}), 403, "application/json", `{"error":"no","rule":"r"}` + "\n"},
		{errors.New("flags unavailable"), 500, "text/plain; charset=utf-8", "500 Internal Server Error. flags unavailable"},
	} {
		req := httptest.NewRequest("POST", "/api/v1", strings.NewReader(`{"type":"GET_FLAGS"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		Handler(&fakeSource{flagsErr: tc.err}).ServeHTTP(rec, req)
		if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.ctype || rec.Body.String() != tc.body {
			t.Errorf("%v: %d %q %q, want %d %q %q", tc.err, rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.status, tc.ctype, tc.body)
		}
		if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(rec.Body.Len()) {
			t.Errorf("%v: Content-Length %q", tc.err, got)
		}
	}
}
