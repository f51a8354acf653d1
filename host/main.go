// Command modhost is a small Mesos-agent-compatible host for execmod
// modules. It takes the Mesos agent's flags (--work_dir, --modules,
// --modules_dir, ...; each also as MESOS_<FLAG> in the environment), loads
// modules.json as Mesos does, starts every module as a go-plugin
// subprocess, mounts its routes under /<id>/ and forwards HTTP to it. It
// also serves the agent's /health, /version, /flags, /state and /help.
//
// Run modhost --help for its flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		var le loadError
		if errors.As(err, &le) {
			fmt.Fprintln(os.Stderr, "Error loading modules:", le.err)
		} else {
			fmt.Fprintln(os.Stderr, "modhost:", err)
		}
		os.Exit(1)
	}
}
