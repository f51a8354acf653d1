// Package audit keeps the remote-execution module's audit log: an
// append-only file of JSON lines, <DataDir>/audit.jsonl, one line per
// request that runs, signals or kills a task or is refused, and one when
// a task ends.
//
// # The chain
//
// Every line is one JSON object whose last two members are "prev" and
// "hash":
//
//	{"seq":1,"time":...,"action":"run",...,"prev":"000…000","hash":"9f2c…"}
//
// "hash" is the hex SHA-256 of the line's bytes without its hash: the
// line up to (not including) `,"hash":"` followed by "}". "prev" is the
// previous line's "hash"; the first line's is Genesis (64 zeros). "seq"
// counts lines from 1. Changing, inserting, removing or reordering lines
// breaks the chain at the first line touched, which Verify reports.
// Removing lines at the end cannot be seen from the file alone: each
// append is also logged through the module's logger, into the host's log,
// which anchors the tail elsewhere (compare Verify's Tail with the last
// logged seq and hash).
//
// # The host's log
//
// Append logs every line as one "audit" record at WARN, so that the
// quietest level an operator usually runs at (--logging_level=WARNING)
// keeps it; only ERROR drops it. The record is a copy of the line that
// stands on its own: seq, time, action, principal, remote_addr, route,
// command, arguments and env_keys (as JSON arrays), shell, user, cwd,
// signal, decision, rule, checks, task, owner, pid, the outcome's fields,
// error, prev and hash; members the line leaves out are left out.
//
// What the module never sees it cannot audit: a request to a readwrite
// (or authenticated readonly) route that fails authentication is refused
// by the host with 401 before it reaches the module, so it has no line
// here. The host logs it instead ("authentication failed", with the
// realm, remote address, method, path and reason, at WARN).
//
// # Durability
//
// Appends are serialized: each line is written with one write(2), in
// order, before Append returns. From then on it survives any crash of the
// module or the host: the kernel has it. It reaches the disk itself a
// moment later, without the caller waiting: a syncer fsyncs, at most
// syncDelay (5 ms) after a line was written, everything written by then
// (group commit). What a power loss or a kernel crash can take is
// therefore the lines of about the last 5 ms, where waiting for an fsync
// (about a quarter of a millisecond each on the development machine,
// and one per line) would cost every request. An fsync that fails is logged
// and makes every later Append fail, so that the module stops taking work
// it can no longer audit; Close fsyncs what is left. A write that fails
// (a full disk) fails its Append and leaves nothing behind: a short write
// is cut off again, so that no later line follows a torn one. After a
// restart Open continues the chain from the last line; a torn last line
// (a crash in the middle of a write, no newline) is cut off and the cut
// is recorded in the next line's "error".
//
// Environment values never reach the log, the file or the host's: Entry
// has only the variables' names.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Genesis is the "prev" of the first line.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// FileName is the log's name in the module's data directory.
const FileName = "audit.jsonl"

// The actions of Entry.Action.
const (
	Run    = "run"    // start a task (POST /execute, POST /tasks)
	Signal = "signal" // a signal other than the kill sequence
	Kill   = "kill"   // SIGTERM, grace, SIGKILL; or killed while queued
	Purge  = "purge"  // DELETE of a finished task
	View   = "view"   // reading a task: logged only when refused
	End    = "end"    // a task ended
)

