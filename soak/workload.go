package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/execmod/execmod/module/client"
)

// kind is a class of command in the mix.
type kind string

const (
	kFast       kind = "fast"        // true
	kOutput     kind = "output"      // awk prints N known lines
	kZeros      kind = "zeros"       // head -c N /dev/zero | tr '\0' x
	kBig        kind = "big"         // more than max_output_bytes: head and tail kept
	kSlow       kind = "slow"        // sleep
	kFail       kind = "fail"        // exit N with a known stderr
	kTimeout    kind = "timeout"     // sleep past its timeout: SIGTERM
	kStubborn   kind = "stubborn"    // ignores SIGTERM past its timeout: SIGKILL after the grace
	kKillDelete kind = "kill-delete" // DELETE mid-run
	kKillSignal kind = "kill-signal" // POST /signal mid-run
	kPipeline   kind = "pipeline"    // seq | awk, and a forked child waited for
	kSeed       kind = "seed"        // POST /execute, Mesos CommandInfo form
	kEscape     kind = "escape"      // forks a daemon that leaves its group with setsid
)

// weights is the mix the clients draw from (kEscape is a fault, not load).
var weights = []struct {
	k kind
	w int
}{
	{kFast, 14}, {kOutput, 10}, {kZeros, 5}, {kBig, 3}, {kSlow, 12}, {kFail, 10}, {kTimeout, 5},
	{kStubborn, 3}, {kKillDelete, 6}, {kKillSignal, 6}, {kPipeline, 10}, {kSeed, 6},
}

// job is one command to submit and what it must come to.
type job struct {
	Kind kind
	Body map[string]any // POST /remote/tasks (or /remote/execute for kSeed)
	// What the command does if nothing interferes.
	Want want
	// Kill: after KillAfter, DELETE (Signal "") or POST /signal Signal.
	KillAfter time.Duration
	Signal    string
	Follow    bool // read stdout with follow=true while it runs
}

// want is a task's natural outcome.
type want struct {
	State     string
	ExitCode  int
	Signal    string // for signaled outcomes
	TimedOut  bool
	Escalated bool
	Stdout    []byte // exact bytes the command writes
	Stderr    string
	OutputCut bool // a daemon holds stdout open: the output is cut
}

// lineGen is the output of awk 'BEGIN{for(i=0;i<n;i++)printf "%07d %s\n", i, tag}'.
func lineGen(n int, tag string) []byte {
	var b bytes.Buffer
	b.Grow(n * (9 + len(tag)))
	for i := range n {
		fmt.Fprintf(&b, "%07d %s\n", i, tag)
	}
	return b.Bytes()
}

func awkLines(n int, tag string) string {
	return fmt.Sprintf(`awk 'BEGIN{for(i=0;i<%d;i++)printf "%%07d %%s\n", i, "%s"}'`, n, tag)
}

