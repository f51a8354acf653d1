package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/execmod/execmod/module/client"
)

const defaultAgent = "127.0.0.1:5051"

// auth resolves the credentials: flags, then the environment, then
// --credentials.
func (e *env) auth(o *options) (principal, secret string, err error) {
	principal = cmp.Or(o.principal, e.getenv("REMOTECTL_PRINCIPAL"))
	secret = cmp.Or(o.secret, e.getenv("REMOTECTL_SECRET"))
	if o.credentials == "" {
		if secret != "" && principal == "" {
			return "", "", usagef("--secret without --principal")
		}
		return principal, secret, nil
	}
	b, err := os.ReadFile(strings.TrimPrefix(o.credentials, "file://"))
	if err != nil {
		return "", "", usagef("--credentials: %v", err)
	}
	var f struct {
		Credentials []struct {
			Principal string `json:"principal"`
			Secret    string `json:"secret"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", "", usagef("--credentials %s: not a Mesos credentials file: %v", o.credentials, err)
	}
	for _, c := range f.Credentials {
		if principal == "" || c.Principal == principal {
			return c.Principal, c.Secret, nil
		}
	}
	if principal != "" {
		return "", "", usagef("--credentials %s has no principal %q", o.credentials, principal)
	}
	return "", "", usagef("--credentials %s lists no credentials", o.credentials)
}

// connect returns a client for agent.
func (e *env) connect(o *options, agent string) (*client.Client, error) {
	var opts []client.Option
	principal, secret, err := e.auth(o)
	if err != nil {
		return nil, err
	}
	if principal != "" {
		opts = append(opts, client.WithBasicAuth(principal, secret))
	}
	if o.ca != "" || o.cert != "" || o.key != "" {
		if (o.cert == "") != (o.key == "") {
			return nil, usagef("--cert and --key go together")
		}
		opts = append(opts, client.WithTLS(o.ca, o.cert, o.key))
	}
	c, err := client.New(agent, opts...)
	if err != nil {
		return nil, usagef("agent %q: %v", agent, err)
	}
	return c, nil
}

// singleAgent is the --agent of a one-agent command.
func (e *env) singleAgent(o *options) string {
	return cmp.Or(o.agent, e.getenv("REMOTECTL_AGENT"), defaultAgent)
}

// describe says what an error means to an operator, with the exit code.
// task is the task id the request was about, if any.
func describe(agent, task string, err error) exitError {
	var ue usageError
	if errors.As(err, &ue) {
		return exitError{exitUsage, ue.msg}
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee
	}
	if errors.Is(err, context.Canceled) {
		return exitError{exitInterrupted, "interrupted"}
	}
	var ce *client.Error
	status, msg, rule := 0, "", ""
	if errors.As(err, &ce) {
		status, msg, rule = ce.StatusCode, ce.Message, ce.Rule
	}
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return exitError{exitUnreachable, fmt.Sprintf("agent %s unreachable: %s", agent, cause(err))}
	case errors.Is(err, client.ErrUnauthorized) || status == 401:
		return exitError{exitNoPerm, fmt.Sprintf("401: credentials rejected by agent %s%s", agent, suffix(msg))}
	case errors.Is(err, client.ErrForbidden) || status == 403:
		if rule == "" || strings.Contains(msg, rule) {
			return exitError{exitNoPerm, fmt.Sprintf("403: denied by agent %s%s", agent, suffix(msg))}
		}
		return exitError{exitNoPerm, fmt.Sprintf("403: denied by agent %s%s (rule: %s)", agent, suffix(msg), rule)}
	case errors.Is(err, client.ErrNotFound) || status == 404:
		if task != "" && strings.Contains(msg, "no such task") {
			return exitError{exitFailure, fmt.Sprintf("no task %s on agent %s (404)", task, agent)}
		}
		if strings.Contains(msg, "no stream") {
			return exitError{exitFailure, fmt.Sprintf("%s (404)", msg)}
		}
		return exitError{exitUnreachable, fmt.Sprintf("the remote module is not loaded on agent %s (404)", agent)}
	case errors.Is(err, client.ErrUnavailable) || status == 503:
		if strings.Contains(msg, "failed") {
			return exitError{exitUnreachable, fmt.Sprintf("module failed on agent %s (503)%s", agent, suffix(msg))}
		}
		return exitError{exitTempFail, fmt.Sprintf("module restarting on agent %s (503); retry", agent)}
	case errors.Is(err, client.ErrBusy) || status == 429:
		return exitError{exitTempFail, fmt.Sprintf("agent %s is busy (429: too many tasks running and queued); retry", agent)}
	case status != 0:
		return exitError{exitFailure, fmt.Sprintf("%d from agent %s%s", status, agent, suffix(msg))}
	}
	return exitError{exitFailure, fmt.Sprintf("agent %s: %v", agent, err)}
}

func suffix(msg string) string {
	if msg = strings.TrimSpace(msg); msg == "" {
		return ""
	}
	return ": " + msg
}

// cause is the root of a transport error in words: "connection refused",
// "no such host", "timed out".
func cause(err error) string {
	var errno syscall.Errno
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "no such host " + dns.Name
		}
		return dns.Err
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "timed out"
	}
	return err.Error()
}