// Entry is one line, before the chain's fields are added.
type Entry struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Principal  string    `json:"principal"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
	Route      string    `json:"route,omitempty"` // "POST /remote/tasks"
	Action     string    `json:"action"`
	Command    string    `json:"command,omitempty"`
	Arguments  []string  `json:"arguments,omitempty"` // argv, argv[0] included
	Shell      bool      `json:"shell,omitempty"`
	EnvKeys    []string  `json:"env_keys,omitempty"` // names only, never values
	User       string    `json:"user,omitempty"`
	Cwd        string    `json:"cwd,omitempty"`
	Signal     string    `json:"signal,omitempty"`
	Decision   string    `json:"decision,omitempty"` // "allow" or "deny"
	Rule       string    `json:"rule,omitempty"`     // the deciding ACL rule
	Checks     []Check   `json:"checks,omitempty"`   // every ACL check made
	TaskID     string    `json:"task_id,omitempty"`
	Owner      string    `json:"owner,omitempty"` // the task's owner, when not the principal
	Pid        int       `json:"pid,omitempty"`
	Outcome    *Outcome  `json:"outcome,omitempty"` // action "end"
	Error      string    `json:"error,omitempty"`
}

// Check is one ACL decision.
type Check struct {
	Action  string `json:"action"`
	Object  string `json:"object"`
	Allowed bool   `json:"allowed"`
	Rule    string `json:"rule"`
}

// Outcome is how a task ended.
type Outcome struct {
	State       string `json:"state"`
	ExitCode    *int   `json:"exit_code,omitempty"`
	Signal      string `json:"signal,omitempty"`
	DurationMs  int64  `json:"duration_ms"`
	StdoutBytes int64  `json:"stdout_bytes"`
	StderrBytes int64  `json:"stderr_bytes"`
}

// chained is what a line holds: the entry, then prev and hash.
type chained struct {
	Entry
	Prev string `json:"prev"`
	Hash string `json:"hash,omitempty"`
}

const hashKey = `,"hash":"`

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	seq  uint64
	last string // hash of the last line
	log  *slog.Logger
	note string // to record in the next line's error (a cut torn line)

	syncErr error         // the first failed fsync: every later Append fails with it
	kick    chan struct{} // an fsync is wanted (buffered: kicks while one runs merge)
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when the syncer has returned
}

// Open opens (creating) the log at path and continues its chain. A log
// whose last complete line is not a line of the chain is refused: the
// operator moves it aside, since continuing it would hide the damage.
func Open(path string, logger *slog.Logger) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{f: f, path: path, last: Genesis, log: logger,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := l.recover(); err != nil {
		f.Close()
		return nil, err
	}
	go l.syncer(f)
	return l, nil
}

// recover finds the last line's seq and hash, cutting a torn last line.
func (l *Log) recover() error {
	size, err := l.f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if size == 0 {
		return nil
	}
	// Read backwards until the start of the last complete line.
	const chunk = 64 << 10
	var tail []byte
	end := size
	for end > 0 {
		n := min(int64(chunk), end)
		buf := make([]byte, n)
		if _, err := l.f.ReadAt(buf, end-n); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		tail = append(buf, tail...)
		end -= n
		body := tail
		if i := bytes.LastIndexByte(body, '\n'); i >= 0 {
			body = body[:i] // up to the last newline
			if j := bytes.LastIndexByte(body, '\n'); j >= 0 || end == 0 {
				break
			}
		}
	}
	keep := size
	if tail[len(tail)-1] != '\n' {
		i := bytes.LastIndexByte(tail, '\n')
		keep = size - int64(len(tail)-(i+1))
		cut := size - keep
		if err := l.f.Truncate(keep); err != nil {
			return fmt.Errorf("audit: cutting a torn last line: %w", err)
		}
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		l.note = fmt.Sprintf("a torn last line of %d bytes (a crash during a write) was cut off when the log was reopened", cut)
		l.log.Warn("audit log: cut a torn last line", "path", l.path, "bytes", cut)
		tail = tail[:i+1]
	}
	if keep == 0 {
		return nil
	}
	lines := bytes.Split(bytes.TrimSuffix(tail, []byte{'\n'}), []byte{'\n'})
	last := lines[len(lines)-1]
	c, err := parseLine(last)
	if err != nil {
		return fmt.Errorf("audit: %s: the last line is not a line of the audit chain (%v); move the file aside to start a new log", l.path, err)
	}
	l.seq, l.last = c.Seq, c.Hash
	_, err = l.f.Seek(0, io.SeekEnd)
	return err
}

