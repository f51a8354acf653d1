package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is what the soak reads of one process from /proc/<pid>/stat.
type proc struct {
	Pid, PPid, Pgrp, Session int
	State                    byte
	Start                    uint64 // clock ticks after boot: with Pid, names one process despite pid reuse
	Comm                     string
}

func readProc(pid int) (proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, err
	}
	// comm is in parentheses and may hold spaces and ')': the fields
	// are after the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return proc{}, fmt.Errorf("/proc/%d/stat: no (comm)", pid)
	}
	f := bytes.Fields(b[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return proc{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	p := proc{Pid: pid, Comm: string(b[open+1 : end]), State: f[0][0]}
	ints := []*int{&p.PPid, &p.Pgrp, &p.Session}
	for i, dst := range ints {
		if *dst, err = strconv.Atoi(string(f[1+i])); err != nil {
			return proc{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	if p.Start, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return proc{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return p, nil
}

func (p proc) zombie() bool { return p.State == 'Z' || p.State == 'X' }

// allPids lists the pids in /proc.
func allPids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// hasEnv reports whether pid's initial environment holds kv exactly.
func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

func exePath(pid int) string {
	p, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return strings.TrimSuffix(p, " (deleted)")
}

// rssKiB is VmRSS of pid, 0 if it cannot be read.
func rssKiB(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// fdTargets lists where pid's file descriptors from 3 on point ("socket:[123]",
// "/work/x", "pipe:[9]", ...).
func fdTargets(pid int) []string {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if n, _ := strconv.Atoi(e.Name()); n <= 2 {
			continue // stdin, stdout and stderr are the soak's to give
		}
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// unixSocketPaths maps socket inodes to their bound paths (from
// /proc/net/unix); unnamed and abstract sockets are left out.
func unixSocketPaths() map[string]string {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return nil
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 8 && strings.HasPrefix(fl[7], "/") {
			m[fl[6]] = fl[7]
		}
	}
	return m
}

// fdReport is what a process has open outside its allowed places.
type fdReport struct {
	Total   int      `json:"total"`
	Sockets int      `json:"sockets"`
	Outside []string `json:"outside,omitempty"` // files and named sockets outside work_dir
}

// inspectFds classifies pid's descriptors: regular files and named unix
// sockets must be under one of dirs (or be devices, the executable, ...).
func inspectFds(pid int, dirs []string, socks map[string]string) fdReport {
	var r fdReport
	under := func(p string) bool {
		for _, d := range dirs {
			if p == d || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
		return false
	}
	for _, t := range fdTargets(pid) {
		r.Total++
		switch {
		case strings.HasPrefix(t, "socket:["):
			r.Sockets++
			if p, ok := socks[strings.TrimSuffix(strings.TrimPrefix(t, "socket:["), "]")]; ok && !under(p) {
				r.Outside = append(r.Outside, "socket "+p)
			}
		case strings.HasPrefix(t, "/dev/"), strings.HasPrefix(t, "/proc/"), strings.HasPrefix(t, "/sys/fs/cgroup/"), !strings.HasPrefix(t, "/"):
			// devices, pipes, anon inodes; the Go runtime's cgroup CPU limit
		case !under(t):
			r.Outside = append(r.Outside, t)
		}
	}
	return r
}

// seenProc is a process the watcher found carrying the run's marker.
type seenProc struct {
	Pid     int       `json:"pid"`
	Start   uint64    `json:"-"`
	Cmdline string    `json:"cmdline"`
	First   time.Time `json:"-"`
}

// procWatch samples /proc while the soak runs, remembering every process
// that carried the marker: at the end, one of them still alive (or a
// zombie) is a leftover however it escaped.
type procWatch struct {
	marker string

	mu   sync.Mutex
	seen map[[2]uint64]*seenProc // (pid, start) -> process
}

func newProcWatch(marker string) *procWatch {
	return &procWatch{marker: marker, seen: map[[2]uint64]*seenProc{}}
}

// scan walks /proc once and returns the live (non-zombie) processes that
// carry the marker now.
func (w *procWatch) scan() []seenProc {
	var live []seenProc
	for _, pid := range allPids() {
		if !hasEnv(pid, w.marker) {
			continue
		}
		p, err := readProc(pid)
		if err != nil {
			continue
		}
		key := [2]uint64{uint64(pid), p.Start}
		w.mu.Lock()
		sp, ok := w.seen[key]
		if !ok {
			sp = &seenProc{Pid: pid, Start: p.Start, Cmdline: cmdline(pid), First: time.Now()}
			w.seen[key] = sp
		}
		w.mu.Unlock()
		if !p.zombie() {
			live = append(live, *sp)
		}
	}
	return live
}

// count is the number of distinct marked processes seen.
func (w *procWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// zombies returns the marked processes seen earlier that are zombies now
// (a zombie's environment cannot be read, so the scan alone misses them).
func (w *procWatch) zombies() []seenProc {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []seenProc
	for _, sp := range w.seen {
		if p, err := readProc(sp.Pid); err == nil && p.Start == sp.Start && p.zombie() {
			out = append(out, *sp)
		}
	}
	return out
}

// zombieChildren lists the zombies whose parent is one of pids.
func zombieChildren(pids ...int) []proc {
	var out []proc
	for _, pid := range allPids() {
		p, err := readProc(pid)
		if err != nil || !p.zombie() {
			continue
		}
		for _, parent := range pids {
			if parent > 0 && p.PPid == parent {
				out = append(out, p)
			}
		}
	}
	return out
}

// killLeftover SIGKILLs pid if it is still the process sp.
func killLeftover(sp seenProc) {
	if p, err := readProc(sp.Pid); err == nil && p.Start == sp.Start {
		_ = syscall.Kill(sp.Pid, syscall.SIGKILL)
	}
}

// dirEntries lists what is under dir (relative paths), for "nothing was
// written here" checks.
func dirEntries(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				out = append(out, p+": "+err.Error())
			}
			return nil
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}