// newJob draws a job of kind k. env carries the run's marker.
func newJob(k kind, r *rand.Rand, env map[string]string, labels map[string]string, maxOutput int) *job {
	j := &job{Kind: k, Want: want{State: client.StateExited}}
	body := map[string]any{"env": env, "labels": labels}
	sh := func(cmd string) { body["command"], body["shell"] = cmd, true }
	switch k {
	case kFast:
		body["command"] = "true"
	case kOutput:
		n := 1 + r.IntN(6000) // up to ~100 KB: more than the 64 KiB inline
		tag := randTag(r)
		sh(awkLines(n, tag))
		j.Want.Stdout = lineGen(n, tag)
		j.Follow = r.IntN(3) == 0
	case kZeros:
		n := 1 + r.IntN(200_000)
		sh(fmt.Sprintf(`head -c %d /dev/zero | tr '\0' x`, n))
		j.Want.Stdout = bytes.Repeat([]byte("x"), n)
		j.Follow = r.IntN(3) == 0
	case kBig:
		tag := randTag(r)
		n := (maxOutput*2 + r.IntN(maxOutput)) / (9 + len(tag))
		sh(awkLines(n, tag))
		j.Want.Stdout = lineGen(n, tag)
	case kSlow:
		ms := 200 + r.IntN(1300)
		body["command"], body["arguments"] = "sleep", []string{fmt.Sprintf("%d.%03d", ms/1000, ms%1000)}
	case kFail:
		code := 1 + r.IntN(125)
		sh(fmt.Sprintf(`echo "soak fail %d" >&2; exit %d`, code, code))
		j.Want.ExitCode, j.Want.Stderr = code, fmt.Sprintf("soak fail %d\n", code)
	case kTimeout:
		body["command"], body["arguments"] = "sleep", []string{"30"}
		body["timeout"] = fmt.Sprintf("%dms", 300+r.IntN(700))
		j.Want = want{State: client.StateTimedOut, ExitCode: 15, Signal: "SIGTERM", TimedOut: true}
	case kStubborn:
		// Ignored signals stay ignored across exec: the whole group
		// ignores SIGTERM and needs the SIGKILL after the grace period.
		sh(`trap '' TERM; sleep 30; echo never`)
		body["timeout"], body["grace"] = fmt.Sprintf("%dms", 200+r.IntN(500)), "300ms"
		j.Want = want{State: client.StateTimedOut, ExitCode: 9, Signal: "SIGKILL", TimedOut: true, Escalated: true}
	case kKillDelete:
		body["command"], body["arguments"], body["timeout"] = "sleep", []string{"30"}, "8s"
		j.KillAfter = time.Duration(50+r.IntN(700)) * time.Millisecond
		j.Want = want{State: client.StateKilled, ExitCode: 15, Signal: "SIGTERM"}
	case kKillSignal:
		body["command"], body["arguments"], body["timeout"] = "sleep", []string{"30"}, "8s"
		j.KillAfter = time.Duration(50+r.IntN(700)) * time.Millisecond
		sigs := []struct {
			name string
			num  int
		}{{"SIGTERM", 15}, {"SIGINT", 2}, {"SIGKILL", 9}, {"SIGHUP", 1}, {"SIGUSR1", 10}}
		s := sigs[r.IntN(len(sigs))]
		j.Signal = s.name
		j.Want = want{State: client.StateSignaled, ExitCode: s.num, Signal: s.name}
	case kPipeline:
		n := 1 + r.IntN(50_000)
		sh(fmt.Sprintf(`s=$(seq 1 %d | awk '{s+=$1} END {printf "%%d", s}' | tr -d ' '); (echo "child $s") & wait; echo "sum $s" | cat`, n))
		s := n * (n + 1) / 2
		j.Want.Stdout = fmt.Appendf(nil, "child %d\nsum %d\n", s, s)
	case kSeed:
		// The seed's route, with the Mesos CommandInfo form (it has an
		// environment; the seed form has none).
		n := 1 + r.IntN(300)
		tag := randTag(r)
		vars := []map[string]string{}
		for k, v := range env {
			vars = append(vars, map[string]string{"name": k, "value": v})
		}
		body = map[string]any{"value": awkLines(n, tag), "shell": true, "environment": map[string]any{"variables": vars}}
		j.Want.Stdout = lineGen(n, tag)
	case kEscape:
		// The command waits until the daemon leads its own session (field
		// 6 of /proc/PID/stat is the session id), so that it has left the
		// process group before the group is killed at the command's end:
		// otherwise whether it escapes is a race.
		const escaped = `d=$!; i=0; while [ "$(cut -d' ' -f6 /proc/$d/stat 2>/dev/null)" != "$d" ] && [ $i -lt 100000 ]; do i=$((i+1)); done; echo spawned`
		if r.IntN(2) == 0 {
			// A well-behaved daemon: it detaches from the output too.
			sh(`setsid sleep 3600 </dev/null >/dev/null 2>&1 & ` + escaped)
		} else {
			// One that keeps the task's stdout open: the output is cut.
			sh(`setsid sleep 3600 & ` + escaped)
			j.Want.OutputCut = true
		}
		j.Want.Stdout = []byte("spawned\n")
	}
	j.Body = body
	return j
}

