package task

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// layout is what a spool of head h and chunk c should keep of a stream of
// total bytes: the dropped range [from, to), zero when nothing was dropped.
func layout(total, h, c int64) (from, to int64) {
	if total <= h {
		return 0, 0
	}
	k := (total-h+c-1)/c - 1 // index of the current chunk
	if k < 2 {
		return 0, 0
	}
	return h, h + (k-1)*c
}

// readKept reads every kept byte of o up to its current end.
func readKept(t *testing.T, o *Output) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 333)
	for off := int64(0); ; {
		n, err := o.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		switch {
		case err == io.EOF:
			return out
		case errors.Is(err, ErrDropped):
			off = o.NextKept(off)
		case err != nil:
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
	}
}

// checkKept checks o's Info and every kept byte against data.
func checkKept(t *testing.T, o *Output, data []byte) {
	t.Helper()
	h, c := o.head, o.chunk
	from, to := layout(int64(len(data)), h, c)
	want := OutputInfo{Total: int64(len(data)), Stored: int64(len(data)) - (to - from), Truncated: to > from, DroppedFrom: from, DroppedTo: to}
	if got := o.Info(); got != want {
		t.Fatalf("Info %+v, want %+v (head %d chunk %d)", got, want, h, c)
	}
	if got, kept := readKept(t, o), append(data[:from:from], data[to:]...); !bytes.Equal(got, kept) {
		t.Fatalf("kept bytes differ: got %d, want %d", len(got), len(kept))
	}
	if to > from {
		buf := make([]byte, 100)
		var de *DroppedError
		if n, err := o.ReadAt(buf, from); n != 0 || !errors.As(err, &de) || de.Resume != to || de.Off != from {
			t.Errorf("ReadAt(%d) = %d, %v; want a DroppedError resuming at %d", from, n, err, to)
		}
		if n, err := o.ReadAt(buf, from-10); n != 10 || !errors.Is(err, ErrDropped) || !bytes.Equal(buf[:10], data[from-10:from]) {
			t.Errorf("ReadAt across the head's end = %d, %v", n, err)
		}
		if got := o.NextKept(from + 1); got != to {
			t.Errorf("NextKept(%d) = %d, want %d", from+1, got, to)
		}
	}
	if got := o.NextKept(0); got != 0 {
		t.Errorf("NextKept(0) = %d", got)
	}
	if n, err := o.ReadAt(make([]byte, 1), int64(len(data))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want io.EOF", n, err)
	}
}

func TestTruncatedHeadAndTail(t *testing.T) {
	t.Parallel()
	data := randomBytes(1_000_000, 3)
	s := newSpec(t, "cat")
	s.Stdin = data
	s.MaxOutput = 64 << 10
	s.OutputDir = filepath.Join(s.OutputDir, "spool")
	tk, r := run(t, s)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d", r.ExitCode)
	}
	o := tk.Stdout()
	if o.head != 16<<10 || o.chunk != 24<<10 {
		t.Fatalf("head %d chunk %d", o.head, o.chunk)
	}
	checkKept(t, o, data)
	if info := o.Info(); info.Stored > s.MaxOutput || !info.Truncated {
		t.Errorf("Info %+v exceeds MaxOutput %d", info, s.MaxOutput)
	}
	reopened, err := OpenOutput(s.OutputDir, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	if !reopened.Complete() {
		t.Error("reopened output not complete")
	}
	checkKept(t, reopened, data)
	for _, f := range []string{"stdout.head", "stdout.tail0", "stdout.tail1", "stdout.meta"} { // stderr was silent: no files
		if _, err := os.Stat(filepath.Join(s.OutputDir, f)); err != nil {
			t.Error(err)
		}
	}
	if fi, err := os.Stat(s.OutputDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("OutputDir mode %v %v", fi.Mode(), err)
	}
}

// writePieces writes data to o in random pieces up to max bytes.
func writePieces(o *Output, data []byte, max int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	for len(data) > 0 {
		n := min(len(data), 1+r.IntN(max))
		o.write(data[:n])
		data = data[n:]
	}
}

// closeFiles closes a writer's files without completing the spool, as if
// the service had died.
func closeFiles(o *Output) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, f := range o.files {
		f.Close()
		o.files[i] = nil
	}
}

func TestOpenOutputAfterCrash(t *testing.T) {
	t.Parallel()
	const max = 800 // head 200, chunk 300
	for _, size := range []int{0, 1, 199, 200, 201, 499, 500, 501, 800, 801, 1100, 5000, 5001} {
		dir := t.TempDir()
		o, err := newOutput(dir, "stdout", max)
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(size, uint64(size))
		writePieces(o, data, 450, uint64(size))
		checkKept(t, o, data) // live
		closeFiles(o)         // crash: no final meta
		got, err := OpenOutput(dir, "stdout")
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		checkKept(t, got, data)
	}
}

