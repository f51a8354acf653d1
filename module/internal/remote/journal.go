package remote

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// journalName is the task store in the module's data directory.
const journalName = "tasks.jsonl"

// journal is the task store: an append-only file of JSON lines, one task
// record per line, in which a task's latest line is its current record
// (a purge is a line with "purged"). It replaced a task.json file per task
// in a directory per task, which cost a mkdir, two create+rename pairs and
// two fsyncs per task.
//
// # Durability
//
// A line is written with one write(2) at the end of the file before the
// caller goes on (a final record before the result is reported), so it is
// in the page cache and survives a crash of the module or of the host,
// kill -9 included. A final record is then fsynced by the syncer
// goroutine, group-committed (one fsync, at most syncDelay after the
// first line waiting for it, covers every line written before it starts)
// and off the reply path: after a power loss or kernel crash the results
// reported in the last syncDelay plus one fsync (tens of milliseconds) may
// be missing, and the tasks they belonged to are then reported lost or gone;
// older lines are never damaged, and a torn last line is skipped when the
// journal is read. Compaction writes a new file, fsyncs it and renames it
// over the old one, so it is atomic too.
//
// The journal's methods are called with Service.mu held, which orders
// the lines and keeps the offsets of the index valid across compaction;
// the syncer runs on its own.
type journal struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex // guards f against the syncer during compaction
	f    *os.File
	size int64

	syncReq chan struct{} // buffered(1): a sync is wanted
	stop    chan struct{}
	stopped chan struct{}
}

// syncDelay bounds how long a final record may wait for its fsync; it is
// the window of results a power loss can take (see journal).
const syncDelay = 50 * time.Millisecond

// line is one record as read from the journal, with where it is.
type line struct {
	rec *record
	off int64
	n   int32
}

// openJournal opens (creating) the journal in dir, reads every line and
// starts the syncer. Unreadable lines (a torn last line after a power
// loss) are skipped with a warning.
func openJournal(dir string, log *slog.Logger) (*journal, []line, error) {
	path := filepath.Join(dir, journalName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("remote: %w", err)
	}
	j := &journal{path: path, log: log, f: f, syncReq: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	lines, size, err := j.readAll()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if size != j.size {
		// A torn tail: cut it, so the next line starts on a line.
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("remote: %s: cutting a torn last line: %w", path, err)
		}
		j.size = size
	}
	go j.syncer()
	return j, lines, nil
}

// readAll reads every line and returns them with the size up to the end
// of the last complete line.
func (j *journal) readAll() ([]line, int64, error) {
	st, err := j.f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("remote: %w", err)
	}
	j.size = st.Size()
	rd := bufio.NewReaderSize(io.NewSectionReader(j.f, 0, j.size), 256<<10)
	var lines []line
	var off int64
	for {
		b, err := rd.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line over the buffer: read the rest of it.
			long := append([]byte(nil), b...)
			for err == bufio.ErrBufferFull {
				b, err = rd.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		if err == io.EOF {
			if len(b) > 0 {
				j.log.Warn("task journal: skipping a torn last line (a crash during a write)", "path", j.path, "bytes", len(b))
			}
			return lines, off, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("remote: %s: %w", j.path, err)
		}
		rec, perr := decodeRecord(b)
		if perr != nil {
			j.log.Warn("task journal: skipping an unreadable line", "path", j.path, "offset", off, "error", perr)
		} else {
			lines = append(lines, line{rec: rec, off: off, n: int32(len(b))})
		}
		off += int64(len(b))
	}
}

// append writes b (one line, ending in '\n') and returns its offset. A
// short write is cut off again, so the file always ends on a line.
func (j *journal) append(b []byte) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	off := j.size
	n, err := j.f.WriteAt(b, off)
	if err != nil {
		if n > 0 {
			_ = j.f.Truncate(off)
		}
		return 0, fmt.Errorf("remote: %s: %w", j.path, err)
	}
	j.size += int64(n)
	return off, nil
}

// read returns the line at off, n bytes long.
func (j *journal) read(off int64, n int32) ([]byte, error) {
	j.mu.Lock()
	f := j.f
	j.mu.Unlock()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("remote: %s: %w", j.path, err)
	}
	return b, nil
}

// requestSync asks the syncer for an fsync; it does not wait.
func (j *journal) requestSync() {
	select {
	case j.syncReq <- struct{}{}:
	default: // one is pending already and will cover this line
	}
}

// syncer fsyncs the journal when asked: a request arriving during an
// fsync is served by the next one, which covers every line written by
// then.
func (j *journal) syncer() {
	defer close(j.stopped)
	for {
		select {
		case <-j.stop:
			return
		case <-j.syncReq:
		}
		// Let a group gather: an fsync costs the next audit line's
		// fsync (the file system commits one at a time), so one every
		// syncDelay at most, not one per result.
		select {
		case <-j.stop:
		case <-time.After(syncDelay):
		}
		j.mu.Lock()
		f := j.f
		j.mu.Unlock()
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			j.log.Error("task journal: fsync failed; results since the last one would not survive a power loss", "path", j.path, "error", err)
		}
	}
}

// compact rewrites the journal with only the given lines (each task's
// latest), in order, and returns their new offsets. The new file is
// fsynced and renamed over the old one.
func (j *journal) compact(keep []line) ([]int64, error) {
	tmp := j.path + ".tmp"
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("remote: compacting %s: %w", j.path, err)
	}
	fail := func(err error) ([]int64, error) {
		nf.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("remote: compacting %s: %w", j.path, err)
	}
	j.mu.Lock()
	old := j.f
	j.mu.Unlock()
	w := bufio.NewWriterSize(nf, 1<<20)
	offs := make([]int64, len(keep))
	var off int64
	var buf []byte
	for i, l := range keep {
		if int(l.n) > cap(buf) {
			buf = make([]byte, max(int(l.n), 4096))
		}
		buf = buf[:l.n]
		if _, err := old.ReadAt(buf, l.off); err != nil {
			return fail(err)
		}
		if _, err := w.Write(buf); err != nil {
			return fail(err)
		}
		offs[i] = off
		off += int64(l.n)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := nf.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fail(err)
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		j.log.Warn("task journal: fsync of its directory after compaction failed", "error", err)
	}
	j.mu.Lock()
	j.f, j.size = nf, off
	j.mu.Unlock()
	old.Close()
	return offs, nil
}

// Size is the journal's length in bytes.
func (j *journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// close stops the syncer, fsyncs and closes the file.
func (j *journal) close() error {
	close(j.stop)
	<-j.stopped
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.f.Sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}
