package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/execmod/execmod/module/client"
)

// recheck is one re-read, after a restart, of every result seen before it.
type recheck struct {
	After    string   `json:"after"`
	AtS      float64  `json:"at_s"`
	Checked  int      `json:"checked"`
	Differ   int      `json:"differ"`
	Missing  int      `json:"missing"`
	Examples []string `json:"examples,omitempty"`
}

// listAll reads GET /remote/tasks page by page: id -> the task's JSON.
func (s *soak) listAll(ctx context.Context) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	cursor := ""
	for tries := 0; ; {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		rep, err := s.api.do(ctx, 30*time.Second, http.MethodGet, "/remote/tasks?"+q.Encode(), nil)
		if retryable(rep, err) {
			if tries++; tries > 100 || !pause(ctx, 200*time.Millisecond) {
				return nil, fmt.Errorf("listing tasks: %v (status %d)", err, rep.Status)
			}
			continue
		}
		if rep.Status != http.StatusOK {
			return nil, fmt.Errorf("listing tasks: %d %.200s", rep.Status, rep.Body)
		}
		var page struct {
			Tasks []json.RawMessage `json:"tasks"`
			Next  string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(rep.Body, &page); err != nil {
			return nil, fmt.Errorf("listing tasks: %w", err)
		}
		for _, raw := range page.Tasks {
			var id struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &id)
			out[id.ID] = raw
		}
		if page.Next == "" || len(page.Tasks) == 0 {
			return out, nil
		}
		cursor = page.Next
	}
}

