// Command soak proves execmod's system-level promises under load and
// faults (issue 7). It builds the real bin/modhost and bin/remote-execute
// (with -race), starts them on loopback with a work_dir of its own (a
// small tmpfs when it may mount one), and has many concurrent clients
// submit a mix of commands above the module's max_concurrent and
// max_queued, so that tasks queue and 429s happen: fast `true`,
// output-heavy commands of known content, slow ones, failing ones,
// timing-out ones (one that ignores SIGTERM), ones killed mid-run by
// DELETE or /signal, shell pipelines that fork children, and the seed's
// /execute in the Mesos CommandInfo form. Every command carries a marker
// in its environment (EXECMOD_SOAK=<run>), which a /proc walk looks for.
//
// During the load, at seeded random moments, one at a time: kill -9 of the
// module process (its pid from the host's "module serving" log line),
// SIGTERM and restart of the host on the same work_dir, a command that
// forks a daemon escaping its process group with setsid, and a full
// work_dir (the tmpfs shrunk to what it holds and filled). Then a planned
// restart, a memory baseline, load without faults, and a final restart.
//
// At the end it checks, and prints with counts:
//
//   - every acknowledged task is accounted for: it ended as the command
//     really did (state, exit code, signal, output checksums against the
//     generator), or with an outcome a fault explains (lost across a
//     module or host restart, killed by a host stop, failed to start on a
//     full disk); none vanished;
//   - every result reported once is reported identically after every
//     restart (listed after each one; read in full, raw stdout included,
//     after the last);
//   - no process the system started is still running or a zombie, the
//     host and module hold no file or socket outside work_dir, and the
//     host's TMPDIR and HOME stay empty;
//   - every request got a valid HTTP answer, and no 5xx came outside the
//     windows in which the module or host was restarting (503), except
//     "no space left" while the disk was full;
//   - the host's and module's RSS are back near their baseline;
//   - the logs hold no race report, panic or crash the soak did not cause,
//     and the run really overloaded the module and did every fault.
//
// It prints a table, writes the JSON summary with -json, and exits 1 if
// any invariant is violated (2 if the run could not be carried out).
//
// Usage:
//
//	go run ./soak [-short] [-seed=N] [-json=FILE] [-keep] [flags]
//
// make soak runs the long version (about seven minutes on two cores); the
// package's test runs the short one.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	sum, err := run(ctx, cfg, os.Stdout)
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	case !sum.OK:
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "the short configuration (the test's)")
	d := longConfig()
	seed := fs.Int64("seed", 0, "random seed (0: from the clock); printed, so that a run can be repeated")
	faults := fs.Duration("duration", d.FaultPhase, "how long the load with faults lasts")
	tail := fs.Duration("tail", d.Tail, "how long the load without faults lasts, after the memory baseline")
	clients := fs.Int("clients", d.Clients, "concurrent clients")
	kills := fs.Int("module-kills", d.ModuleKills, "kill -9 of the module process")
	restarts := fs.Int("host-restarts", d.HostRestarts, "SIGTERM and restart of the host")
	escapes := fs.Int("escapes", d.Escapes, "commands whose daemon escapes with setsid")
	disk := fs.Duration("disk-full", d.DiskFull, "how long the work_dir stays full (0: skip)")
	race := fs.Bool("race", d.Race, "build the host and the module with -race")
	bins := fs.String("bins", "", "use modhost and remote-execute from this directory instead of building them")
	dir := fs.String("dir", "", "parent directory of the run's files (default $TMPDIR)")
	jsonPath := fs.String("json", "", "write the JSON summary to this file")
	keep := fs.Bool("keep", false, "keep the run's directory (host.log, work_dir)")
	quiet := fs.Bool("q", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	cfg := d
	if *short {
		cfg = shortConfig()
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["duration"] {
		cfg.FaultPhase = *faults
	}
	if set["tail"] {
		cfg.Tail = *tail
	}
	if set["clients"] {
		cfg.Clients = *clients
	}
	if set["module-kills"] {
		cfg.ModuleKills = *kills
	}
	if set["host-restarts"] {
		cfg.HostRestarts = *restarts
	}
	if set["escapes"] {
		cfg.Escapes = *escapes
	}
	if set["disk-full"] {
		cfg.DiskFull = *disk
	}
	if set["race"] {
		cfg.Race = *race
	}
	cfg.Seed, cfg.Bins, cfg.Dir, cfg.JSON, cfg.Keep = *seed, *bins, *dir, *jsonPath, *keep
	if !*quiet {
		cfg.Log = os.Stderr
	}
	return cfg, nil
}
