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
// background job would run them with SIGINT and SIGQUIT ignored: a
// `trap ... HUP` in a command would never fire, and a SIGHUP or SIGINT
// sent through the service would do nothing. sshd and login shells give
// their commands the default actions; so does this.
//
// It works by having the Go runtime catch each of those signals (into a
// channel nobody reads). The runtime resets a caught signal to its default
// action in every child it forks, and this process goes on ignoring the
// signal. Dispositions are the process's: call it once, before the first
// Start. It reads the kernel's list of ignored signals, /proc/self/status
// SigIgn; without it, it does nothing and returns the error.
func DefaultSignals() ([]syscall.Signal, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("task: signal dispositions: %w", err)
	}
	mask, err := sigIgn(b)
	if err != nil {
		return nil, err
	}
	var sigs []syscall.Signal
	var osSigs []os.Signal
	for n := 1; n < 64; n++ {
		s := syscall.Signal(n)
		if mask&(1<<(n-1)) == 0 || s == syscall.SIGKILL || s == syscall.SIGSTOP {
			continue
		}
		sigs = append(sigs, s)
		osSigs = append(osSigs, s)
	}
	if len(osSigs) > 0 {
		signal.Notify(make(chan os.Signal, 1), osSigs...)
	}
	return sigs, nil
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