// fieldDiff names the top-level fields in which two task JSONs differ.
func fieldDiff(a, b []byte) string {
	var ma, mb map[string]any
	_ = json.Unmarshal(a, &ma)
	_ = json.Unmarshal(b, &mb)
	var diffs []string
	// What a reader wants first: the state, the error, the result.
	keys := slices.SortedFunc(maps.Keys(ma), func(a, b string) int {
		rank := func(k string) int { return max(0, 3-slices.Index([]string{"result", "error", "state"}, k)) }
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		ja, _ := json.Marshal(ma[k])
		jb, _ := json.Marshal(mb[k])
		if !bytes.Equal(ja, jb) {
			diffs = append(diffs, fmt.Sprintf("%s %s -> %s", k, trunc(ja, 120), trunc(jb, 120)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(mb)) {
		if _, ok := ma[k]; !ok {
			jb, _ := json.Marshal(mb[k])
			diffs = append(diffs, fmt.Sprintf("%s (new) %s", k, trunc(jb, 120)))
		}
	}
	return strings.Join(diffs, "; ")
}

func trunc(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// recheckAll compares every result seen final before since with what the
// module lists now.
func (s *soak) recheckAll(ctx context.Context, why string, since time.Time) {
	rc := recheck{After: why, AtS: time.Since(s.start).Seconds()}
	listed, err := s.listAll(ctx)
	if err != nil {
		s.noteProblem("re-check after %s: %v", why, err)
		return
	}
	for _, tr := range s.tasks.list() {
		tr.mu.Lock()
		final, digest, raw, id, purged := tr.Final, tr.DigestNoO, tr.Raw, tr.ID, tr.Purged
		finalAt := tr.FinalAt
		tr.mu.Unlock()
		if final == nil || purged || !finalAt.Before(since) {
			continue
		}
		rc.Checked++
		now, ok := listed[id]
		if !ok {
			rc.Missing++
			rc.Examples = appendMax(rc.Examples, fmt.Sprintf("%s (%s, was %s) is no longer listed", id, tr.Job.Kind, final.State))
			continue
		}
		if _, d, _ := digests(now); d != digest {
			rc.Differ++
			_, _, stripped := digests(now)
			rc.Examples = appendMax(rc.Examples, fmt.Sprintf("%s (%s): %s", id, tr.Job.Kind, fieldDiff(raw, stripped)))
		}
	}
	s.mu.Lock()
	s.rechecks = append(s.rechecks, rc)
	s.mu.Unlock()
	s.logf("re-check after %s: %d results, %d differ, %d missing", why, rc.Checked, rc.Differ, rc.Missing)
}

func appendMax(list []string, s string) []string {
	if len(list) < 10 {
		return append(list, s)
	}
	return list
}

// procSnap is a process's memory and descriptors at one moment.
type procSnap struct {
	Pid    int      `json:"pid"`
	RSSKiB int64    `json:"rss_kib"`
	Fds    fdReport `json:"fds"`
}

type memPair struct {
	Base     procSnap `json:"baseline"`
	End      procSnap `json:"end"`
	PeakKiB  int64    `json:"peak_kib"`
	LimitKiB int64    `json:"limit_kib"`
	OK       bool     `json:"ok"`
}

type memory struct {
	Host   memPair `json:"host"`
	Module memPair `json:"module"`
}

// rssSlack is how far above its baseline a process's RSS may end: a Go
// heap grown by the load is returned to the system lazily, and the module
// keeps every finished task's record in memory by design.
func rssLimit(base int64) int64 { return base + max(base/2, 48<<10) }

// measure snapshots the current host and module, the soak's idle
// connections closed first (they are the soak's, not a leak).
func (s *soak) measure() (host, module procSnap) {
	s.api.tr.CloseIdleConnections()
	h := s.currentHost()
	dirs := []string{s.work, s.bins}
	socks := unixSocketPaths()
	snap := func(pid int) procSnap {
		return procSnap{Pid: pid, RSSKiB: rssKiB(pid), Fds: inspectFds(pid, dirs, socks)}
	}
	return snap(h.pid()), snap(h.module())
}

// fdGrowthOK: a process holds no more descriptors after the load than a
// few above its baseline (the soak's monitor may hold a connection).
func fdGrowthOK(m memPair) bool { return m.Base.Pid == 0 || m.End.Fds.Total <= m.Base.Fds.Total+4 }

// idleCheck is what the soak found with the load over and the host up.
type idleCheck struct {
	Leftovers []seenProc `json:"leftovers,omitempty"` // marked processes alive although no task runs
	Zombies   []string   `json:"zombies,omitempty"`   // zombie children of the host or the module
	Running   int        `json:"running"`             // tasks the module still reports running or queued
}

func (s *soak) idleChecks(ctx context.Context) {
	h := s.currentHost()
	listed, err := s.listAll(ctx)
	if err != nil {
		s.noteProblem("idle check: %v", err)
	}
	for _, raw := range listed {
		var t client.Task
		if json.Unmarshal(raw, &t) == nil && !t.Final() {
			s.idle.Running++
		}
	}
	s.idle.Leftovers = s.procs.scan()
	for _, z := range zombieChildren(h.pid(), h.module()) {
		s.idle.Zombies = append(s.idle.Zombies, fmt.Sprintf("pid %d (%s), parent %d", z.Pid, z.Comm, z.PPid))
	}
	// The heap shrinks when the Go scavenger gets to it: give it a few
	// seconds to come back under the limit (measuring, not synchronising).
	s.mem.Host.LimitKiB, s.mem.Module.LimitKiB = rssLimit(s.mem.Host.Base.RSSKiB), rssLimit(s.mem.Module.Base.RSSKiB)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mem.Host.End, s.mem.Module.End = s.measure()
		s.mem.Host.OK = s.mem.Host.End.RSSKiB <= s.mem.Host.LimitKiB
		s.mem.Module.OK = s.mem.Module.End.RSSKiB <= s.mem.Module.LimitKiB
		fdsOK := fdGrowthOK(s.mem.Host) && fdGrowthOK(s.mem.Module)
		if s.mem.Host.OK && s.mem.Module.OK && fdsOK || time.Now().After(deadline) || !pause(ctx, 500*time.Millisecond) {
			break
		}
	}
	s.mu.Lock()
	s.mem.Host.PeakKiB, s.mem.Module.PeakKiB = s.peak.host, s.peak.module
	s.mu.Unlock()
	s.logf("idle: host %d KiB (base %d), module %d KiB (base %d); %d marked processes alive", s.mem.Host.End.RSSKiB,
		s.mem.Host.Base.RSSKiB, s.mem.Module.End.RSSKiB, s.mem.Module.Base.RSSKiB, len(s.idle.Leftovers))
}

// finalCheck is what the soak found after the final restart and stop.
type finalCheck struct {
	FullChecked int      `json:"full_checked"`
	FullDiffer  int      `json:"full_differ"`
	FullMissing int      `json:"full_missing"`
	FullExample []string `json:"full_examples,omitempty"`
	Unacked     int      `json:"unacknowledged_found"` // tasks in the module the soak never got an answer for
	UnackedLive int      `json:"unacknowledged_not_final"`

	Leftovers  []string `json:"leftovers,omitempty"` // processes alive after the host stopped
	Zombies    []string `json:"zombies,omitempty"`
	StrayFiles []string `json:"stray_files,omitempty"` // in the host's TMPDIR and HOME
}

// fullPass reads every result again in full (GET and raw stdout) and
// compares it with the first answer.
func (s *soak) fullPass(ctx context.Context) {
	listed, err := s.listAll(ctx)
	if err != nil {
		s.noteProblem("full pass: %v", err)
	}
	known := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, tr := range s.tasks.list() {
		tr.mu.Lock()
		final, digest, id, purged, stdout := tr.Final, tr.Digest, tr.ID, tr.Purged, tr.Stdout
		tr.mu.Unlock()
		known[id] = true
		if final == nil || purged {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var why string
			missing := false
			for tries := 0; ; tries++ {
				t, raw, code, err := s.getTask(ctx, id, 0)
				if (err != nil || code >= 500) && tries < 20 && pause(ctx, 200*time.Millisecond) {
					continue
				}
				switch {
				case err != nil:
					why = err.Error()
				case code == http.StatusNotFound:
					missing = true
				case code != http.StatusOK:
					why = fmt.Sprintf("status %d", code)
				default:
					if d, _, _ := digests(raw); d != digest {
						why = "the task's JSON differs"
						tr.mu.Lock()
						_, _, stripped := digests(raw)
						why += ": " + fieldDiff(tr.Raw, stripped)
						tr.mu.Unlock()
					} else if t.Stdout != nil && !t.Stdout.TextComplete {
						b, err := s.readStream(ctx, id, "stdout")
						if err != nil || !bytes.Equal(b, stdout) {
							why = fmt.Sprintf("raw stdout differs (%d bytes, sha %s; was %d, sha %s; %v)", len(b), sum(b), len(stdout), sum(stdout), err)
						}
					}
				}
				break
			}
			mu.Lock()
			defer mu.Unlock()
			s.final.FullChecked++
			switch {
			case missing:
				s.final.FullMissing++
				s.final.FullExample = appendMax(s.final.FullExample, fmt.Sprintf("%s (%s, was %s) is gone", id, tr.Job.Kind, final.State))
			case why != "":
				s.final.FullDiffer++
				s.final.FullExample = appendMax(s.final.FullExample, fmt.Sprintf("%s (%s): %s", id, tr.Job.Kind, why))
			}
		})
	}
	wg.Wait()
	for id, raw := range listed {
		if known[id] {
			continue
		}
		s.final.Unacked++
		var t client.Task
		if json.Unmarshal(raw, &t) == nil && !t.Final() {
			s.final.UnackedLive++
		}
	}
	s.logf("full pass: %d results, %d differ, %d missing; %d tasks the soak never saw acknowledged", s.final.FullChecked,
		s.final.FullDiffer, s.final.FullMissing, s.final.Unacked)
}

// finalChecks walks /proc after the host has stopped.
func (s *soak) finalChecks() {
	for _, p := range s.procs.scan() {
		st, _ := readProc(p.Pid)
		how := ""
		if st.Session == p.Pid {
			how = ", a session leader (setsid)"
		}
		s.final.Leftovers = append(s.final.Leftovers, fmt.Sprintf("pid %d %q still running (parent %d%s)", p.Pid, p.Cmdline, st.PPid, how))
	}
	for _, pid := range allPids() {
		if exe := exePath(pid); exe == s.modhost || exe == s.module {
			s.final.Leftovers = append(s.final.Leftovers, fmt.Sprintf("pid %d %s still running after the host stopped", pid, exe))
		}
	}
	for _, z := range s.procs.zombies() {
		s.final.Zombies = append(s.final.Zombies, fmt.Sprintf("pid %d %q is a zombie", z.Pid, z.Cmdline))
	}
	for _, z := range zombieChildren(os.Getpid()) {
		s.final.Zombies = append(s.final.Zombies, fmt.Sprintf("pid %d (%s) is a zombie child of the soak", z.Pid, z.Comm))
	}
	for _, d := range []string{s.tmp, s.home} {
		for _, e := range dirEntries(d) {
			s.final.StrayFiles = append(s.final.StrayFiles, d+"/"+e)
		}
	}
	// go-plugin's default socket directory is $TMPDIR: a module socket
	// outside work_dir would be there, or listed in /proc/net/unix.
	for _, p := range unixSocketPaths() {
		if strings.HasPrefix(p, s.root+"/") && !strings.HasPrefix(p, s.work+"/") {
			s.final.StrayFiles = append(s.final.StrayFiles, "socket "+p)
		}
	}
}

// invariant is one checked promise.
type invariant struct {
	Name       string         `json:"name"`
	OK         bool           `json:"ok"`
	Count      int            `json:"count"`
	Detail     string         `json:"detail"`
	Violations int            `json:"violations"`
	Classes    map[string]int `json:"violations_by_class,omitempty"`
	Examples   []string       `json:"examples,omitempty"`
}

// violate records a violation of class; the first three of each class
// are kept as examples.
func (iv *invariant) violate(class, format string, args ...any) {
	iv.Violations++
	if iv.Classes == nil {
		iv.Classes = map[string]int{}
	}
	iv.Classes[class]++
	if iv.Classes[class] <= 3 {
		iv.Examples = append(iv.Examples, class+": "+fmt.Sprintf(format, args...))
	}
}

// Summary is the run's machine-readable result.
type Summary struct {
	OK         bool           `json:"ok"`
	Seed       int64          `json:"seed"`
	Marker     string         `json:"marker"`
	DurationS  float64        `json:"duration_s"`
	Config     map[string]any `json:"config"`
	Load       map[string]any `json:"load"`
	Faults     []window       `json:"faults"`
	DiskFull   string         `json:"disk_full"`
	Invariants []invariant    `json:"invariants"`
	Rechecks   []recheck      `json:"rechecks"`
	Memory     memory         `json:"memory"`
	Idle       idleCheck      `json:"idle"`
	Final      finalCheck     `json:"final"`
	HTTP       map[string]int `json:"http_status"`
	Problems   []string       `json:"harness_problems,omitempty"`
}

func (s *soak) summarize() *Summary {
	sum := &Summary{Seed: s.cfg.Seed, Marker: s.marker, DurationS: time.Since(s.start).Seconds(), Faults: s.ev.list(),
		Rechecks: s.rechecks, Memory: s.mem, Idle: s.idle, Final: s.final, Problems: s.problems}
	sum.Config = map[string]any{
		"fault_phase_s": s.cfg.FaultPhase.Seconds(), "tail_s": s.cfg.Tail.Seconds(), "clients": s.cfg.Clients,
		"module_kills": s.cfg.ModuleKills, "host_restarts": s.cfg.HostRestarts, "escapes": s.cfg.Escapes,
		"disk_full_s": s.cfg.DiskFull.Seconds(), "max_concurrent": s.cfg.MaxConcurrent, "max_queued": s.cfg.MaxQueued,
		"max_output_bytes": s.cfg.MaxOutput, "race": s.cfg.Race, "work_dir_tmpfs": s.tmpfs,
	}
	sum.DiskFull = "done"
	if s.diskSkip != "" {
		sum.DiskFull = "skipped: " + s.diskSkip
	}
	tasks := s.tasks.list()
	st := &s.tasks.stats
	byKind, byState := map[string]int{}, map[string]int{}
	for _, tr := range tasks {
		byKind[string(tr.Job.Kind)]++
		tr.mu.Lock()
		if tr.Final != nil {
			byState[tr.Final.State]++
		}
		tr.mu.Unlock()
	}
	sum.Load = map[string]any{
		"acknowledged": len(tasks), "post_attempts": st.Attempts.Load(), "rejected_429": st.Rejected429.Load(),
		"queued_202": st.Queued202.Load(), "replayed_200": st.Replayed200.Load(), "gave_up": st.GaveUp.Load(),
		"seed_answer_lost": st.SeedUnknown.Load(), "follows": st.Follows.Load(), "follows_cut": st.FollowCut.Load(),
		"by_kind": byKind, "by_state": byState, "marked_processes_seen": s.procs.count(),
	}
	sum.Invariants = []invariant{
		s.checkAccounted(tasks), s.checkStable(), s.checkProcesses(), s.checkHTTP(sum), s.checkMemory(),
		s.checkLogs(), s.checkPreconditions(),
	}
	sum.OK = true
	for _, iv := range sum.Invariants {
		sum.OK = sum.OK && iv.OK
	}
	return sum
}

// checkAccounted: every acknowledged task ended with its natural result,
// or with an outcome a fault explains; none vanished.
func (s *soak) checkAccounted(tasks []*tracked) invariant {
	iv := invariant{Name: "acknowledged tasks accounted for", Count: len(tasks)}
	var matched, lost, hostKilled, diskFailed, purged, notKilled int
	deaths := []string{wModuleKill, wHostRestart}
	for _, tr := range tasks {
		tr.mu.Lock()
		t, stdout, followed := tr.Final, tr.Stdout, tr.Followed
		from, to := tr.SubmitAt, tr.FinalAt
		tr.mu.Unlock()
		j := tr.Job
		name := fmt.Sprintf("%s %s", j.Kind, tr.ID)
		for _, p := range tr.Problems {
			iv.violate("harness could not follow the task", "%s: %s", name, p)
		}
		for _, v := range tr.Vanished {
			iv.violate("vanished (404)", "%s vanished: %s", name, v)
		}
		if tr.Purged {
			purged++
			continue
		}
		if t == nil {
			iv.violate("never seen final", "%s: never seen final (acknowledged %d at +%.1fs)", name, tr.AckStatus, tr.AckAt.Sub(s.start).Seconds())
			continue
		}
		why := j.natural(t, stdout)
		switch {
		case why == "":
			matched++
		case t.State == client.StateLost && s.ev.overlaps(from, to, deaths...):
			lost++
		case t.State == client.StateKilled && j.Want.State != client.StateKilled && s.ev.overlaps(from, to, wHostRestart):
			hostKilled++
		case t.State == client.StateFailedToStart && s.ev.overlaps(from, to, wDiskFull),
			// Unaudited, it is killed: the audit log is on the full disk.
			t.State == client.StateKilled && j.Want.State != client.StateKilled && s.ev.overlaps(from, to, wDiskFull):
			diskFailed++
		case j.KillAfter > 0 && !tr.KillAcked && t.State == client.StateTimedOut && s.ev.overlaps(from, to, deaths...):
			notKilled++ // the kill fell in a fault window and never got through
		default:
			where, class := "", "result differs from what the command did"
			if s.ev.overlaps(from, to, wDiskFull) {
				where, class = " [while the work_dir was full]", class+" (work_dir full)"
			} else if s.ev.overlaps(from, to, deaths...) {
				where = " [across a module or host restart]"
			}
			iv.violate(class, "%s: %s%s (error %q)", name, why, where, t.Error)
		}
		if followed != nil && t.Stdout != nil && !t.Stdout.Truncated && !bytes.Equal(followed, stdout) {
			iv.violate("follow=true read differs from the stored output", "%s: a follow=true read (acknowledged %d: %s) got %d bytes (sha %s), the stored output is %d (sha %s)", name,
				tr.AckStatus, http.StatusText(tr.AckStatus), len(followed), sum(followed), len(stdout), sum(stdout))
		}
	}
	iv.OK = iv.Violations == 0
	iv.Detail = fmt.Sprintf("%d matched what the command did, %d lost in a module/host restart, %d killed by a host stop, "+
		"%d failed to start or killed unaudited on a full disk, %d kills lost in a fault window, %d purged by the soak's own DELETE; %d violations",
		matched, lost, hostKilled, diskFailed, notKilled, purged, iv.Violations)
	return iv
}

func (s *soak) checkStable() invariant {
	iv := invariant{Name: "results identical after every restart"}
	for _, rc := range s.rechecks {
		iv.Count += rc.Checked
		for _, e := range rc.Examples {
			class := "changed after a restart"
			if strings.HasSuffix(e, "is no longer listed") {
				class = "gone after a restart"
			}
			iv.violate(class, "after %s: %s", rc.After, e)
		}
		// Examples are capped at 10 a re-check; count the rest.
		if n := rc.Differ + rc.Missing - len(rc.Examples); n > 0 {
			iv.Violations += n
			iv.Classes["changed or gone after a restart (not shown)"] += n
		}
	}
	f := s.final
	iv.Count += f.FullChecked
	for _, e := range f.FullExample {
		iv.violate("full re-read differs", "%s", e)
	}
	if n := f.FullDiffer + f.FullMissing - len(f.FullExample); n > 0 {
		iv.Violations += n
		iv.Classes["full re-read differs (not shown)"] += n
	}
	iv.OK = iv.Violations == 0
	iv.Detail = fmt.Sprintf("%d re-reads after %d restarts (list form), %d full re-reads with raw stdout after the last; %d differ or missing",
		iv.Count-f.FullChecked, len(s.rechecks), f.FullChecked, iv.Violations)
	return iv
}

func (s *soak) checkProcesses() invariant {
	iv := invariant{Name: "no leftover processes, zombies, sockets or files", Count: s.procs.count()}
	for _, l := range s.final.Leftovers {
		iv.violate("left running after the host stopped", "%s", l)
	}
	for _, l := range s.idle.Leftovers {
		if !slices.ContainsFunc(s.final.Leftovers, func(f string) bool { return strings.HasPrefix(f, fmt.Sprintf("pid %d ", l.Pid)) }) {
			iv.violate("alive with no task running", "with no task running, killed only when the host stopped: pid %d %q", l.Pid, l.Cmdline)
		}
	}
	for _, z := range append(slices.Clone(s.idle.Zombies), s.final.Zombies...) {
		iv.violate("zombie", "%s", z)
	}
	for _, f := range s.final.StrayFiles {
		iv.violate("file or socket outside work_dir", "%s", f)
	}
	for _, p := range []struct {
		name string
		m    memPair
	}{{"host", s.mem.Host}, {"module", s.mem.Module}} {
		for _, o := range p.m.End.Fds.Outside {
			iv.violate("file or socket outside work_dir", "the %s has %s open (outside work_dir)", p.name, o)
		}
		if !fdGrowthOK(p.m) {
			iv.violate("descriptor leak", "the %s's descriptors grew from %d to %d (%d sockets, was %d)", p.name, p.m.Base.Fds.Total,
				p.m.End.Fds.Total, p.m.End.Fds.Sockets, p.m.Base.Fds.Sockets)
		}
	}
	if s.idle.Running > 0 {
		iv.violate("tasks still running", "%d tasks still queued or running after the load", s.idle.Running)
	}
	iv.OK = iv.Violations == 0
	iv.Detail = fmt.Sprintf("%d marked processes seen; %d left running after the host stopped, %d zombies, %d stray files/sockets; fds host %d->%d, module %d->%d",
		iv.Count, len(s.final.Leftovers), len(s.idle.Zombies)+len(s.final.Zombies), len(s.final.StrayFiles),
		s.mem.Host.Base.Fds.Total, s.mem.Host.End.Fds.Total, s.mem.Module.Base.Fds.Total, s.mem.Module.End.Fds.Total)
	return iv
}

// checkHTTP: every request got a valid HTTP answer, except while the host
// was down; no 5xx except 503 while the module or host restarted (and
// disk errors while the disk was full).
func (s *soak) checkHTTP(sum *Summary) invariant {
	all := s.rec.snapshot()
	iv := invariant{Name: "valid HTTP answers; 5xx only while restarting", Count: len(all)}
	sum.HTTP = map[string]int{}
	var inWindow, cut, diskErr int
	restarts := []string{wModuleKill, wHostRestart}
	for _, e := range all {
		key := fmt.Sprint(e.Status)
		if e.Status == 0 {
			key = "no answer"
		}
		sum.HTTP[key]++
		when := fmt.Sprintf("+%.2fs", e.Start.Sub(s.start).Seconds())
		switch {
		case e.Err != "" && s.ev.overlaps(e.Start, e.End, restarts...):
			cut++
		case e.Err != "":
			iv.violate("no valid answer outside a fault window", "%s %s at %s: %s", e.Method, e.Route, when, e.Err)
		case e.Status == http.StatusServiceUnavailable && s.ev.overlaps(e.Start, e.End, restarts...):
			inWindow++
		case e.Status >= 500 && s.ev.overlaps(e.Start, e.End, wDiskFull) && strings.Contains(e.Body, "no space left"):
			diskErr++
		case e.Status >= 500:
			iv.violate(fmt.Sprintf("%d outside a restart window", e.Status), "%s %s at %s: %d outside a restart window: %s", e.Method, e.Route, when, e.Status, strings.TrimSpace(e.Body))
		}
	}
	iv.OK = iv.Violations == 0
	codes := slices.Sorted(maps.Keys(sum.HTTP))
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s:%d", c, sum.HTTP[c]))
	}
	iv.Detail = fmt.Sprintf("%s; in fault windows %d 503s and %d cut or refused, %d disk-full 5xx; %d violations",
		strings.Join(parts, " "), inWindow, cut, diskErr, iv.Violations)
	return iv
}

func (s *soak) checkMemory() invariant {
	iv := invariant{Name: "memory back near baseline", Count: 2}
	for _, p := range []struct {
		name string
		m    memPair
	}{{"host", s.mem.Host}, {"module", s.mem.Module}} {
		if p.m.Base.Pid == 0 {
			iv.violate("no baseline", "no %s baseline was measured", p.name)
		} else if !p.m.OK {
			iv.violate("RSS above the limit", "%s RSS %d KiB after the load, baseline %d KiB, limit %d KiB (peak %d)", p.name,
				p.m.End.RSSKiB, p.m.Base.RSSKiB, p.m.LimitKiB, p.m.PeakKiB)
		}
	}
	iv.OK = iv.Violations == 0
	iv.Detail = fmt.Sprintf("host %d->%d KiB (limit %d), module %d->%d KiB (limit %d); limit = base + max(base/2, 48 MiB)",
		s.mem.Host.Base.RSSKiB, s.mem.Host.End.RSSKiB, s.mem.Host.LimitKiB, s.mem.Module.Base.RSSKiB, s.mem.Module.End.RSSKiB, s.mem.Module.LimitKiB)
	return iv
}

// checkLogs: no race report, no panic, no module crash the soak did not
// cause.
func (s *soak) checkLogs() invariant {
	iv := invariant{Name: "no races, panics or unexplained crashes in the logs"}
	crashes := 0
	s.hostMu.Lock()
	hosts := slices.Clone(s.hosts)
	s.hostMu.Unlock()
	for i, h := range hosts {
		iv.Count += h.logs.len()
		for _, l := range h.logs.grep("WARNING: DATA RACE") {
			iv.violate("race report", "host run %d: %s", i+1, l)
		}
		for _, l := range h.logs.grep("panic") {
			iv.violate("panic", "host run %d: %s", i+1, trunc([]byte(l), 300))
		}
		crashes += len(h.logs.grep("module crashed; restarting"))
		for _, l := range h.logs.grep("module failed") {
			iv.violate("module marked failed", "host run %d: %s", i+1, l)
		}
	}
	if kills := s.ev.count(wModuleKill); crashes != kills {
		iv.violate("unexplained module crash", "%d module crashes logged, %d caused by the soak", crashes, kills)
	}
	for _, p := range s.problems {
		iv.violate("harness problem", "%s", p)
	}
	iv.OK = iv.Violations == 0
	iv.Detail = fmt.Sprintf("%d log lines from %d host runs; %d module crashes, all from kill -9: %v", iv.Count, len(hosts), crashes,
		crashes == s.ev.count(wModuleKill))
	return iv
}

// checkPreconditions: the run did what it claims to test.
func (s *soak) checkPreconditions() invariant {
	iv := invariant{Name: "the load overloaded the module and every fault happened"}
	st := &s.tasks.stats
	if st.Rejected429.Load() == 0 {
		iv.violate("no overload", "no 429: the load never exceeded max_concurrent + max_queued")
	}
	if st.Queued202.Load() == 0 {
		iv.violate("no overload", "no 202: no task was ever queued")
	}
	if n := s.ev.count(wModuleKill); n != s.cfg.ModuleKills {
		iv.violate("fault not done", "%d of %d module kills done", n, s.cfg.ModuleKills)
	}
	if n := s.ev.count(wHostRestart); n < s.cfg.HostRestarts+2 {
		iv.violate("fault not done", "%d of %d host restarts done", n, s.cfg.HostRestarts+2)
	}
	if s.tmpfs && s.ev.count(wDiskFull) != 1 {
		iv.violate("fault not done", "the disk-full case was not done")
	}
	esc := 0
	for _, tr := range s.tasks.list() {
		if tr.Job.Kind == kEscape {
			esc++
		}
	}
	if esc != s.cfg.Escapes {
		iv.violate("fault not done", "%d of %d escaping commands acknowledged", esc, s.cfg.Escapes)
	}
	iv.Count = int(st.Rejected429.Load())
	iv.OK = iv.Violations == 0
	disk := "disk full: done"
	if s.diskSkip != "" {
		disk = "disk full SKIPPED: " + s.diskSkip
	}
	iv.Detail = fmt.Sprintf("%d 429s, %d queued (202); %d module kills, %d host restarts (%d planned), %d setsid escapes; %s",
		st.Rejected429.Load(), st.Queued202.Load(), s.ev.count(wModuleKill), s.ev.count(wHostRestart), 2, esc, disk)
	return iv
}

// print writes the short human table.
func (sum *Summary) print(w interface{ Write([]byte) (int, error) }) {
	fmt.Fprintf(w, "\nsoak: seed %d, %.0fs, %v tasks acknowledged (%v 429s), faults:", sum.Seed, sum.DurationS, sum.Load["acknowledged"], sum.Load["rejected_429"])
	for _, f := range sum.Faults {
		fmt.Fprintf(w, " %s@%.0fs(%dms)", f.Kind, f.AtS, f.LastMs)
	}
	fmt.Fprintln(w)
	if !strings.HasPrefix(sum.DiskFull, "done") {
		fmt.Fprintf(w, "soak: disk-full case %s\n", sum.DiskFull)
	}
	fmt.Fprintf(w, "%-56s %-4s %8s  %s\n", "INVARIANT", "", "COUNT", "DETAIL")
	for _, iv := range sum.Invariants {
		res := "ok"
		if !iv.OK {
			res = "FAIL"
		}
		fmt.Fprintf(w, "%-56s %-4s %8d  %s\n", iv.Name, res, iv.Count, iv.Detail)
		for _, c := range slices.Sorted(maps.Keys(iv.Classes)) {
			fmt.Fprintf(w, "%67s%5d x %s\n", "", iv.Classes[c], c)
		}
		for _, e := range iv.Examples {
			fmt.Fprintf(w, "%67s  e.g. %s\n", "", e)
		}
	}
	states := sum.Load["by_state"].(map[string]int)
	keys := slices.Collect(maps.Keys(states))
	sort.Strings(keys)
	fmt.Fprintf(w, "final states:")
	for _, k := range keys {
		fmt.Fprintf(w, " %s=%d", k, states[k])
	}
	fmt.Fprintln(w)
	if sum.OK {
		fmt.Fprintln(w, "soak: PASS")
	} else {
		fmt.Fprintln(w, "soak: FAIL")
	}
}
