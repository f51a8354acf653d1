package agent

import (
	"context"

	"github.com/execmod/execmod/host/internal/operator"
)

// operatorSource answers the /api/v1 calls from the agent's own state, for
// one request: flags is whether its principal may view the flags
// (view_flags); when not, GET_FLAGS answers none.
type operatorSource struct {
	s     *Server
	flags bool
}

var _ operator.Source = operatorSource{}

func (o operatorSource) Health() bool { return true }

func (o operatorSource) Flags() []operator.Flag {
	if !o.flags {
		return nil
	}
	out := make([]operator.Flag, len(o.s.info.Flags))
	for i, f := range o.s.info.Flags {
		out[i] = operator.Flag{Name: f.Name, Value: f.Value}
	}
	return out
}

func (o operatorSource) Version() operator.VersionInfo {
	i := o.s.info
	return operator.VersionInfo{Version: i.Version, BuildDate: i.BuildDate, BuildTime: i.BuildTime, BuildUser: i.BuildUser, GitSHA: i.GitSHA}
}

func (o operatorSource) Metrics(ctx context.Context) map[string]float64 { return o.s.snapshot(ctx) }

func (o operatorSource) State() operator.StateInfo {
	return operator.StateInfo{ID: o.s.info.ID, Hostname: o.s.info.Hostname, PID: "slave(1)@" + o.s.info.Addr}
}
