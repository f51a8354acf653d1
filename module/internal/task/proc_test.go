package task

import (
	"fmt"
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4242 (a) b) (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{Pid: 4242, Comm: "a) b) (c)", State: 'S', PPid: 1, Pgrp: 4242, Session: 4242, StartTime: 987654}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
	for _, bad := range []string{"", "1 (x S 1 2 3", "1 (x) S 1 2", "x (y) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 5"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
	self, err := readStat(os.Getpid())
	if err != nil || self.Pid != os.Getpid() || self.PPid != os.Getppid() || self.StartTime == 0 {
		t.Errorf("own stat %+v %v", self, err)
	}
}

// statLine formats a /proc/<pid>/stat line with the given fields.
func statLine(pid int, comm string, pgrp int, start uint64) string {
	return fmt.Sprintf("%d (%s) R 7 %d 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0 0\n", pid, comm, pgrp, start)
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine(1, "init", 1, 5)), "sh", 10, uint64(100))
	f.Add([]byte("12 (a) b) S"), ") ) (", 2, uint64(1<<63))
	f.Add([]byte("(((((())))))"), "x\ny", 0, uint64(0))
	f.Fuzz(func(t *testing.T, raw []byte, comm string, pgrp int, start uint64) {
		parseStat(raw) // must not panic, whatever it is given
		if pgrp < 0 {
			pgrp = -pgrp
		}
		if pgrp < 0 {
			return
		}
		st, err := parseStat([]byte(statLine(99, comm, pgrp, start)))
		if err != nil { // any comm is parsed, even one with ')', '(' or spaces
			t.Fatalf("comm %q: %v", comm, err)
		}
		if st.Pid != 99 || st.Comm != comm || st.Pgrp != pgrp || st.StartTime != start || st.State != 'R' || st.PPid != 7 || st.Session != 3 {
			t.Fatalf("comm %q pgrp %d start %d: parsed %+v", comm, pgrp, start, st)
		}
	})
}

func BenchmarkCapture1GiB(b *testing.B) {
	const size = 1 << 30
	b.SetBytes(size)
	for b.Loop() {
		s := Spec{Path: "head", Args: []string{"head", "-c", fmt.Sprint(size), "/dev/zero"}, OutputDir: b.TempDir()}
		tk, err := Start(s)
		if err != nil {
			b.Fatal(err)
		}
		r, err := tk.Wait(b.Context())
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("%+v %v", r, err)
		}
		if info := tk.Stdout().Info(); info.Total != size {
			b.Fatalf("captured %d bytes", info.Total)
		}
	}
}