func randTag(r *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 4+r.IntN(24))
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

func drawKind(r *rand.Rand) kind {
	total := 0
	for _, w := range weights {
		total += w.w
	}
	n := r.IntN(total)
	for _, w := range weights {
		if n < w.w {
			return w.k
		}
		n -= w.w
	}
	return kFast
}

// storedView is what max_output_bytes keeps of out: the raw stream with
// [from, to) dropped.
// storedView is out without the dropped [from, to) ranges (in order, as
// the module reports them: the middle the cap dropped, and what a failed
// store lost).
func storedView(out []byte, dropped [][2]int64) []byte {
	if len(dropped) == 0 {
		return out
	}
	var kept []byte
	at := int64(0)
	for _, d := range dropped {
		from, to := min(max(d[0], at), int64(len(out))), min(d[1], int64(len(out)))
		kept = append(kept, out[at:from]...)
		at = max(at, to)
	}
	return append(kept, out[at:]...)
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// natural checks t, a final task, against the job's natural outcome, with
// stdout the raw stored bytes; "" means it matches.
func (j *job) natural(t *client.Task, stdout []byte) string {
	w := j.Want
	var bad []string
	if t.State != w.State {
		return fmt.Sprintf("state %s, want %s", t.State, w.State)
	}
	res := t.Result
	if res == nil {
		if w.State == client.StateKilled && t.Pid == 0 {
			return "" // killed while queued: it never ran
		}
		return fmt.Sprintf("state %s without a result", t.State)
	}
	signaled := w.Signal != ""
	if res.ExitCode != w.ExitCode {
		bad = append(bad, fmt.Sprintf("exitCode %d, want %d", res.ExitCode, w.ExitCode))
	}
	if res.Signaled != signaled || signaled && res.Signal != w.Signal {
		// A kill's SIGTERM may be escalated to SIGKILL on a loaded machine
		// only after the grace period (1s): sleep dies on SIGTERM at once.
		bad = append(bad, fmt.Sprintf("signaled %v %s, want %v %s", res.Signaled, res.Signal, signaled, w.Signal))
	}
	if res.TimedOut != w.TimedOut {
		bad = append(bad, fmt.Sprintf("timedOut %v, want %v", res.TimedOut, w.TimedOut))
	}
	if w.Escalated && !res.KillEscalated {
		bad = append(bad, "killEscalated false, want true")
	}
	if res.Killed != (w.State == client.StateKilled) {
		bad = append(bad, fmt.Sprintf("killed %v", res.Killed))
	}
	if res.OutputCut != w.OutputCut {
		bad = append(bad, fmt.Sprintf("outputCut %v, want %v", res.OutputCut, w.OutputCut))
	}
	bad = append(bad, checkStream("stdout", t.Stdout, stdout, w.Stdout)...)
	var stderr []byte
	if t.Stderr != nil {
		stderr, _ = t.Stderr.Bytes()
	}
	if w.Stderr != "" || stderr != nil {
		bad = append(bad, checkStream("stderr", t.Stderr, stderr, []byte(w.Stderr))...)
	}
	return strings.Join(bad, "; ")
}

// checkStream compares what the API reports of a stream (s, and got, the
// raw stored bytes) with what the command wrote.
func checkStream(name string, s *client.Stream, got, wrote []byte) []string {
	var total int64
	var dropped [][2]int64
	if s != nil {
		total, dropped = s.TotalBytes, s.DroppedRanges
		if len(dropped) == 0 && s.DroppedRange != nil { // a module from before droppedRanges
			dropped = [][2]int64{*s.DroppedRange}
		}
	}
	var bad []string
	if total != int64(len(wrote)) {
		bad = append(bad, fmt.Sprintf("%s totalBytes %d, the command wrote %d", name, total, len(wrote)))
	}
	if want := storedView(wrote, dropped); !bytes.Equal(got, want) {
		bad = append(bad, fmt.Sprintf("%s: %d bytes stored (sha %s), want %d (sha %s)", name, len(got), sum(got), len(want), sum(want)))
	}
	return bad
}
