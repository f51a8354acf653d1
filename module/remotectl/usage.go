package main

// Exit codes, after sysexits(3) and timeout(1).
const (
	exitOK          = 0
	exitFailure     = 1   // a request the agent refused (400, 409, ...) or an unexpected answer
	exitUsage       = 2   // bad command line
	exitLost        = 70  // the task was lost (its module died while it ran)
	exitUnreachable = 69  // the agent could not be reached, or the module is not loaded on it
	exitTempFail    = 75  // the module is restarting (503) or busy (429): retry
	exitNoPerm      = 77  // 401 or 403: credentials rejected, or denied by an ACL
	exitTimeout     = 124 // the remote command timed out
	exitNotStarted  = 127 // the remote command could not start
	exitSignalBase  = 128 // + the signal number, when the remote command was killed by a signal
	exitInterrupted = 130 // remotectl itself got SIGINT or SIGTERM (128 + SIGINT, as shells report it)
)

const usageText = `remotectl runs commands on Mesos agents through the remote-execute module.

Usage:
  remotectl [connection flags] COMMAND [flags] [ARGS]

Commands:
  run [flags] -- CMD [ARGS...]   start a command, stream its stdout and stderr live, exit with its code
      --shell                    run CMD with /bin/sh -c
      --timeout 30s              kill the command after this long
      --grace 0s                 SIGTERM-to-SIGKILL grace period (0: the module's default)
      --env K=V                  set an environment variable (repeatable)
      --cwd DIR, --user USER     working directory and user on the agent
      --stdin FILE|-             send FILE (or remotectl's stdin) as the command's stdin
      --label k=v                label the task (repeatable)
      --idempotency-key KEY      a retry with the same key returns the first task, starting nothing
      --detach                   print the task id and return 0 at once
      --max-concurrency N|N%     with several agents: run on at most N at a time (default 10)
      --max-errors N|N%          with several agents: failures tolerated before no new agent is
                                 started (default 0: stop at the first failure)
  ps [--state S] [--label k=v]   list tasks: ID STATE PID EXIT AGE COMMAND
  get ID                         show a task
  logs [-f] [--stderr] ID        print a task's stdout (or stderr); -f follows until the task ends
  kill [--signal S] ID           kill a task (SIGTERM, then SIGKILL after its grace), or send S to its group
  wait ID                        wait for a task to end and exit with its code, as run does
  status                         the module's status and task counts
  policy check [run flags] -- CMD [ARGS...]
                                 ask whether the agent's ACLs allow running CMD; runs nothing
  audit verify [--host-log LOG] FILE
                                 check the hash chain of a module's audit.jsonl (a local file);
                                 with the host's log, that no line is missing from its end

Connection flags (before or after the command):
  --agent HOST:PORT|URL          the agent (env REMOTECTL_AGENT; default 127.0.0.1:5051)
  --agents A,B,...|@FILE         several agents (FILE: one per line, # comments); run only
  --master URL                   discover the agents from a Mesos master (GET_AGENTS); run only
  --agent-filter [NAME=]REGEX    keep the agents whose hostname (or, discovered with --master,
                                 attribute NAME) matches REGEX whole; repeatable, all must match
  --principal P, --secret S      HTTP basic credentials (env REMOTECTL_PRINCIPAL, REMOTECTL_SECRET)
  --credentials FILE             Mesos credentials JSON: the first entry, or the one named by --principal
  --ca FILE, --cert FILE, --key FILE
                                 HTTPS: the agent's CA, and a client certificate
  --json                         machine output: one JSON object or array

With several agents every output line is prefixed "host:port: ", a summary
table (AGENT STATE EXIT DURATION) goes to stderr, and --json prints one
object per agent. An agent fails when its command exits non-zero or cannot
run; once failures exceed --max-errors (N%: of the agents, rounded down) no
new agent is started, running ones finish, and the rest are reported
skipped. --max-concurrency N% is of the agents, rounded up.

Exit codes (run, wait):
  0      the command exited 0 (with several agents: all did)
  N      the command exited N (with several agents: the first non-zero code
         in agent order, an agent's error code included)
  124    the command timed out
  127    the command could not start
  128+N  the command was killed by signal N (kill: 143)
  70     the task was lost: its module died while it ran
Exit codes (any command):
  1      the agent refused the request, or answered unexpectedly
  2      usage error
  69     the agent is unreachable, or the remote module is not loaded on it
  75     the module is restarting or busy: retry
  77     401 credentials rejected, or 403 denied by an ACL (policy check: denied)
  130    interrupted (run kills its task first)

A progress line is drawn on stderr while waiting (wait, run --json, runs on
several agents) when stderr is a terminal.
`
