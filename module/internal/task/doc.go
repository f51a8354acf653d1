// Package task runs one command as a supervised process group and spools
// its output to disk. It knows processes and files only.
//
// # Obligations
//
// Start either returns a running *Task or a *StartError and then nothing was
// started: no process, no zombie, no open descriptor. The working directory,
// the user and the executable are checked before forking; an exec failure
// is mapped to the same error classes (see ErrNotFound and its siblings).
// Prepare makes those checks alone, so that a service that queues a task
// can refuse it at once; Prepared.Start then fails only for what changed
// since, or what only exec can tell.
//
// Every command runs in a session and process group of its own (Setsid)
// with Pdeathsig=SIGKILL. The package owns the whole group from Start
// until the task has ended: when the leader exits, for whatever reason, every process
// still in its group is sent SIGKILL before the leader is reaped (so the
// group id cannot have been reused by then). Timeout and Kill send SIGTERM to
// the group, wait Spec.Grace, then send SIGKILL to the group. The caller
// never needs to kill or reap anything itself; it only has to keep the
// spool directory as long as it wants to read the output.
//
// Done means: the leader has been reaped, SIGKILL was sent to what remained
// of its group, and both output streams are complete. A group member that
// closed its stdout and stderr may take a moment longer to die (SIGKILL is
// delivered asynchronously). Pdeathsig is tied by Linux to the thread that
// forked, which the Go runtime keeps alive; it kills only the leader, so
// a service that may die (kill -9) gives its tasks a Sentinel: a helper
// process that outlives it and SIGKILLs every group it was told about
// once the service is gone. KillGroup (with Pgid and StartTicks saved by
// the caller) is the way to clean up after a restart too.
//
// What leaves the group (setsid, or setpgid to a group of its own) is
// beyond the group kill and the Sentinel's. A service gives its tasks a
// Reaper for that: it makes the service a child subreaper, so that such a
// process becomes the service's child once its parent dies, and kills it.
// With a Reaper, Done also means that no descendant of the command is
// left running (see Reaper for how it tells them from other children,
// and for what it cannot do once the service itself is gone).
//
// # Resource usage
//
// Result.MaxRSS is the command's peak resident set only when it can be
// told apart from the service's: Linux folds the forking process's memory
// into the child's maximum RSS at exec, so a small command's ru_maxrss is
// the service's size. Result.MaxRSSBound is the kernel's figure.
//
// Output is read by the package itself from pipes, not by os/exec, so a
// process that escapes the group (setsid) while holding stdout cannot make
// Wait hang: after the leader is reaped the readers get Spec.Drain to reach
// end of file, then the pipes are closed and Result.OutputCut says so.
// With a Reaper such a process is killed at the end instead, and
// Result.OutputCut says so too.
//
// # Blocking
//
// Start blocks only for the fork and exec. Wait blocks until Done or until
// its context ends; with a Reaper, Done waits for the escapees killed at
// the end to die (for one stuck in the kernel, at most 2s a round). Kill and Signal never block. Output.ReadAt never blocks
// on the command; followers wait on Output.Changed.
//
// # Safe to call twice
//
// Wait may be called any number of times, concurrently; every call returns
// the same Result. Kill may be called any number of times, before or after
// the end; only the first call before the end has an effect. Signal returns
// ErrEnded once the leader has exited. A finished Task holds no process and
// no file descriptor, so there is nothing to close.
//
// # Spool
//
// Nothing is written for a silent stream: the spool directory and files
// are made at a stream's first byte. Each stream is stored as <name>.head (the first MaxOutput/4 bytes),
// <name>.tail0 and <name>.tail1 (the most recent bytes, in two alternating
// chunks of MaxOutput*3/8) and <name>.meta (JSON, replaced atomically at each
// rotation and at the end). The spool stays readable with OpenOutput after
// the writing service was killed mid-stream.
package task
