package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// metaSize is the fixed size of a meta record: JSON padded with spaces.
const metaSize = 256

// metaFile replaces a small file atomically and cheaply. It keeps two
// inodes open, one named path and one named path+".tmp"; an update writes
// the whole fixed-size record over the tmp inode, then swaps the two
// names with renameat2(RENAME_EXCHANGE). Readers of path always see a
// complete record. A plain rename over path would do the same but costs
// tens of times more on ext4 (it flushes the new file's data), and the
// meta is replaced at every rotation of a busy stream. Where the file
// system cannot exchange names it falls back to write-temp-then-rename.
type metaFile struct {
	path     string
	cur, tmp *os.File // the inodes now named path and path.tmp
	exchange bool
}

// createMeta prepares path and path.tmp; the first replace names path.
func createMeta(path string) (*metaFile, error) {
	m := &metaFile{path: path, exchange: true}
	var err error
	if m.tmp, err = os.OpenFile(path+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
		return nil, err
	}
	return m, nil
}

// encodeMeta is m as a metaSize record.
func encodeMeta(m spoolMeta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) >= metaSize {
		return nil, errors.New("meta record too long")
	}
	rec := bytes.Repeat([]byte{' '}, metaSize)
	copy(rec, b)
	rec[metaSize-1] = '\n'
	return rec, nil
}

// replace makes path hold m.
func (f *metaFile) replace(m spoolMeta) error {
	rec, err := encodeMeta(m)
	if err != nil {
		return err
	}
	if !f.exchange {
		if err := os.WriteFile(f.path+".tmp", rec, 0o600); err != nil {
			return err
		}
		return os.Rename(f.path+".tmp", f.path)
	}
	if _, err := f.tmp.WriteAt(rec, 0); err != nil {
		return err
	}
	if f.cur == nil { // first record: nothing to exchange with yet
		if err := os.Rename(f.path+".tmp", f.path); err != nil {
			return err
		}
		f.cur = f.tmp
		f.tmp, err = os.OpenFile(f.path+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, f.path+".tmp", unix.AT_FDCWD, f.path, unix.RENAME_EXCHANGE)
	if err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
		f.exchange = false
		f.closeFiles()
		return os.Rename(f.path+".tmp", f.path)
	}
	if err != nil {
		return err
	}
	f.cur, f.tmp = f.tmp, f.cur
	return nil
}

func (f *metaFile) closeFiles() {
	for _, p := range []**os.File{&f.cur, &f.tmp} {
		if *p != nil {
			(*p).Close()
			*p = nil
		}
	}
}

// close releases the files and removes path.tmp; path stays. Nil-safe.
func (f *metaFile) close() error {
	if f == nil {
		return nil
	}
	f.closeFiles()
	if err := os.Remove(f.path + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
