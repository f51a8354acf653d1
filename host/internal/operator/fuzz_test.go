package operator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	"github.com/mesos/mesos-go/api/v1/lib/agent/calls"
)

func fuzzSeeds(f *testing.F) {
	d := time.Second
	for _, c := range []*agent.Call{calls.GetHealth(), calls.GetFlags(), calls.GetVersion(), calls.GetMetrics(nil),
		calls.GetMetrics(&d), calls.GetState(), calls.GetAgent(), calls.GetContainers(), {Type: agent.Call_UNKNOWN},
		calls.LaunchNestedContainerSession(mesos.ContainerID{Value: "c", Parent: &mesos.ContainerID{Value: "p"}},
			&mesos.CommandInfo{Value: ptr("ls"), Arguments: []string{"ls", "-l"}}, nil),
		calls.AttachContainerInputData([]byte("stdin")), calls.SetLoggingLevel(1, time.Second)} {
		b, err := c.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		j, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j, false)
	}
	for _, s := range []string{``, `{}`, `[]`, `null`, `{"type":1}`, `{"type":"X"}`, `{"type":"GET_METRICS","get_metrics":{"timeout":{}}}`,
		`{"type":"GET_METRICS","get_metrics":{"timeout":{"nanoseconds":1e400}}}`, `{"type":"GET_METRICS","get_metrics":{"timeout":{"nanoseconds":-1.5}}}`,
		`{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"x"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1}}],"limits":{"cpus":{"value":2}}}}`,
		`{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"DATA","data":{"type":"STDIN","data":"!!"}}}}`} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("\x08\xe7\x07"), true)
	f.Add([]byte(overflowLength), true)
	f.Add([]byte("\x08\x04\x12\x02\x0a\x00"), true)
}

// FuzzDecodeCall: whatever the body, in either encoding, the handler does
// not panic, answers 200, a 4xx or 501, and every rejection by the decoder
// is a 4xx.
func FuzzDecodeCall(f *testing.F) {
	fuzzSeeds(f)
	h := Handler(&fakeSource{healthy: true})
	f.Fuzz(func(t *testing.T, body []byte, protobuf bool) {
		mt := mediaJSON
		if protobuf {
			mt = mediaProtobuf
		}
		call, rej := decodeCall(mt, body)
		switch {
		case rej != nil && (rej.status < 400 || rej.status > 499):
			t.Fatalf("decodeCall rejected with %d: %s", rej.status, rej.body)
		case rej == nil && call == nil:
			t.Fatal("decodeCall: neither call nor rejection")
		case rej == nil:
			// What we accept re-encodes.
			if _, err := call.Marshal(); err != nil {
				t.Fatalf("accepted call does not marshal: %v", err)
			}
		}

		for _, accept := range []string{mediaJSON, mediaProtobuf} {
			req := httptest.NewRequest("POST", "/api/v1", bytes.NewReader(body))
			req.Header.Set("Content-Type", mt)
			req.Header.Set("Accept", accept)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch {
			case rec.Code == http.StatusOK:
				if rec.Header().Get("Content-Type") != accept {
					t.Fatalf("200 with Content-Type %q", rec.Header().Get("Content-Type"))
				}
				var r agent.Response
				var err error
				if accept == mediaProtobuf {
					err = r.Unmarshal(rec.Body.Bytes())
				} else {
					err = json.Unmarshal(rec.Body.Bytes(), &r)
				}
				if err != nil {
					t.Fatalf("our response does not decode: %v", err)
				}
			case rec.Code == http.StatusNotImplemented:
			case rec.Code >= 400 && rec.Code <= 499:
			default:
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

// overflowLength is a Call whose get_metrics (field 2) claims a length of
// MaxInt64: iNdEx+msglen overflows and mesos-go's generated Unmarshal
// slices out of range (CVE-2021-3121, fixed in gogo 1.3.2's generator but
// not in mesos-go v0.0.11's generated code).
const overflowLength = "\x12\xff\xff\xff\xff\xff\xff\xff\xff\x7f"

// TestGogoUnmarshalPanics proves that the recover in gogoUnmarshal is
// needed: the generated code itself panics.
func TestGogoUnmarshalPanics(t *testing.T) {
	for _, b := range []string{overflowLength, "\x08\x04" + overflowLength} {
		panicked := func() (p any) {
			defer func() { p = recover() }()
			var c agent.Call
			_ = c.Unmarshal([]byte(b))
			return nil
		}()
		if panicked == nil {
			t.Fatalf("%q: agent.Call.Unmarshal did not panic; the recover may be unnecessary now", b)
		}
		t.Logf("%q: agent.Call.Unmarshal panics: %v", b, panicked)

		req := httptest.NewRequest("POST", "/api/v1", bytes.NewReader([]byte(b)))
		req.Header.Set("Content-Type", mediaProtobuf)
		rec := httptest.NewRecorder()
		Handler(&fakeSource{}).ServeHTTP(rec, req)
		if rec.Code != 400 || rec.Body.String() != "Failed to parse body into a protobuf object" {
			t.Errorf("%q: handler answered %d %q", b, rec.Code, rec.Body)
		}
	}
}