// TestOpenOutputCrashInRotation simulates a death between truncating the
// next chunk and writing the meta that makes it current: the previous
// chunk's range is reported dropped, the rest is intact.
func TestOpenOutputCrashInRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o, err := newOutput(dir, "stdout", 800)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(200+3*300, 9) // the third chunk (file tail0) is exactly full
	writePieces(o, data, 100, 9)
	closeFiles(o)
	if err := os.Truncate(filepath.Join(dir, "stdout.tail1"), 0); err != nil {
		t.Fatal(err)
	}
	got, err := OpenOutput(dir, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	want := OutputInfo{Total: 1100, Stored: 500, Truncated: true, DroppedFrom: 200, DroppedTo: 800}
	if info := got.Info(); info != want {
		t.Errorf("Info %+v, want %+v", info, want)
	}
	if kept := readAll(t, got); !bytes.Equal(kept, append(data[:200:200], data[800:]...)) {
		t.Error("kept bytes differ")
	}
}

func TestOpenOutputErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A stream that wrote nothing has no spool files: it opens empty.
	if o, err := OpenOutput(dir, "stdout"); err != nil || o.Info() != (OutputInfo{}) || !o.Complete() {
		t.Errorf("OpenOutput of an empty stream = %+v, %v", o, err)
	}
	os.WriteFile(filepath.Join(dir, "stdout.meta"), []byte(`{"rotated":1,"head":5,"chunk":3}`), 0o600)
	if _, err := OpenOutput(dir, "stdout"); err == nil {
		t.Error("OpenOutput of an inconsistent meta succeeded")
	}
}

// TestFollowWhileWriting has readers follow a stream being written with
// rotations: every byte any of them reads is the byte at that offset, and
// a reader that keeps up sees everything when nothing is dropped.
func TestFollowWhileWriting(t *testing.T) {
	t.Parallel()
	for _, max := range []int64{1 << 20, 4000} {
		o, err := newOutput(t.TempDir(), "stdout", max)
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(300_000, uint64(max))
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				follow(t, o, data)
			}()
		}
		writePieces(o, data, 5000, 1)
		o.close()
		wg.Wait()
		checkKept(t, o, data)
	}
}

// follow reads o live as in the Output documentation, checking each byte.
func follow(t *testing.T, o *Output, data []byte) {
	buf := make([]byte, 3000)
	var off, read int64
	for {
		changed, complete := o.Changed(), o.Complete()
		n, err := o.ReadAt(buf, off)
		if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Errorf("bytes at %d differ", off)
			return
		}
		off += int64(n)
		read += int64(n)
		switch {
		case errors.Is(err, ErrDropped):
			off = o.NextKept(off)
		case err == io.EOF && complete:
			if off != int64(len(data)) || (o.head+2*o.chunk >= int64(len(data)) && read != off) {
				t.Errorf("follower ended at %d having read %d of %d", off, read, len(data))
			}
			return
		case err == io.EOF:
			<-changed
		case err != nil:
			t.Errorf("ReadAt(%d): %v", off, err)
			return
		}
	}
}

func TestFollowTask(t *testing.T) {
	t.Parallel()
	s := sh(t, `i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done`)
	tk := start(t, s)
	got := readAll(t, tk.Stdout()) // from the start, while it runs
	var want bytes.Buffer
	for i := range 3000 {
		want.WriteString("line " + itoa(i) + "\n")
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("followed %d bytes, want %d", len(got), want.Len())
	}
	wait(t, tk)
}

func itoa(i int) string { return string(appendInt(nil, i)) }

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

// TestCopyFallback covers the buffered path pump takes where splice(2)
// cannot be used.
func TestCopyFallback(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	o, err := newOutput(t.TempDir(), "stdout", 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(500_000, 5)
	go func() {
		w.Write(data)
		w.Close()
	}()
	if err := copyAll(r, o); err != nil {
		t.Fatal(err)
	}
	r.Close()
	o.close()
	checkKept(t, o, data)
}

// A command that writes nothing leaves no spool files, and its streams
// read as empty and complete, live and after a restart.
func TestNoOutputNoFiles(t *testing.T) {
	dir := t.TempDir()
	tk, err := Start(Spec{Path: "/bin/true", OutputDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool files for a silent command: %v", ents)
	}
	for _, o := range []*Output{tk.Stdout(), tk.Stderr()} {
		if n, err := o.ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF || !o.Complete() {
			t.Errorf("ReadAt = %d, %v; complete %v", n, err, o.Complete())
		}
	}
}
