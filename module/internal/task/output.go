package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultMaxOutput is the per-stream cap used when Spec.MaxOutput is 0.
const DefaultMaxOutput = 4 << 20

// Spool file indexes in Output.files.
const (
	fileHead = iota
	fileTail0
	fileTail1
)

// spoolMeta is the JSON of <name>.meta. Rotated is the stream offset where
// the current tail chunk begins (Head before the first rotation), so the
// stream's total is Rotated plus the size of tail<Current>, unless the head
// file is still shorter than Head (then it is the head's size).
type spoolMeta struct {
	Rotated  int64 `json:"rotated"`
	Current  int   `json:"current"`
	Chunk    int64 `json:"chunk"`
	Head     int64 `json:"head"`
	Complete bool  `json:"complete"`
	Total    int64 `json:"total"`
}

// OutputInfo describes how much of a stream was written and kept.
//
// At most two ranges of a stream are not kept: the middle the cap drops
// ([DroppedFrom, DroppedTo), between the head and the tail), and, when
// the spool could not be written (a full disk), everything from where
// storing failed to the end ([Total-Unstored, Total)). The bytes kept are
// the rest, Stored in all.
type OutputInfo struct {
	Total     int64 // bytes the command wrote, kept or not
	Stored    int64 // bytes kept
	Truncated bool  // Stored < Total: some bytes were not kept
	// DroppedFrom and DroppedTo are the stream offsets [from, to) the cap
	// dropped; zero when it dropped nothing.
	DroppedFrom, DroppedTo int64
	// StoreErr says why the spool stopped storing the stream ("no space
	// left on device"); "" when it never failed. Unstored is how many
	// bytes, at the end of the stream, the command wrote after that: they
	// were read (the command never blocks) and discarded.
	StoreErr string
	Unstored int64
}

// Loss is what a stream lost to a failed spool write, as its Info said
// when it ended. The spool on disk cannot hold it (writing it is what
// failed), so a service that persists it elsewhere gives it back to the
// Output it reopens (see WithLoss).
type Loss struct {
	Unstored int64
	StoreErr string
}

// Output is one captured stream (stdout or stderr) spooled on disk: the
// first MaxOutput/4 bytes and the most recent bytes, up to MaxOutput in
// all. When a spool write fails (a full disk), the stream is stored no
// further: the rest is still read from the pipe, so the command never
// blocks, and counted (Info's Total and Unstored), but discarded; ReadAt
// ends where storing stopped. All methods are safe for concurrent use. Data written before a
// Changed channel is closed is visible to ReadAt once it is closed.
//
// A follower reads the live stream with this loop, which loses no data
// and never misses the end:
//
//	for {
//		changed, complete := o.Changed(), o.Complete()
//		n, err := o.ReadAt(buf, off)
//		off += int64(n)
//		switch {
//		case errors.Is(err, ErrDropped):
//			off = o.NextKept(off)
//		case err == io.EOF && complete:
//			return // the whole stream was read
//		case err == io.EOF:
//			<-changed
//		}
//	}
type Output struct {
	dir, name   string
	head, chunk int64 // immutable

	mu        sync.RWMutex
	total     int64
	rotated   int64 // stream offset where the current chunk begins
	cur       int   // 0 or 1: the tail chunk being written
	prevValid bool  // the other chunk holds [rotated-chunk, rotated)
	complete  bool
	changed   chan struct{}
	files     [3]*os.File // open while writing; nil once complete
	meta      *metaFile   // the writer's; nil for OpenOutput
	err       error       // first spool write error; nothing is stored after it
	storeErr  string      // err as Info says it
	lost      int64       // bytes after err, counted and discarded
}

// spoolPath is the path of one of the stream's files.
func (o *Output) spoolPath(suffix string) string {
	return filepath.Join(o.dir, o.name+"."+suffix)
}

// suffix is the file name suffix of spool file i.
func suffix(i int) string {
	return [...]string{"head", "tail0", "tail1", "meta"}[i]
}

