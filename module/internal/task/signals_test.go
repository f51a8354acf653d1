package task

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// A service started with SIGHUP and SIGINT ignored (nohup, a shell's
// background job) runs its commands with them ignored, until it calls
// DefaultSignals; then with none ignored (signals 32 and 33 aside, which
// the shell that started the test may ignore). (An inherited SIGQUIT ignore
// the Go runtime already undoes for children: it always catches SIGQUIT.)
// The service is the test binary, started by sh after an empty trap.
func TestDefaultSignals(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("/bin/sh", "-c", `trap '' HUP INT QUIT; exec "$0"`, os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=signals")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("service: %v\n%s", err, out)
	}
	var before, after uint64
	var defaulted string
	if _, err := fmt.Sscanf(string(out), "before %x after %x defaulted %s", &before, &after, &defaulted); err != nil {
		t.Fatalf("service said %q: %v", out, err)
	}
	const want = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGINT-1)
	if before&want != want {
		t.Fatalf("a command started before DefaultSignals ignores %#x, want at least %#x (HUP, INT): the test's set-up failed", before, want)
	}
	if after&^libcSignals != 0 {
		t.Errorf("a command started after DefaultSignals ignores %#x, want none (but maybe 32 and 33)", after)
	}
	for _, s := range []string{"hangup", "interrupt"} {
		if !strings.Contains(defaulted, s) {
			t.Errorf("DefaultSignals returned %s, want %s among them", defaulted, s)
		}
	}
}

// signalsChild prints the SigIgn mask of a command it starts before
// DefaultSignals and of one after, and the signals DefaultSignals
// returned, comma-separated.
func signalsChild() int {
	ignored := func() (uint64, error) {
		dir, err := os.MkdirTemp("", "task-signals-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		tk, err := Start(Spec{Path: "/bin/cat", Args: []string{"cat", "/proc/self/status"}, Env: []string{"PATH=/usr/bin:/bin"}, OutputDir: dir})
		if err != nil {
			return 0, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if r, err := tk.Wait(ctx); err != nil || r.ExitCode != 0 {
			return 0, fmt.Errorf("cat: %+v %v", r, err)
		}
		b := make([]byte, 64<<10)
		n, _ := tk.Stdout().ReadAt(b, 0)
		return sigIgn(b[:n])
	}
	before, err := ignored()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	sigs, err := DefaultSignals()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	after, err := ignored()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	names := make([]string, len(sigs))
	for i, s := range sigs {
		names[i] = strings.ReplaceAll(s.String(), " ", "-")
	}
	fmt.Printf("before %x after %x defaulted %s\n", before, after, strings.Join(names, ","))
	return 0
}

func TestSigIgn(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000007\nSigCgt:\t0\n", 7, true},
		{"SigIgn:\t0000000000000000\n", 0, true},
		{"SigIgn:\tzz\n", 0, false},
		{"Name:\tx\n", 0, false},
	} {
		got, err := sigIgn([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("sigIgn(%q) = %#x, %v", tc.in, got, err)
		}
	}
}
