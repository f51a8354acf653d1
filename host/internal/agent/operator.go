package agent

import (
	"context"

	"github.com/execmod/execmod/host/internal/operator"
	"github.com/execmod/execmod/internal/acl"
)

// operatorSource answers the /api/v1 calls from the agent's own state, for
// one request: principal is who asks and viewFlags the view_flags decision
// for them; when it denies, GET_FLAGS is refused (403), as in Mesos.
type operatorSource struct {
	s         *Server
	principal string
	viewFlags acl.Decision
}

var _ operator.Source = operatorSource{}

func (o operatorSource) Health() bool { return true }

func (o operatorSource) Flags() ([]operator.Flag, error) {
	if !o.viewFlags.Allowed {
		return nil, &operator.Forbidden{Message: flagsDenied(o.principal, o.viewFlags.Rule), Rule: o.viewFlags.Rule}
	}
	out := make([]operator.Flag, len(o.s.info.Flags))
	for i, f := range o.s.info.Flags {
		out[i] = operator.Flag{Name: f.Name, Value: f.Value}
	}
	return out, nil
}

func (o operatorSource) Version() operator.VersionInfo {
	i := o.s.info
	return operator.VersionInfo{Version: i.Version, BuildDate: i.BuildDate, BuildTime: i.BuildTime, BuildUser: i.BuildUser, GitSHA: i.GitSHA}
}

func (o operatorSource) Metrics(ctx context.Context) map[string]float64 { return o.s.snapshot(ctx) }

func (o operatorSource) State() operator.StateInfo {
	return operator.StateInfo{ID: o.s.info.ID, Hostname: o.s.info.Hostname, PID: "slave(1)@" + o.s.info.Addr}
}