// newOutput prepares the spool of stream name in dir for a cap of max
// bytes. Nothing is made on disk yet: the directory (0700) and the files
// are created at the first byte (see create), because most commands write
// little or nothing, and a directory and five files per stream made up
// front cost more than running a short command. dir must not hold an
// earlier spool of that name (a silent stream would not replace it).
func newOutput(dir, name string, max int64) (*Output, error) {
	o := &Output{dir: dir, name: name, head: max / 4, chunk: max * 3 / 8, changed: make(chan struct{})}
	if o.chunk < 1 {
		o.chunk = 1
	}
	o.rotated = o.head
	return o, nil
}

// create makes the spool's directory, files and first meta, before the
// first byte is written. Only the writer calls it.
func (o *Output) create() error {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	m, err := createMeta(o.spoolPath("meta"))
	if err != nil {
		return err
	}
	var files [3]*os.File
	for i := range files {
		f, err := os.OpenFile(o.spoolPath(suffix(i)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			for _, f := range files {
				if f != nil {
					f.Close()
				}
			}
			m.close()
			return err
		}
		files[i] = f
	}
	o.mu.Lock()
	o.files, o.meta = files, m
	o.mu.Unlock()
	return o.writeMeta(false)
}

// abort closes and removes a spool that was never used.
func (o *Output) abort() {
	for i, f := range o.files {
		if f != nil {
			f.Close()
			o.files[i] = nil
		}
	}
	o.meta.close()
	for i := range 4 {
		os.Remove(o.spoolPath(suffix(i)))
	}
}

// writeMeta replaces <name>.meta atomically. Only the writer calls it.
func (o *Output) writeMeta(complete bool) error {
	o.mu.RLock()
	m := spoolMeta{Rotated: o.rotated, Current: o.cur, Chunk: o.chunk, Head: o.head, Complete: complete, Total: o.total}
	o.mu.RUnlock()
	return o.meta.replace(m)
}

// write appends p to the stream. Only the single writer calls it; after a
// spool error the rest of the stream is counted and discarded (see Err).
func (o *Output) write(p []byte) {
	if len(p) == 0 {
		return
	}
	if o.err != nil { // only the writer sets it
		o.discard(len(p))
		return
	}
	for len(p) > 0 {
		f, off, room, err := o.target()
		if err != nil {
			o.fail(err)
			o.discard(len(p))
			break
		}
		n, err := f.WriteAt(p[:min(int64(len(p)), room)], off)
		o.publish(n)
		p = p[n:]
		if err != nil {
			o.fail(err)
			o.discard(len(p))
			break
		}
	}
	o.broadcast()
}

// discard counts n bytes the command wrote after a spool error.
func (o *Output) discard(n int) {
	o.mu.Lock()
	o.lost += int64(n)
	o.mu.Unlock()
}

// splice moves bytes from pipe fd to the stream with splice(2), at most
// to the end of the current head or chunk, and returns how many (0 at end
// of file). unix.EAGAIN means the pipe is empty. Any other error means
// splicing must stop: it is not supported (nothing was moved), or the
// spool failed (Err says so).
func (o *Output) splice(fd int) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	f, off, room, err := o.target()
	if err != nil {
		o.fail(err)
		return 0, err
	}
	n, err := unix.Splice(fd, nil, int(f.Fd()), &off, int(room), unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	if n > 0 {
		o.publish(int(n))
		o.broadcast()
	}
	switch {
	case err == unix.EAGAIN:
		return 0, err
	case err == unix.EINVAL || err == unix.ENOSYS:
		return 0, err // the spool's file system cannot splice
	case err != nil:
		o.fail(err)
		return 0, err
	}
	return int(n), nil
}

// target returns where the next stream byte goes: the file, the offset in
// it and the room left there, rotating the tail chunks first when the
// current one is full.
func (o *Output) target() (*os.File, int64, int64, error) {
	if o.meta == nil { // only the writer sets it
		if err := o.create(); err != nil {
			return nil, 0, 0, err
		}
	}
	total := o.total // only the writer changes total
	if total < o.head {
		return o.files[fileHead], total, o.head - total, nil
	}
	if total-o.rotated == o.chunk {
		if err := o.rotate(); err != nil {
			return nil, 0, 0, err
		}
	}
	return o.files[fileTail0+o.cur], total - o.rotated, o.chunk - (total - o.rotated), nil
}

// publish makes n more bytes visible to readers.
func (o *Output) publish(n int) {
	o.mu.Lock()
	o.total += int64(n)
	o.mu.Unlock()
}

// broadcast wakes the followers waiting on Changed.
func (o *Output) broadcast() {
	o.mu.Lock()
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

// fail records the first spool error.
func (o *Output) fail(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err, o.storeErr = err, storeErrText(err)
	}
	o.mu.Unlock()
}

// storeErrText is a spool error as the API reports it: the system's
// reason ("no space left on device") without the spool's path.
func storeErrText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// rotate truncates the other chunk and makes it current. The order
// (truncate, then meta, then data) keeps the spool readable if the service
// dies at any point: a stale meta then sees a short "previous" chunk and
// reports its range as dropped.
func (o *Output) rotate() error {
	next := 1 - o.cur
	o.mu.Lock()
	err := o.files[fileTail0+next].Truncate(0)
	if err == nil {
		o.rotated, o.cur, o.prevValid = o.total, next, true
	}
	o.mu.Unlock()
	if err != nil {
		return err
	}
	return o.writeMeta(false)
}

// close ends the stream: the final meta is written, the files are closed
// and Complete becomes true. Only the writer calls it, once. The final
// meta is a courtesy: OpenOutput finds the stream's end from the files'
// sizes and the meta of the last rotation, so failing to write it (a full
// disk) loses nothing and is not a store error.
func (o *Output) close() {
	if o.meta != nil { // nothing was written: no files
		_ = o.writeMeta(true)
		_ = o.meta.close()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, f := range o.files {
		f.Close()
		o.files[i] = nil
	}
	o.complete = true
	close(o.changed)
}

// OpenOutput opens, read-only, the spool of stream name ("stdout" or
// "stderr") in dir, written earlier by this or a previous service process,
// even one killed mid-stream: the kept bytes are those the writer had
// handed to the kernel. The result is Complete and its Changed channel is
// closed.
func OpenOutput(dir, name string) (*Output, error) {
	o := &Output{dir: dir, name: name, complete: true, changed: make(chan struct{})}
	close(o.changed)
	b, err := os.ReadFile(o.spoolPath("meta"))
	if errors.Is(err, os.ErrNotExist) {
		// The files are made, meta last, before the first byte: no meta
		// means the stream had no bytes.
		return o, nil
	}
	if err != nil {
		return nil, fmt.Errorf("task: open output: %w", err)
	}
	var m spoolMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("task: open output: %s: %w", o.spoolPath("meta"), err)
	}
	if m.Head < 0 || m.Chunk < 1 || m.Rotated < m.Head || (m.Current != 0 && m.Current != 1) {
		return nil, fmt.Errorf("task: open output: %s: inconsistent %+v", o.spoolPath("meta"), m)
	}
	var sizes [3]int64
	for i := range sizes {
		fi, err := os.Stat(o.spoolPath(suffix(i)))
		if err != nil {
			return nil, fmt.Errorf("task: open output: %w", err)
		}
		sizes[i] = fi.Size()
	}
	o.head, o.chunk, o.cur, o.rotated = m.Head, m.Chunk, m.Current, m.Rotated
	if sizes[fileHead] < m.Head {
		o.total, o.rotated = sizes[fileHead], m.Head
		return o, nil
	}
	o.total = m.Rotated + min(sizes[fileTail0+m.Current], m.Chunk)
	o.prevValid = m.Rotated-m.Chunk >= m.Head && sizes[fileTail0+1-m.Current] >= m.Chunk
	return o, nil
}

// WithLoss gives an Output from OpenOutput back the loss its stream had
// when it ended (a spool write failed: see Loss), which the files do not
// record, and returns it. Call it before the Output is shared; a zero Loss
// changes nothing.
func (o *Output) WithLoss(l Loss) *Output {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l.StoreErr != "" && l.Unstored >= 0 {
		o.err, o.storeErr, o.lost = errors.New(l.StoreErr), l.StoreErr, l.Unstored
	}
	return o
}

// keptTail is the stream offset where kept tail data begins. Callers hold mu.
func (o *Output) keptTail() int64 {
	if o.prevValid {
		return o.rotated - o.chunk
	}
	return o.rotated
}

// Info says how much of the stream was written and kept so far.
func (o *Output) Info() OutputInfo {
	o.mu.RLock()
	defer o.mu.RUnlock()
	info := OutputInfo{Total: o.total + o.lost, Stored: min(o.total, o.head), StoreErr: o.storeErr, Unstored: o.lost}
	if o.total > o.head {
		kept := o.keptTail()
		info.Stored += o.total - kept
		if kept > o.head {
			info.DroppedFrom, info.DroppedTo = o.head, kept
		}
	}
	info.Truncated = info.Stored < info.Total
	return info
}

// NextKept returns off if the byte at off is kept (or not written yet),
// else the offset where kept data resumes after the dropped range.
func (o *Output) NextKept(off int64) int64 {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if kept := o.keptTail(); off >= o.head && off < kept {
		return kept
	}
	return off
}

// Changed returns a channel that is closed at the next write to the
// stream or when it completes (already closed once Complete). Get a fresh
// channel each time it fires.
func (o *Output) Changed() <-chan struct{} {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.changed
}

// Complete reports whether the stream has ended: no more writes.
func (o *Output) Complete() bool {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.complete
}

// Err returns the first error storing the stream (a full disk, say), after
// which the rest of the stream was counted and discarded; nil normally.
// On an Output from OpenOutput it is the Loss given to WithLoss.
func (o *Output) Err() error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.err
}

