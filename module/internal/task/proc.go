package task

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// procStat is the part of /proc/<pid>/stat this package uses.
type procStat struct {
	Pid       int
	Comm      string
	State     byte
	PPid      int
	Pgrp      int
	Session   int
	StartTime uint64 // field 22: clock ticks after boot
}

// parseStat parses the text of /proc/<pid>/stat. The comm field is in
// parentheses and may itself contain spaces and ')', so the fields are taken
// from the text after the last ')'.
func parseStat(b []byte) (procStat, error) {
	var st procStat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return st, errors.New("task: /proc stat: no (comm)")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return st, fmt.Errorf("task: /proc stat: pid: %w", err)
	}
	st.Pid = pid
	st.Comm = string(b[open+1 : end])
	// Fields 3 onwards; fields[i] is field i+3.
	fields := bytes.Fields(b[end+1:])
	if len(fields) < 20 {
		return st, fmt.Errorf("task: /proc stat: %d fields after comm, want at least 20", len(fields))
	}
	if len(fields[0]) != 1 {
		return st, fmt.Errorf("task: /proc stat: state %q", fields[0])
	}
	st.State = fields[0][0]
	ints := []*int{&st.PPid, &st.Pgrp, &st.Session}
	for i, p := range ints {
		if *p, err = strconv.Atoi(string(fields[1+i])); err != nil {
			return st, fmt.Errorf("task: /proc stat: field %d: %w", 4+i, err)
		}
	}
	if st.StartTime, err = strconv.ParseUint(string(fields[19]), 10, 64); err != nil {
		return st, fmt.Errorf("task: /proc stat: field 22: %w", err)
	}
	return st, nil
}

// readStat reads and parses /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// alive reports whether st describes a process that has not exited.
func (st procStat) alive() bool { return st.State != 'Z' && st.State != 'X' }

// listPids returns the pids of /proc.
func listPids() ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// KillGroup SIGKILLs every live process of process group pgid whose start
// time (clock ticks after boot, /proc/<pid>/stat field 22) is at least
// notBefore, found by scanning /proc, and of the session of the same id
// (a task leads both), and returns how many distinct processes it
// signalled. It is meant for restarts: a task that was running
// when the service died is recognised by its Pgid and StartTicks even if
// the pid was reused since, because a stranger started earlier than
// notBefore is left alone. Each process is checked and signalled through a
// pidfd, so a pid reused between the check and the kill is never hit. The
// scan repeats until it finds no new process (one forked meanwhile). It
// never signals the calling process and refuses its process group. It
// does not wait for the processes to die. Safe to call twice.
func KillGroup(pgid int, notBefore uint64) (int, error) {
	if pgid <= 1 {
		return 0, fmt.Errorf("task: kill group: invalid pgid %d", pgid)
	}
	if pgid == unix.Getpgrp() {
		return 0, fmt.Errorf("task: kill group: %d is this service's own process group", pgid)
	}
	groups := map[int]uint64{pgid: notBefore}
	n, err := scanKill(groups)
	// A task leads its own session too (its id is the group's): a job it
	// moved to another group is still in the session.
	n += killSessions(groups)
	if err != nil {
		return n, fmt.Errorf("task: kill group: %w", err)
	}
	return n, nil
}

// killGroups is KillGroup for many groups (pgid -> notBefore) in one scan
// of /proc per pass; groups that are invalid or this process's own are
// skipped. It returns how many processes it signalled.
func killGroups(groups map[int]uint64) int {
	own := unix.Getpgrp()
	valid := make(map[int]uint64, len(groups))
	for pgid, t := range groups {
		if pgid > 1 && pgid != own {
			valid[pgid] = t
		}
	}
	n, _ := scanKill(valid)
	return n
}

// scanKill SIGKILLs the live members of the groups (pgid -> notBefore),
// repeating the scan of /proc until it finds no new process.
func scanKill(groups map[int]uint64) (int, error) {
	self := os.Getpid()
	seen := map[int]bool{}
	for pass := 0; pass < 100 && len(groups) > 0; pass++ {
		pids, err := listPids()
		if err != nil {
			return len(seen), err
		}
		found := false
		for _, pid := range pids {
			if pid == self || seen[pid] {
				continue
			}
			if killIfMember(pid, groups) {
				seen[pid] = true
				found = true
			}
		}
		if !found {
			break
		}
	}
	return len(seen), nil
}

// killIfMember SIGKILLs pid if it is a live member of one of the groups
// (pgid -> notBefore), started at or after that group's notBefore, and
// reports whether it did.
func killIfMember(pid int, groups map[int]uint64) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false // gone, or not ours to see
	}
	defer unix.Close(fd)
	st, err := readStat(pid)
	if err != nil || !st.alive() {
		return false
	}
	notBefore, ok := groups[st.Pgrp]
	if !ok || st.StartTime < notBefore {
		return false
	}
	// The pidfd's process is still alive, so the stat read after opening
	// it was its own, not a successor's.
	if unix.PidfdSendSignal(fd, 0, nil, 0) != nil {
		return false
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil
}

// selfPeakRSS is this process's peak resident set in bytes as
// getrusage(RUSAGE_SELF) reports it: at least the peak of its address
// space (VmHWM), which only grows, so read after a child's exec it is at
// least what the kernel folded into the child's ru_maxrss at the exec.
// (It may be higher: it also holds what was folded into ours at our own
// exec. Then fewer small commands get an exact figure; none a wrong one.)
func selfPeakRSS() (int64, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return ru.Maxrss << 10, nil
}
