package remote

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// State is where a task is in its life.
type State string

// The states. A task is queued or running until it ends in one of the
// others; lost means the module stopped while it ran (its process group is
// killed when the module starts again) and only its partial output is left.
const (
	Queued        State = "queued"
	Running       State = "running"
	Exited        State = "exited"
	Signaled      State = "signaled"
	TimedOut      State = "timed_out"
	Killed        State = "killed"
	FailedToStart State = "failed_to_start"
	Lost          State = "lost"
)

// Final reports whether s is an end state.
func (s State) Final() bool { return s != Queued && s != Running }

// recordVersion is the schema version of task.json.
const recordVersion = 1

// record is one task as persisted in <dir>/tasks/<id>/task.json and as the
// API reports it (with its output added when rendered).
type record struct {
	Version        int               `json:"version"`
	ID             string            `json:"id"`
	State          State             `json:"state"`
	Pid            int               `json:"pid,omitempty"`
	Pgid           int               `json:"pgid,omitempty"`
	StartTicks     uint64            `json:"startTicks,omitempty"`
	Command        string            `json:"command"`
	Arguments      []string          `json:"arguments"`
	Shell          bool              `json:"shell"`
	Cwd            string            `json:"cwd,omitempty"`
	User           string            `json:"user,omitempty"`
	EnvKeys        []string          `json:"envKeys,omitempty"` // values are never stored
	Labels         map[string]string `json:"labels,omitempty"`
	IdempotencyKey string            `json:"idempotencyKey,omitempty"`
	Principal      string            `json:"principal,omitempty"`
	TimeoutMs      int64             `json:"timeoutMs"`
	GraceMs        int64             `json:"graceMs"`
	CreatedAt      time.Time         `json:"createdAt"`
	StartedAt      *time.Time        `json:"startedAt,omitempty"`
	EndedAt        *time.Time        `json:"endedAt,omitempty"`
	Result         *result           `json:"result,omitempty"`
	Error          string            `json:"error,omitempty"`
}

// result is how a task ended.
type result struct {
	ExitCode      int    `json:"exitCode"` // the signal number when signaled (seed semantics)
	Signaled      bool   `json:"signaled"`
	Signal        string `json:"signal,omitempty"`
	SignalNumber  int    `json:"signalNumber,omitempty"`
	TimedOut      bool   `json:"timedOut"`
	Killed        bool   `json:"killed"`
	KillEscalated bool   `json:"killEscalated"`
	OutputCut     bool   `json:"outputCut,omitempty"`
	DurationMs    int64  `json:"durationMs"`
	UserMs        int64  `json:"userMs"`
	SysMs         int64  `json:"sysMs"`
	MaxRssKiB     int64  `json:"maxRssKiB"`
}

// taskDir is where a task's record and output live.
func (s *Service) taskDir(id string) string { return filepath.Join(s.dir, "tasks", id) }

// save writes rec atomically (a temporary file renamed over task.json): a
// reader, or the module after a crash of itself or of the host, sees the
// old record or the new one, never a torn one. A final record is also
// fsynced, with its directory, before save returns, so a result that was
// reported survives a crash of the machine too. A queued or running record
// is not: it matters for recovery after a crash of the module or host,
// which page-cache writes survive, and a machine crash ends its processes
// anyway. That halves the fsyncs per task, which bound throughput.
func (s *Service) save(rec *record) error {
	durable := rec.State.Final()
	dir := s.taskDir(rec.ID)
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".task-*.json")
	if err != nil {
		return fmt.Errorf("remote: save %s: %w", rec.ID, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err = tmp.Write(b); err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, "task.json"))
	}
	if err == nil && durable {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("remote: save %s: %w", rec.ID, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load reads a task's record.
func load(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, "task.json"))
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "task.json"), err)
	}
	if rec.Version != recordVersion || rec.ID != filepath.Base(dir) {
		return nil, fmt.Errorf("%s: not a task record of version %d for %s", filepath.Join(dir, "task.json"), recordVersion, filepath.Base(dir))
	}
	return &rec, nil
}

// crockford is the alphabet of task ids (ULID's): no I, L, O or U.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns a task id: 26 characters, the first ten the creation time
// in milliseconds, so ids sort by creation; the rest random.
func newID(now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	for i := 10; i < 26; i++ {
		b[i] = crockford[r[i-10]&31]
	}
	return string(b[:])
}

// validID reports whether id could be a task id (it names a directory, so
// it must never be a path).
func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for _, c := range id {
		if !strings.ContainsRune(crockford, c) {
			return false
		}
	}
	return true
}
