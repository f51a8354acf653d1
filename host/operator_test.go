package main

import (
	"context"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/agent"
	"github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
)

// mesos-go's own agent client, a client nobody here wrote, against the
// real bin/modhost, in both encodings.
func TestMesosGoClientAgainstModhost(t *testing.T) {
	h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"), "--hostname=agent-9")
	for _, mt := range []encoding.MediaType{codecs.MediaTypeJSON, codecs.MediaTypeProtobuf} {
		t.Run(string(mt), func(t *testing.T) {
			cli := httpcli.New(httpcli.Endpoint(h.URL+"/api/v1"), httpcli.Codec(codecs.ByMediaType[mt]),
				httpcli.Do(httpcli.With(httpcli.Timeout(10*time.Second))))
			sender := httpagent.NewSender(cli.Send)
			call := func(c *agent.Call) *agent.Response {
				t.Helper()
				resp, err := sender.Send(context.Background(), calls.NonStreaming(c))
				if resp != nil {
					defer resp.Close()
				}
				if err != nil {
					t.Fatalf("%v: %v", c.Type, err)
				}
				var r agent.Response
				if err := resp.Decode(&r); err != nil {
					t.Fatalf("%v: decode: %v", c.Type, err)
				}
				return &r
			}
			if r := call(calls.GetHealth()); !r.GetHealth.GetHealthy() {
				t.Errorf("GET_HEALTH = %v", r)
			}
			flags := map[string]string{}
			for _, f := range call(calls.GetFlags()).GetFlags.GetFlags() {
				flags[f.Name] = f.GetValue()
			}
			if flags["hostname"] != "agent-9" || flags["work_dir"] != h.WorkDir {
				t.Errorf("GET_FLAGS = %v", flags)
			}
			if v := call(calls.GetVersion()).GetVersion.GetVersionInfo(); v.Version != version {
				t.Errorf("GET_VERSION = %v, want version %s", v, version)
			}
			metrics := map[string]float64{}
			for _, m := range call(calls.GetMetrics(nil)).GetMetrics.GetMetrics() {
				metrics[m.Name] = m.GetValue()
			}
			if metrics["modhost/modules_running"] != 1 || metrics["slave/uptime_secs"] <= 0 {
				t.Errorf("GET_METRICS = %v", metrics)
			}
			if r := call(calls.GetState()); r.Type != agent.Response_GET_STATE {
				t.Errorf("GET_STATE = %v", r)
			}
		})
	}
}