// ReadAt reads stream bytes at stream offset off. It returns io.EOF with
// the bytes up to the current end of the stream (which may grow: see
// Changed), and a *DroppedError (errors.Is ErrDropped) with the bytes before
// a range that was not kept; NextKept says where to continue.
func (o *Output) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("task: output: negative offset %d", off)
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	n := 0
	for n < len(p) {
		if off >= o.total {
			return n, io.EOF
		}
		file, fileOff, end, err := o.locate(off)
		if err != nil {
			return n, err
		}
		m := min(int64(len(p)-n), end-off)
		if err := o.readFile(file, p[n:n+int(m)], fileOff); err != nil {
			return n, err
		}
		n += int(m)
		off += m
	}
	return n, nil
}

// locate maps stream offset off (< total) to a spool file, the offset in
// it and the stream offset where that file's stretch ends. Callers hold mu.
func (o *Output) locate(off int64) (file int, fileOff, end int64, err error) {
	switch kept := o.keptTail(); {
	case off < o.head:
		return fileHead, off, min(o.head, o.total), nil
	case off < kept:
		return 0, 0, 0, &DroppedError{Off: off, Resume: kept}
	case off < o.rotated:
		return fileTail0 + 1 - o.cur, off - (o.rotated - o.chunk), o.rotated, nil
	default:
		return fileTail0 + o.cur, off - o.rotated, o.total, nil
	}
}

// readFile fills p from a spool file at off, through the writer's open
// file while the stream is live, else by opening it. Callers hold mu.
func (o *Output) readFile(file int, p []byte, off int64) error {
	f := o.files[file]
	if f == nil {
		var err error
		if f, err = os.Open(o.spoolPath(suffix(file))); err != nil {
			return fmt.Errorf("task: output: %w", err)
		}
		defer f.Close()
	}
	if _, err := f.ReadAt(p, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the spool is shorter than its meta says
		}
		return fmt.Errorf("task: output: %s: %w", f.Name(), err)
	}
	return nil
}
