package task

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
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

// keptOf is what a spool whose Info is info keeps of data: all but the
// cap's dropped range and what followed a store error.
func keptOf(data []byte, info OutputInfo) []byte {
	end := info.Total - info.Unstored
	kept := append([]byte(nil), data[:min(info.DroppedFrom, end)]...)
	if info.DroppedTo == 0 { // nothing dropped by the cap
		return append(kept, data[info.DroppedFrom:end]...)
	}
	return append(kept, data[info.DroppedTo:end]...)
}

// checkLoss checks that o's Info accounts for every byte of data (the
// command wrote it all), that the kept bytes are data's less the ranges
// Info says were not kept, and that the store error is explained.
func checkLoss(t *testing.T, o *Output, data []byte, wantErr string) OutputInfo {
	t.Helper()
	info := o.Info()
	if info.Total != int64(len(data)) {
		t.Errorf("Total %d, the command wrote %d (%+v)", info.Total, len(data), info)
	}
	kept := keptOf(data, info)
	if info.Stored != int64(len(kept)) || info.Truncated != (info.Stored < info.Total) {
		t.Errorf("Info %+v: Stored or Truncated disagrees with the ranges (%d bytes kept)", info, len(kept))
	}
	if got := readKept(t, o); !bytes.Equal(got, kept) {
		t.Errorf("read %d kept bytes, want %d (%+v)", len(got), len(kept), info)
	}
	if (info.StoreErr != "") != (wantErr != "") || !strings.Contains(info.StoreErr, wantErr) || (wantErr == "") != (info.Unstored == 0) {
		t.Errorf("StoreErr %q, Unstored %d; want an error containing %q", info.StoreErr, info.Unstored, wantErr)
	}
	if wantErr != "" && (o.Err() == nil || !strings.Contains(o.Err().Error(), wantErr)) {
		t.Errorf("Err() = %v, want one containing %q", o.Err(), wantErr)
	}
	return info
}

// reopen checks that the spool, reopened after the writer closed it and
// given its Loss back, reads and accounts exactly as the live one did.
func reopen(t *testing.T, dir string, live OutputInfo, data []byte) {
	t.Helper()
	got, err := OpenOutput(dir, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	got.WithLoss(Loss{Unstored: live.Unstored, StoreErr: live.StoreErr})
	if info := got.Info(); info != live {
		t.Errorf("reopened Info %+v, live was %+v", info, live)
	}
	if k := readKept(t, got); !bytes.Equal(k, keptOf(data, live)) {
		t.Errorf("reopened: %d kept bytes, want %d", len(k), len(keptOf(data, live)))
	}
}

// A spool write that fails (here its head file is /dev/full, which
// answers every write with ENOSPC) stops storing the stream; every later
// byte is still taken and counted, and the accounting says what was lost
// and why.
func TestStoreErrorInHead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Symlink("/dev/full", filepath.Join(dir, "stdout.head")); err != nil {
		t.Fatal(err)
	}
	o, err := newOutput(dir, "stdout", 800)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(5000, 11)
	writePieces(o, data, 450, 11)
	o.close()
	info := checkLoss(t, o, data, "no space left on device")
	if info.Stored != 0 || info.Unstored != 5000 || info.StoreErr != "no space left on device" {
		t.Errorf("Info %+v, want nothing stored and all 5000 bytes unstored", info)
	}
	reopen(t, dir, info, data)
}

// A failure after the cap has dropped a middle range leaves two ranges
// not kept: the cap's and the one from the failure to the end. The tail
// chunk being written is swapped for /dev/full mid-stream.
func TestStoreErrorAfterDrop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o, err := newOutput(dir, "stdout", 800) // head 200, chunk 300
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(3000, 12)
	// The head, then chunks [200, 500) ... [1100, 1400) and 50 bytes of the
	// next: the cap drops [200, 1100).
	writePieces(o, data[:1450], 100, 12)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	real := o.files[fileTail0+o.cur]
	o.files[fileTail0+o.cur] = full
	writePieces(o, data[1450:], 100, 13)
	o.files[fileTail0+o.cur] = real
	full.Close()
	o.close()
	info := checkLoss(t, o, data, "no space left on device")
	if info.DroppedFrom != 200 || info.DroppedTo != 1100 || info.Unstored != 3000-1450 || info.Stored != 200+350 {
		t.Errorf("Info %+v, want the cap's [200, 1100) dropped and [1450, 3000) unstored", info)
	}
	reopen(t, dir, info, data)
}

// The same on a real full file system: a tmpfs with little room left, a
// real command writing a megabyte. The command is never blocked; the
// accounting holds wherever the disk ran out, and the spool reopens the
// same.
func TestStoreErrorFullDisk(t *testing.T) {
	root := smallTmpfs(t, 256<<10)
	data := randomBytes(1<<20, 14)
	for i, free := range []int64{0, 4 << 10, 24 << 10, 40 << 10} {
		dir := filepath.Join(root, itoa(i))
		fillTo(t, root, free)
		s := newSpec(t, "cat")
		s.Stdin, s.MaxOutput, s.OutputDir = data, 64<<10, dir
		tk, r := run(t, s)
		if r.ExitCode != 0 || r.OutputCut {
			t.Fatalf("free %d: %+v", free, r)
		}
		info := checkLoss(t, tk.Stdout(), data, "no space left on device")
		reopen(t, dir, info, data)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
}

// smallTmpfs mounts a tmpfs of size bytes for the test (root only: the
// test is skipped otherwise, saying so) and returns its directory.
func smallTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a small tmpfs to fill needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+itoa(size)+",mode=0700"); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs to fill (%v)", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the test's tmpfs: %v", err)
		}
	})
	return dir
}

// fillTo makes root's file system have about free bytes left, with the
// file root/.filler.
func fillTo(t *testing.T, root string, free int64) {
	t.Helper()
	filler := filepath.Join(root, ".filler")
	os.Remove(filler)
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	if avail > free {
		if err := os.WriteFile(filler, make([]byte, avail-free), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
