// Command remotectl is the operator's command line for the remote-execute
// module: it runs commands on one agent or a fleet of them (listed, or
// discovered from a Mesos master), streams their output live and exits
// with their exit code; it lists, inspects, follows, signals and waits for
// tasks, and asks the module's ACLs in advance. See usage.go for the
// commands, flags and exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}
