package main

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// agent is a listed or discovered agent: its address, and what a
// --agent-filter can match. Listed agents know only their hostname.
type agent struct {
	addr, hostname string
	attrs          map[string]string // discovered agents' attributes, as Mesos prints them
}

// filter is one --agent-filter: NAME=REGEX, where NAME is hostname or an
// attribute's name, or a bare REGEX for the hostname. REGEX must match the
// whole value.
type filter struct {
	name string
	re   *regexp.Regexp
}

func parseFilters(exprs []string) ([]filter, error) {
	var out []filter
	for _, x := range exprs {
		name, expr, ok := strings.Cut(x, "=")
		if !ok {
			name, expr = "hostname", x
		}
		if name == "" {
			return nil, usagef("--agent-filter %q: no attribute name before =", x)
		}
		if _, err := regexp.Compile(expr); err != nil { // the error in the operator's terms
			return nil, usagef("--agent-filter %q: %v", x, err)
		}
		re, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			return nil, usagef("--agent-filter %q: %v", x, err)
		}
		out = append(out, filter{name, re})
	}
	return out, nil
}

// matches reports whether a passes every filter; an agent without the
// attribute does not match.
func (a agent) matches(fs []filter) bool {
	for _, f := range fs {
		v, ok := a.hostname, true
		if f.name != "hostname" {
			v, ok = a.attrs[f.name]
		}
		if !ok || !f.re.MatchString(v) {
			return false
		}
	}
	return true
}

// agentList resolves --agents or --master, then every --agent-filter.
func (e *env) agentList(o *options) ([]string, error) {
	filters, err := parseFilters(o.agentFilters)
	if err != nil {
		return nil, err
	}
	var agents []agent
	switch {
	case o.agents != "" && o.master != "":
		return nil, usagef("--agents and --master: give one")
	case o.master != "":
		if agents, err = e.discover(o); err != nil {
			return nil, err
		}
	default:
		for _, f := range filters {
			if f.name != "hostname" {
				return nil, usagef("--agent-filter %s=...: listed agents have no attributes; discover them with --master", f.name)
			}
		}
		list, err := parseAgents(o.agents)
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			agents = append(agents, agent{addr: a, hostname: hostOf(a)})
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range agents {
		if a.matches(filters) && !seen[a.addr] {
			seen[a.addr] = true
			out = append(out, a.addr)
		}
	}
	if len(out) == 0 {
		msg := "no agents to run on"
		if len(filters) > 0 {
			msg += fmt.Sprintf(" (--agent-filter %s matched none of %d)", strings.Join(o.agentFilters, " --agent-filter "), len(agents))
		}
		return nil, exitError{exitUsage, msg}
	}
	return out, nil
}

// parseAgents reads "a:5051,b:5051" or "@file" (one per line, # comments).
func parseAgents(s string) ([]string, error) {
	var fields []string
	if name, ok := strings.CutPrefix(s, "@"); ok {
		f, err := os.Open(name)
		if err != nil {
			return nil, usagef("--agents: %v", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			fields = append(fields, strings.Fields(line)...)
		}
		if err := sc.Err(); err != nil {
			return nil, usagef("--agents %s: %v", name, err)
		}
	} else {
		fields = strings.Split(s, ",")
	}
	var out []string
	for _, f := range fields {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out, nil
}

// hostOf is the hostname in "host:port" or a URL.
func hostOf(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		return u.Hostname()
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
