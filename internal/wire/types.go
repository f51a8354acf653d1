package wire

import (
	"fmt"
	"net/http"

	modulev1 "github.com/execmod/execmod/proto/module/v1"
)

// Realm is the authentication realm a route belongs to, as in Mesos.
type Realm int

const (
	RealmNone      Realm = iota // never authenticated (like /health)
	RealmReadOnly               // mesos-agent-readonly
	RealmReadWrite              // mesos-agent-readwrite
)

// String returns the Mesos realm name, or "none".
func (r Realm) String() string {
	switch r {
	case RealmReadOnly:
		return "mesos-agent-readonly"
	case RealmReadWrite:
		return "mesos-agent-readwrite"
	case RealmNone:
		return "none"
	}
	return fmt.Sprintf("Realm(%d)", int(r))
}

// Flag is one agent flag and its value.
type Flag struct{ Name, Value string }

// Param is one modules.json parameter.
type Param struct{ Key, Value string }

// InitRequest is what the host tells a module when it starts.
type InitRequest struct {
	Name        string  // modules.json name, e.g. org_execmod_RemoteExecution
	Flags       []Flag  // every agent flag, sorted by name
	Params      []Param // the module's parameters, in modules.json order
	LogLevel    string  // TRACE, DEBUG, INFO, WARNING or ERROR
	DataDir     string  // the one directory the module may write to
	HostVersion string
}

// Route is one HTTP route a module serves, relative to its mount point.
type Route struct {
	Method          string // "" matches every method
	Path            string // Go 1.22 ServeMux path syntax, leading slash
	Realm           Realm
	HelpTLDR        string
	HelpDescription string
}

// Pattern is the route's ServeMux pattern under mount ("/hello"):
// "GET /hello/{name}".
func (r Route) Pattern(mount string) string {
	if r.Method == "" {
		return mount + r.Path
	}
	return r.Method + " " + mount + r.Path
}

// Manifest is a module's answer to Init.
type Manifest struct {
	ID      string // mount point: routes are served under /<ID>/
	Version string
	Routes  []Route
}

func (q InitRequest) toProto() *modulev1.InitRequest {
	p := &modulev1.InitRequest{
		Name: q.Name, LogLevel: q.LogLevel, DataDir: q.DataDir, HostVersion: q.HostVersion,
		Flags:      make([]*modulev1.Flag, len(q.Flags)),
		Parameters: make([]*modulev1.Parameter, len(q.Params)),
	}
	for i, f := range q.Flags {
		p.Flags[i] = &modulev1.Flag{Name: f.Name, Value: f.Value}
	}
	for i, kv := range q.Params {
		p.Parameters[i] = &modulev1.Parameter{Key: kv.Key, Value: kv.Value}
	}
	return p
}

func initRequestFromProto(p *modulev1.InitRequest) InitRequest {
	q := InitRequest{
		Name: p.Name, LogLevel: p.LogLevel, DataDir: p.DataDir, HostVersion: p.HostVersion,
		Flags:  make([]Flag, len(p.Flags)),
		Params: make([]Param, len(p.Parameters)),
	}
	for i, f := range p.Flags {
		q.Flags[i] = Flag{Name: f.GetName(), Value: f.GetValue()}
	}
	for i, kv := range p.Parameters {
		q.Params[i] = Param{Key: kv.GetKey(), Value: kv.GetValue()}
	}
	return q
}

func (m Manifest) toProto() *modulev1.InitResponse {
	p := &modulev1.InitResponse{Id: m.ID, Version: m.Version, Routes: make([]*modulev1.Route, len(m.Routes))}
	for i, r := range m.Routes {
		p.Routes[i] = &modulev1.Route{
			Method: r.Method, Path: r.Path, Realm: modulev1.Realm(r.Realm),
			HelpTldr: r.HelpTLDR, HelpDescription: r.HelpDescription,
		}
	}
	return p
}

func manifestFromProto(p *modulev1.InitResponse) Manifest {
	m := Manifest{ID: p.Id, Version: p.Version, Routes: make([]Route, len(p.Routes))}
	for i, r := range p.Routes {
		m.Routes[i] = Route{
			Method: r.GetMethod(), Path: r.GetPath(), Realm: Realm(r.GetRealm()),
			HelpTLDR: r.GetHelpTldr(), HelpDescription: r.GetHelpDescription(),
		}
	}
	return m
}

func headersToProto(h http.Header) []*modulev1.Header {
	out := make([]*modulev1.Header, 0, len(h))
	for name, values := range h {
		out = append(out, &modulev1.Header{Name: name, Values: values})
	}
	return out
}
