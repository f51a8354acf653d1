package main

// The fan-out figures: remotectl running `true` on eight agents at once,
// against eight single-agent runs; and, when an ssh server can be started
// here, remotectl per command against ssh to loopback with a fresh
// connection (and, for reference, a multiplexed one).

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	fanAgents = 8
	fanReps   = 15
)

func fanOut(dir string) error {
	var addrs []string
	for range fanAgents {
		h, url, err := startRemote(dir, "")
		if err != nil {
			return err
		}
		defer h.stop()
		addrs = append(addrs, strings.TrimPrefix(url, "http://"))
	}
	remotectl := filepath.Join(dir, "remotectl")
	single := func() error { return runQuiet(remotectl, "run", "--agent", addrs[0], "--", "true") }
	fan := func() error {
		return runQuiet(remotectl, "run", "--agents", strings.Join(addrs, ","), "--max-concurrency", strconv.Itoa(fanAgents), "--", "true")
	}
	if err := fan(); err != nil { // warm-up: every agent has run a task
		return err
	}
	var singles, fans []time.Duration
	for range fanReps { // alternating, so that load changes fall on both
		d, err := timeOne(single)
		if err != nil {
			return err
		}
		singles = append(singles, d)
		if d, err = timeOne(fan); err != nil {
			return err
		}
		fans = append(fans, d)
	}
	slices.Sort(singles)
	slices.Sort(fans)
	floor := fanAgents * median(singles)
	ratio := float64(median(fans)) / float64(floor)
	const target = 0.5
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (floor: %d single runs; target <= %.2fx)  %s\n",
		fmt.Sprintf("fan-out: remotectl run true on %d agents, p50", fanAgents), round(median(fans)), round(floor),
		ratio, fanAgents, target, verdict(ratio <= target))

	ssh, err := startSSHD()
	if errors.Is(err, errNoSSH) {
		fmt.Printf("%-44s skipped: %v\n", "ssh: fresh connection per command", err)
		return nil
	}
	if err != nil {
		return err
	}
	defer ssh.stop()
	fresh, err := timeN(fanReps, func() error { return runQuiet("ssh", ssh.args("true")...) })
	if err != nil {
		return fmt.Errorf("ssh to loopback: %w", err)
	}
	perCommand := median(fans) / fanAgents
	const sshTarget = 20.0
	r := float64(median(fresh)) / float64(perCommand)
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (remotectl per command in the fan-out; target >= %.0fx faster)  %s\n",
		"ssh: fresh connection per command, p50", round(median(fresh)), round(perCommand), r, sshTarget, verdict(r >= sshTarget))
	r = float64(median(fresh)) / float64(median(singles))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (remotectl run on one agent)\n",
		"ssh: fresh connection vs one remotectl run", round(median(fresh)), round(median(singles)), r)
	stopMaster, err := ssh.master()
	if err != nil {
		return err
	}
	defer stopMaster()
	muxed, err := timeN(fanReps, func() error { return runQuiet("ssh", ssh.muxArgs("true")...) })
	if err != nil {
		return fmt.Errorf("multiplexed ssh: %w", err)
	}
	r = float64(median(muxed)) / float64(median(singles))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (remotectl run on one agent)\n",
		"ssh: multiplexed connection per command, p50", round(median(muxed)), round(median(singles)), r)
	return nil
}

// runQuiet runs a command, its output kept only for the error.
func runQuiet(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func timeOne(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

// timeN times n calls of f and returns them sorted.
func timeN(n int, f func() error) ([]time.Duration, error) {
	out := make([]time.Duration, n)
	for i := range out {
		d, err := timeOne(f)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	slices.Sort(out)
	return out, nil
}

var errNoSSH = errors.New("no ssh server or client here (Debian: apt-get install openssh-server openssh-client)")

// sshServer is an sshd of the bench's own on a loopback port, with keys
// made for it, letting in only the bench's key for the current user.
type sshServer struct {
	cmd  *exec.Cmd
	dir  string
	port int
}

func startSSHD() (*sshServer, error) {
	sshd, err := exec.LookPath("/usr/sbin/sshd")
	if err != nil {
		return nil, errNoSSH
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		return nil, errNoSSH
	}
	if os.Geteuid() == 0 {
		// Run as root, sshd insists on its privilege separation folder.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "execmod-bench-ssh-")
	if err != nil {
		return nil, err
	}
	s := &sshServer{dir: dir}
	for _, k := range []string{"host_key", "client_key"} {
		if err := runQuiet("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	}
	if err == nil {
		s.port, err = freePort()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	config := fmt.Sprintf("ListenAddress 127.0.0.1:%d\nHostKey %s\nAuthorizedKeysFile %s\nPasswordAuthentication no\n"+
		"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile none\n",
		s.port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(config), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.cmd = exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := s.cmd.StderrPipe()
	if err == nil {
		err = s.cmd.Start()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sc := bufio.NewScanner(stderr)
	var log []string
	for sc.Scan() {
		log = append(log, sc.Text())
		if strings.Contains(sc.Text(), "Server listening on 127.0.0.1") {
			go func() {
				for sc.Scan() {
				}
			}()
			return s, nil
		}
	}
	s.stop()
	return nil, fmt.Errorf("sshd did not start:\n%s", strings.Join(log, "\n"))
}

// args is an ssh command line running cmd through a fresh connection.
func (s *sshServer) args(cmd ...string) []string {
	return append([]string{"-F", "/dev/null", "-i", filepath.Join(s.dir, "client_key"), "-p", strconv.Itoa(s.port),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR", "127.0.0.1"}, cmd...)
}

func (s *sshServer) control() string { return filepath.Join(s.dir, "control") }

// master opens a multiplexing master connection; muxArgs commands then
// run through it.
func (s *sshServer) master() (stop func(), err error) {
	args := append([]string{"-M", "-N", "-f", "-o", "ControlPath=" + s.control()}, s.args()...)
	if err := runQuiet("ssh", args...); err != nil {
		return nil, err
	}
	return func() { _ = runQuiet("ssh", "-S", s.control(), "-O", "exit", "127.0.0.1") }, nil
}

func (s *sshServer) muxArgs(cmd ...string) []string {
	return append([]string{"-o", "ControlPath=" + s.control(), "-o", "ControlMaster=no"}, s.args(cmd...)...)
}

func (s *sshServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
