package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpmaster"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/master/calls"
)

// discover asks the Mesos master at --master for its agents with the v1
// operator API's GET_AGENTS, through mesos-go's httpmaster client, with
// the same credentials and TLS as the agents.
func (e *env) discover(o *options) ([]agent, error) {
	endpoint := strings.TrimSuffix(o.master, "/")
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	if !strings.HasSuffix(endpoint, "/api/v1") {
		endpoint += "/api/v1"
	}
	cfg := []httpcli.ConfigOpt{httpcli.Timeout(10 * time.Second)}
	principal, secret, err := e.auth(o)
	if err != nil {
		return nil, err
	}
	if principal != "" {
		cfg = append(cfg, httpcli.BasicAuth(principal, secret))
	}
	if o.ca != "" || o.cert != "" {
		tc, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		cfg = append(cfg, httpcli.TLSConfig(tc))
	}
	cli := httpcli.New(httpcli.Endpoint(endpoint), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeJSON]),
		httpcli.Do(httpcli.With(cfg...)))
	resp, err := httpmaster.NewSender(cli.Send).Send(e.ctx, calls.NonStreaming(calls.GetAgents()))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		return nil, exitError{exitUnreachable, fmt.Sprintf("master %s: GET_AGENTS: %v", o.master, err)}
	}
	var r master.Response
	if err := resp.Decode(&r); err != nil {
		return nil, exitError{exitFailure, fmt.Sprintf("master %s: GET_AGENTS: decoding the answer: %v", o.master, err)}
	}
	if r.Type != master.Response_GET_AGENTS || r.GetAgents == nil {
		return nil, exitError{exitFailure, fmt.Sprintf("master %s: GET_AGENTS answered %v", o.master, r.Type)}
	}
	var out []agent
	var inactive []string
	for _, a := range r.GetAgents.Agents {
		if !a.Active {
			inactive = append(inactive, a.AgentInfo.Hostname)
			continue
		}
		out = append(out, agentOf(a))
	}
	if len(inactive) > 0 {
		fmt.Fprintf(e.stderr, "remotectl: master %s lists %d inactive agents (not running on them): %s\n",
			o.master, len(inactive), strings.Join(inactive, ", "))
	}
	return out, nil
}

// agentOf is an agent of GET_AGENTS: hostname:port from its AgentInfo,
// the port from its pid ("slave(1)@10.0.0.1:5051") when AgentInfo has
// none, else 5051; and its attributes.
func agentOf(a master.Response_GetAgents_Agent) agent {
	host := a.AgentInfo.Hostname
	port := ""
	if a.AgentInfo.Port != nil {
		port = strconv.Itoa(int(*a.AgentInfo.Port))
	} else if a.PID != nil {
		if _, hp, ok := strings.Cut(*a.PID, "@"); ok {
			h, p, err := net.SplitHostPort(hp)
			if err == nil {
				port = p
				if host == "" {
					host = h
				}
			}
		}
	}
	if port == "" {
		port = strconv.Itoa(int(mesos.Default_AgentInfo_Port))
	}
	attrs := map[string]string{}
	for _, at := range a.AgentInfo.Attributes {
		attrs[at.Name] = attributeValue(at)
	}
	return agent{addr: net.JoinHostPort(host, port), hostname: host, attrs: attrs}
}

// attributeValue prints an attribute's value as Mesos's --attributes flag
// writes it: text as is, 2.5, [1000-2000, 3000-3000], {a,b}.
func attributeValue(at mesos.Attribute) string {
	switch {
	case at.Text != nil:
		return at.Text.Value
	case at.Scalar != nil:
		return strconv.FormatFloat(at.Scalar.Value, 'f', -1, 64)
	case at.Ranges != nil:
		rs := make([]string, len(at.Ranges.Range))
		for i, r := range at.Ranges.Range {
			rs[i] = fmt.Sprintf("%d-%d", r.Begin, r.End)
		}
		return "[" + strings.Join(rs, ", ") + "]"
	case at.Set != nil:
		return "{" + strings.Join(at.Set.Item, ",") + "}"
	}
	return ""
}

func tlsConfig(o *options) (*tls.Config, error) {
	tc := &tls.Config{}
	if o.ca != "" {
		b, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, usagef("--ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, usagef("--ca %s: no PEM certificates", o.ca)
		}
		tc.RootCAs = pool
	}
	if o.cert != "" {
		c, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, usagef("--cert/--key: %v", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}