// Append adds e as the next line (setting Seq, and Time when zero) and
// returns once it is written (see "Durability"), then logs it at WARN (see
// "The host's log"). It is safe for concurrent use.
func (l *Log) Append(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	e, prev, hash, err := l.write(e)
	if err != nil {
		return err
	}
	// Formatting the host's copy and writing it to stderr happen outside
	// the lock, holding up no other append; its seq orders it.
	l.log.Warn("audit", record(e, prev, hash)...)
	return nil
}

// write chains e after the last line and writes it, serialized with every
// other append; it returns e as written, the hash it follows and its own.
func (l *Log) write(e Entry) (Entry, string, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return e, "", "", errors.New("audit: the log is closed")
	}
	if l.syncErr != nil {
		return e, "", "", l.syncErr
	}
	if l.note != "" {
		e.Error = strings.TrimPrefix(e.Error+"; "+l.note, "; ")
	}
	e.Seq = l.seq + 1
	line, hash, err := encode(e, l.last)
	if err != nil {
		return e, "", "", fmt.Errorf("audit: %w", err)
	}
	if n, err := l.f.Write(line); err != nil {
		// A failed write on a full disk may leave part of the line (even
		// when it reports nothing written, tmpfs may have grown the file),
		// which every later line would follow, breaking the chain: cut the
		// file back to where the line began.
		off, serr := l.f.Seek(-int64(n), io.SeekCurrent)
		if serr == nil {
			serr = l.f.Truncate(off)
		}
		if serr != nil && l.syncErr == nil {
			l.syncErr = fmt.Errorf("audit: %s: a torn line could not be cut off, so the log takes no more lines: %w", l.path, serr)
		}
		return e, "", "", fmt.Errorf("audit: %s: %w", l.path, err)
	}
	prev := l.last
	l.seq, l.last, l.note = e.Seq, hash, ""
	select {
	case l.kick <- struct{}{}:
	default: // an fsync is already wanted; it will cover this line too
	}
	return e, prev, hash, nil
}

// syncDelay is how long the syncer lets lines gather before an fsync:
// with it a burst of requests costs a few fsyncs, not one each (an fsync
// costs the file system's other commits too), and it bounds what a power
// loss can take to the lines of about the last syncDelay.
const syncDelay = 5 * time.Millisecond

// syncer fsyncs f whenever lines were written since its last fsync, at
// most syncDelay after the first of them, until Close, which closes f only
// once the syncer has returned.
func (l *Log) syncer(f *os.File) {
	defer close(l.stopped)
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		}
		select {
		case <-l.stop:
			return // Close fsyncs the rest
		case <-time.After(syncDelay):
		}
		if err := f.Sync(); err != nil {
			l.mu.Lock()
			if l.syncErr == nil {
				l.syncErr = fmt.Errorf("audit: %s: fsync failed, so lines may be lost: %w", l.path, err)
				l.log.Error("audit log: fsync failed; refusing further appends", "path", l.path, "error", err)
			}
			l.mu.Unlock()
		}
	}
}

// record is the logger's copy of a line chained after prev with hash:
// every member the line has, lists as JSON arrays (so that an argument
// with a blank cannot be confused with two).
func record(e Entry, prev, hash string) []any {
	a := []any{"seq", e.Seq, "time", e.Time.Format(time.RFC3339Nano), "action", e.Action, "principal", e.Principal}
	add := func(key, v string) {
		if v != "" {
			a = append(a, key, v)
		}
	}
	list := func(key string, v any, n int) {
		if n > 0 {
			b, _ := json.Marshal(v)
			a = append(a, key, string(b))
		}
	}
	add("remote_addr", e.RemoteAddr)
	add("route", e.Route)
	add("command", e.Command)
	list("arguments", e.Arguments, len(e.Arguments))
	if e.Shell {
		a = append(a, "shell", true)
	}
	list("env_keys", e.EnvKeys, len(e.EnvKeys))
	add("user", e.User)
	add("cwd", e.Cwd)
	add("signal", e.Signal)
	add("decision", e.Decision)
	add("rule", e.Rule)
	list("checks", e.Checks, len(e.Checks))
	add("task", e.TaskID)
	add("owner", e.Owner)
	if e.Pid != 0 {
		a = append(a, "pid", e.Pid)
	}
	if o := e.Outcome; o != nil {
		a = append(a, "state", o.State)
		if o.ExitCode != nil {
			a = append(a, "exit_code", *o.ExitCode)
		}
		add("exit_signal", o.Signal)
		a = append(a, "duration_ms", o.DurationMs, "stdout_bytes", o.StdoutBytes, "stderr_bytes", o.StderrBytes)
	}
	add("error", e.Error)
	return append(a, "prev", prev, "hash", hash)
}

