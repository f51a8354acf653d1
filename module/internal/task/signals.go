package task

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// DefaultSignals gives the commands this process starts the default
// action of every signal it inherited ignored, and returns those signals.
//
// A signal ignored at exec stays ignored in the new program, and POSIX
// shells may not even trap it. So a service started under nohup would
// run every command with SIGHUP ignored, and one started from a shell's
// background job would run them with SIGINT ignored (and SIGQUIT, but the
// Go runtime resets that one itself): a `trap ... HUP` in a command would
// never fire, and a SIGHUP or SIGINT sent through the service would do
// nothing. sshd and login shells give
// their commands the default actions; so does this.
//
// It works by having the Go runtime catch each of those signals (into a
// channel nobody reads). The runtime resets a caught signal to its default
// action in every child it forks, and this process goes on ignoring the
// signal. Dispositions are the process's: call it once, before the first
// Start. It reads the kernel's list of ignored signals, /proc/self/status
// SigIgn, before and after; without it, it does nothing and returns the
// error. Signals 32 and 33 are left as they are: the C library reserves
// them for itself (thread cancellation, set*id across threads) and the Go
// runtime cannot catch them.
func DefaultSignals() ([]os.Signal, error) {
	mask, err := ignoredSignals()
	if err != nil {
		return nil, err
	}
	var sigs []os.Signal
	for n := 1; n <= 64; n++ {
		if mask&(1<<(n-1)) != 0 {
			sigs = append(sigs, syscall.Signal(n))
		}
	}
	if len(sigs) == 0 {
		return nil, nil
	}
	signal.Notify(make(chan os.Signal, 1), sigs...)
	left, err := ignoredSignals()
	if err == nil && left != 0 {
		err = fmt.Errorf("task: signals still ignored after DefaultSignals: SigIgn %#x", left)
	}
	return sigs, err
}

// libcSignals are the signals DefaultSignals leaves alone: 32 and 33.
const libcSignals = 1<<(32-1) | 1<<(33-1)

// ignoredSignals is this process's SigIgn mask without SIGKILL, SIGSTOP
// (never ignored) and libcSignals.
func ignoredSignals() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("task: signal dispositions: %w", err)
	}
	mask, err := sigIgn(b)
	return mask &^ (libcSignals | 1<<(syscall.SIGKILL-1) | 1<<(syscall.SIGSTOP-1)), err
}

// sigIgn returns the SigIgn mask of a /proc/<pid>/status.
func sigIgn(status []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("SigIgn:")); ok {
			mask, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("task: /proc status: SigIgn: %w", err)
			}
			return mask, nil
		}
	}
	return 0, fmt.Errorf("task: /proc status has no SigIgn line")
}
