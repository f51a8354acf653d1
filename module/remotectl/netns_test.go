package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/execmod/execmod/internal/hosttest"
)

// netnsAgent is a modhost alone in a network namespace the test made: a
// machine of its own, reachable at addr only over a veth pair.
type netnsAgent struct {
	ns, ip string
}

// ipCmd runs ip(8) and fails the test with its output.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// requireNetns skips the test, saying what is missing, where network
// namespaces cannot be made.
func requireNetns(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip(8) to make network namespaces with: install Debian's iproute2 (.ci/run does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("making network namespaces needs root")
	}
	probe := fmt.Sprintf("emprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("this machine does not allow network namespaces: %v: %s", err, out)
	}
	ipCmd(t, "netns", "del", probe)
}

// newNetnsAgent makes namespace number i with a veth pair to ours, the
// agent's side at 10.253.B.(4i+2)/30, and removes it all at cleanup.
func newNetnsAgent(t *testing.T, i int) netnsAgent {
	t.Helper()
	tag := fmt.Sprintf("%d%d", os.Getpid()%100000, i) // names of at most 15 bytes, unique per test run
	ns, outer, inner := "execmod"+tag, "emh"+tag, "emn"+tag
	b := os.Getpid() % 250
	hostIP, agentIP := fmt.Sprintf("10.253.%d.%d", b, 4*i+1), fmt.Sprintf("10.253.%d.%d", b, 4*i+2)
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) // takes the veth pair with it
	ipCmd(t, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
	ipCmd(t, "addr", "add", hostIP+"/30", "dev", outer)
	ipCmd(t, "link", "set", outer, "up")
	ipCmd(t, "-n", ns, "addr", "add", agentIP+"/30", "dev", inner)
	ipCmd(t, "-n", ns, "link", "set", inner, "up")
	ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	return netnsAgent{ns: ns, ip: agentIP}
}

// Agents as separate machines: each modhost in a network namespace of its
// own, all on port 5051 as in a cluster, on an address that is not
// loopback (so with authentication, which a non-loopback host requires).
// remotectl fans out to them from the test's namespace, and each command
// reports the address of the machine it ran on.
func TestFanOutAcrossNetworkNamespaces(t *testing.T) {
	requireNetns(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.json")
	if err := os.WriteFile(creds, []byte(`{"credentials":[{"principal":"ops","secret":"s3cret"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := range 3 {
		a := newNetnsAgent(t, i)
		h := hosttest.Launch(t, "ip", nil, "netns", "exec", a.ns, filepath.Join(bins, "modhost"),
			"--ip="+a.ip, "--port=5051", "--work_dir="+hosttest.ShortTemp(t), "--modules="+remoteJSON(),
			"--http_credentials=file://"+creds, "--authenticate_http_readonly", "--authenticate_http_readwrite")
		if _, err := h.Logs.Wait(regexp.MustCompile(`listening: addr=`+regexp.QuoteMeta(a.ip)+`:5051`), h.Exited); err != nil {
			t.Fatalf("agent in %s: %v\n%s", a.ns, err, h.Logs)
		}
		addrs = append(addrs, a.ip+":5051")
	}
	cmd := []string{"--shell", "--", `ip -4 -o addr show scope global | awk '{print "on", $4}'`}
	r := remotectl(t, nil, append([]string{"run", "--agents", strings.Join(addrs, ","), "--credentials", creds}, cmd...)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, a := range addrs {
		ip, _, _ := strings.Cut(a, ":")
		if want := a + ": on " + ip + "/30\n"; !strings.Contains(r.stdout, want) {
			t.Errorf("no %q: the command did not run on that agent's machine\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "3 agents: 3 succeeded, 0 failed, 0 skipped") {
		t.Errorf("summary:\n%s", r.stderr)
	}
	// Without credentials every agent refuses, and remotectl says so.
	r = remotectl(t, nil, append([]string{"run", "--agents", strings.Join(addrs, ","), "--max-errors", "100%"}, cmd...)...)
	if r.code != exitNoPerm || strings.Count(r.stderr, " denied ") != 3 {
		t.Errorf("without credentials = %d\n%s", r.code, r.stderr)
	}
}