// encode renders e chained after prev: the line (with its newline) and
// its hash.
func encode(e Entry, prev string) ([]byte, string, error) {
	b, err := json.Marshal(chained{Entry: e, Prev: prev})
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	line := make([]byte, 0, len(b)+len(hashKey)+len(hash)+3)
	line = append(line, b[:len(b)-1]...)
	line = append(line, hashKey...)
	line = append(line, hash...)
	line = append(line, "\"}\n"...)
	return line, hash, nil
}

// parseLine checks a line's own hash and returns it decoded.
func parseLine(line []byte) (chained, error) {
	var c chained
	i := bytes.LastIndex(line, []byte(hashKey))
	if i < 0 || !bytes.HasSuffix(line, []byte(`"}`)) {
		return c, errors.New(`it does not end with "hash"`)
	}
	hash := string(line[i+len(hashKey) : len(line)-2])
	body := append(line[:i:i], '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != hash {
		return c, errors.New("its hash does not match its content")
	}
	if err := json.Unmarshal(line, &c); err != nil {
		return c, fmt.Errorf("not JSON: %v", err)
	}
	if c.Hash != hash {
		return c, errors.New("its hash field is not the last member")
	}
	return c, nil
}

// Close fsyncs what was written and closes the file; later Appends fail.
// Safe to call more than once.
func (l *Log) Close() error {
	l.mu.Lock()
	f := l.f
	l.f = nil
	l.mu.Unlock()
	if f == nil {
		return nil
	}
	close(l.stop)
	<-l.stopped
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Path is the log's file.
func (l *Log) Path() string { return l.path }

// ChainError is the first break Verify finds.
type ChainError struct {
	Line   int // 1-based
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit log line %d: %s", e.Line, e.Reason)
}

// Tail is the end of an intact chain: how many lines it has and the last
// line's hash, to compare with the seq and hash the module logged for its
// last append (the host's log), which would show lines cut off the end.
type Tail struct {
	Lines int
	Hash  string // Genesis for an empty log
}

// Verify walks the chain of the log at path and returns its tail, or a
// *ChainError naming the first line that breaks it.
func Verify(path string) (Tail, error) {
	f, err := os.Open(path)
	if err != nil {
		return Tail{}, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	prev, n := Genesis, 0
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			return Tail{Lines: n, Hash: prev}, nil
		}
		n++
		if err == io.EOF {
			return Tail{}, &ChainError{n, "torn: no newline at the end (a crash during a write?)"}
		}
		if err != nil {
			return Tail{}, err
		}
		c, perr := parseLine(line[:len(line)-1])
		switch {
		case perr != nil:
			return Tail{}, &ChainError{n, perr.Error()}
		case c.Prev != prev:
			return Tail{}, &ChainError{n, fmt.Sprintf("prev is %.12s…, but the line before ends the chain at %.12s… (a line was removed, inserted or reordered)", c.Prev, prev)}
		case c.Seq != uint64(n):
			return Tail{}, &ChainError{n, fmt.Sprintf("seq is %d, want %d", c.Seq, n)}
		}
		prev = c.Hash
	}
}
