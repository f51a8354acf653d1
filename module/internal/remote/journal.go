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
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
// # A full disk
//
// The work_dir's file system may fill up (the commands' own output is
// under it). So that results can still be written then, the journal keeps
// a reserve: reserveSize bytes allocated past its end (fallocate with
// FALLOC_FL_KEEP_SIZE, so the file's length and its readers are not
// affected), topped up whenever less than half of it is left and made
// again for the new file at compaction. Lines written into it need no
// allocation, so they do not fail with ENOSPC. The lines that end a task
// (final records, purges) may use all of it; those of queued and running
// tasks only the first half, so that the tasks already accepted can end:
// a new task is refused instead (ErrJournal, "no space left on device")
// once the reserve is below half and cannot be topped up. Should a write
// fail nonetheless (the reserve used up, EIO), the service holds the
// result back and retries it (see Service.endLocked).
//
// The reserve costs its 1 MiB of disk and one fallocate(2) per half of
// it appended, every thousand lines or so: BenchmarkJournalAppend
// measured 570 ns an append with it and 590 without on ext4, within the
// noise. On a file system that cannot fallocate there is no reserve, and
// a warning says so.
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

	reserve   int64 // bytes to keep allocated past size; 0: none
	allocated int64 // the file is allocated up to here (past size while there is a reserve)
	low       bool  // the reserve could not be topped up (said once)

	syncReq chan struct{} // buffered(1): a sync is wanted
	stop    chan struct{}
	stopped chan struct{}
}

// syncDelay bounds how long a final record may wait for its fsync; it is
// the window of results a power loss can take (see journal).
const syncDelay = 50 * time.Millisecond

// reserveSize is the journal's reserve for a full disk (see journal): a
// final record is well under 1 KiB, so its half for ending tasks holds
// the results of hundreds.
const reserveSize = 1 << 20

// ErrJournal says the task journal could not be written (a full disk, an
// I/O error); the HTTP layer answers 503.
var ErrJournal = errors.New("the task journal cannot be written")

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
	return openJournalReserve(dir, log, reserveSize)
}

// openJournalReserve is openJournal with a reserve of the given size (0:
// none).
func openJournalReserve(dir string, log *slog.Logger, reserve int64) (*journal, []line, error) {
	path := filepath.Join(dir, journalName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("remote: %w", err)
	}
	j := &journal{path: path, log: log, f: f, reserve: reserve,
		syncReq: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
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
	j.mu.Lock()
	j.topUpLocked(j.size)
	j.mu.Unlock()
	go j.syncer()
	return j, lines, nil
}

// topUpLocked allocates the reserve past the end again if less than half
// of it would be left after the file reached end; it reports whether at
// least half is. j.mu is held.
func (j *journal) topUpLocked(end int64) bool {
	if j.reserve == 0 || j.allocated-end >= j.reserve/2 {
		return true
	}
	err := unix.Fallocate(int(j.f.Fd()), unix.FALLOC_FL_KEEP_SIZE, j.size, j.reserve+(end-j.size))
	switch {
	case err == nil:
		j.allocated = end + j.reserve
		if j.low {
			j.low = false
			j.log.Info("task journal: its reserve for a full disk is whole again", "path", j.path)
		}
		return true
	case err == unix.EOPNOTSUPP || err == unix.ENOSYS:
		j.reserve = 0 // the file system cannot: no reserve
		j.log.Warn("task journal: the file system cannot reserve space (fallocate), so results may not be persisted on a full disk", "path", j.path)
		return true
	}
	if !j.low {
		j.low = true
		j.log.Warn("task journal: could not top up its reserve for a full disk; new tasks will be refused before the results of running ones", "path", j.path, "left_bytes", max(j.allocated-j.size, 0), "error", err)
	}
	return false
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
// short write is cut off again, so the file always ends on a line. ending
// says the line ends a task (a final record, a purge): only those may use
// the second half of the reserve (see journal). Errors wrap ErrJournal.
func (j *journal) append(b []byte, ending bool) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	off := j.size
	if !j.topUpLocked(off+int64(len(b))) && !ending {
		return 0, fmt.Errorf("%w: %w (what is left of its reserve is kept for the results of the tasks already accepted)", ErrJournal, syscall.ENOSPC)
	}
	if _, err := j.f.WriteAt(b, off); err != nil {
		// Cut what may have been written (on a full tmpfs the file can
		// grow though the write reports nothing written); the cut frees
		// what was allocated past it.
		_ = j.f.Truncate(off)
		j.allocated = min(j.allocated, off)
		return 0, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	j.size += int64(len(b))
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
	allocated := off
	if j.reserve > 0 {
		// The new file's reserve, before it replaces the old one: a
		// compaction on a full disk fails rather than leave the journal
		// without one.
		if err := unix.Fallocate(int(nf.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, j.reserve); err != nil && err != unix.EOPNOTSUPP {
			return fail(fmt.Errorf("its reserve: %w", err))
		}
		allocated = off + j.reserve
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
	j.f, j.size, j.allocated = nf, off, allocated
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
