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

// recordVersion is the schema version of a task record.
const recordVersion = 1

// record is one task as persisted (a line of the journal, see journal)
// and as the API reports it (with its output added when rendered).
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
	// ProcessEndedAt and PersistError are set, in memory only, on a task
	// that has ended but whose final record could not be written to the
	// journal yet: until it is, the task keeps its state (queued or
	// running), PersistError says why, and ProcessEndedAt is when its
	// process ended (when it ran).
	ProcessEndedAt *time.Time `json:"processEndedAt,omitempty"`
	PersistError   string     `json:"persistError,omitempty"`
	// Unstored is, per stream ("stdout", "stderr"), what a failed spool
	// write lost: the spool cannot record it, the final record does. The
	// API shows it in the streams, not here.
	Unstored map[string]loss `json:"unstored,omitempty"`
	// Purged marks the journal line that forgets a task (DELETE or
	// retention); it never appears in the API.
	Purged bool `json:"purged,omitempty"`
}

// loss is what a stream lost to a failed spool write (see task.Loss).
type loss struct {
	Unstored int64  `json:"unstored"` // bytes at the end of the stream not stored
	Error    string `json:"error"`    // why: "no space left on device"
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
	// MaxRssKiB is the command's peak resident set, or 0 when it could
	// not be told apart from the module's own memory, which Linux counts
	// in a child's peak until its exec (see task.Result.MaxRSS):
	// MaxRssBoundKiB is then the bound the kernel reports.
	MaxRssKiB      int64 `json:"maxRssKiB"`
	MaxRssBoundKiB int64 `json:"maxRssBoundKiB"`
}

// taskDir is where a task's output spool lives (created at its first
// byte of output; a silent task has none).
func (s *Service) taskDir(id string) string { return filepath.Join(s.dir, "tasks", id) }

// encodeRecord is rec as one journal line.
func encodeRecord(rec *record) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeRecord reads a journal line (or a legacy task.json).
func decodeRecord(b []byte) (*record, error) {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	if rec.Version != recordVersion || !validID(rec.ID) {
		return nil, fmt.Errorf("not a task record of version %d", recordVersion)
	}
	return &rec, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// legacyName is the per-task record file of earlier releases, in
// <dir>/tasks/<id>/; Open imports such records into the journal.
const legacyName = "task.json"

// loadLegacy reads a task's legacy record.
func loadLegacy(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, legacyName))
	if err != nil {
		return nil, err
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, legacyName), err)
	}
	if rec.ID != filepath.Base(dir) {
		return nil, fmt.Errorf("%s: the record is of task %s", filepath.Join(dir, legacyName), rec.ID)
	}
	return rec, nil
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

// nextID is the smallest id above id (ids from newID in the same
// millisecond are random, so the service bumps a new one that does not
// sort after the last).
func nextID(id string) string {
	b := []byte(id)
	for i := len(b) - 1; i >= 0; i-- {
		k := strings.IndexByte(crockford, b[i])
		if k < len(crockford)-1 {
			b[i] = crockford[k+1]
			return string(b)
		}
		b[i] = crockford[0]
	}
	return string(b) // all 'z': cannot happen before the year 10889
}
