// Command bench prints execmod's benchmark report: each figure next to a
// floor measured in the same run, the ratio between them, and whether the
// target is met. Run it with `make bench`; it builds what it measures.
//
// Figures:
//
//	forwarding  per-request latency of GET /hello/{name} through bin/modhost
//	            and the hello module process, against GET /health served by
//	            the same host itself (timed in alternating rounds); target:
//	            at most 300µs added at the median.
//	restart     host and module cold start to serving, against the module
//	            executable run by hand (target: 500ms); a module killed with
//	            SIGKILL until it serves again, its first crash, against that
//	            cold start (target: 250ms).
//	remote      bin/remote-execute: execute to result of `true` against an
//	            in-process server running it with os/exec (target: 1.3x at
//	            the median); tasks/s at concurrency 1, 8 and 32 against as
//	            many goroutines spawning `true` (target: 85%); 1 GiB of stdout captured
//	            against a plain pipe (target: 800 MiB/s, peak RSS up by at
//	            most 8 MiB); RSS with 100k finished tasks retained against
//	            an idle module (target: 200 MiB). The latency and throughput
//	            figures also show the architecture's own floor: the same
//	            requests through bench/baremodule, which only runs exec.
//	fanout      bin/remotectl running `true` on 8 agents at once against 8
//	            single-agent runs (target: 0.5x); with an ssh server
//	            (/usr/sbin/sshd; the bench runs its own on loopback), ssh to
//	            loopback with a fresh connection per command against
//	            remotectl's time per command in that fan-out (target: 20x
//	            slower), and a multiplexed ssh connection for reference.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// only selects figures by name (make bench ARGS=-only=latency,throughput).
var only = flag.String("only", "", "comma-separated figures to run: forwarding, restart, latency, throughput, capture, retained, fanout (default all)")

func run() error {
	flag.Parse()
	dir, err := os.MkdirTemp("", "execmod-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for name, pkg := range map[string]string{"modhost": "./host", "hello": "./examples/hello", "remote-execute": "./module/remote-execute",
		"remotectl": "./module/remotectl", "baremodule": "./bench/baremodule"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	fmt.Printf("execmod benchmark report (%s)\n\n", time.Now().UTC().Format(time.RFC3339))
	figures := []struct {
		name string
		f    func(string) error
	}{
		{"forwarding", forwarding}, {"restart", restart}, {"latency", remoteLatency},
		{"throughput", remoteThroughput}, {"capture", remoteCapture}, {"retained", remoteRetained},
		{"fanout", fanOut},
	}
	for _, fig := range figures {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), fig.name) {
			continue
		}
		if err := fig.f(dir); err != nil {
			return err
		}
	}
	return nil
}

const requests = 5000

// forwarding times GET /hello/{name}, served by the hello module through
// the host, against GET /health, which the same host serves itself: the
// same process, listener, mux and middleware, so the difference is the
// module hop. The two are timed in alternating rounds on one keep-alive
// connection each, so that a change in the machine's load falls on both.
func forwarding(dir string) error {
	h, url, err := startHost(dir)
	if err != nil {
		return err
	}
	defer h.stop()
	floorC, fwdC := newTimer(url+"/health"), newTimer(url+"/hello/bench")
	for _, c := range []*timer{floorC, fwdC} {
		if _, err := c.times(requests / 10); err != nil { // warm-up
			return err
		}
	}
	const rounds = 10
	var floor, fwd []time.Duration
	for range rounds {
		f, err := floorC.times(requests / rounds)
		if err != nil {
			return err
		}
		w, err := fwdC.times(requests / rounds)
		if err != nil {
			return err
		}
		floor, fwd = append(floor, f...), append(fwd, w...)
	}
	slices.Sort(floor)
	slices.Sort(fwd)
	added := median(fwd) - median(floor)
	const target = 300 * time.Microsecond
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  added %8s (target <= %s)  %s\n",
		"forwarding: GET through module, p50", round(median(fwd)), round(median(floor)),
		float64(median(fwd))/float64(median(floor)), round(added), target, verdict(added <= target))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx\n", "forwarding: p90", round(pct(fwd, 90)), round(pct(floor, 90)),
		float64(pct(fwd, 90))/float64(pct(floor, 90)))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (floor: GET /health served by the host itself)\n", "forwarding: p99",
		round(pct(fwd, 99)), round(pct(floor, 99)), float64(pct(fwd, 99))/float64(pct(floor, 99)))
	return nil
}

// restart measures a module killed with SIGKILL until it serves again,
// the first crash of each of several hosts (later crashes within a minute
// wait for the host's backoff on purpose), against the floor of starting
// host and module cold; and that cold start itself (host start to the
// module's "module serving" line), against the floor of running the module
// executable by hand, which exits at once without a host.
func restart(dir string) error {
	serving := regexp.MustCompile(`module serving: id=hello pid=(\d+) restarts=1\b`)
	var starts, restarts, execs []time.Duration
	for range 10 {
		began := time.Now()
		h, _, err := startHost(dir)
		if err != nil {
			return err
		}
		starts = append(starts, time.Since(began)) // the module serves before the host listens
		killed := time.Now()
		if err := syscall.Kill(h.firstPid, syscall.SIGKILL); err != nil {
			h.stop()
			return err
		}
		_, err = h.wait(serving)
		restarts = append(restarts, time.Since(killed))
		h.stop()
		if err != nil {
			return err
		}
		d, err := timeOne(func() error {
			// Without go-plugin's cookie the module says it is one and exits 1.
			if err := exec.Command(filepath.Join(dir, "hello")).Run(); err != nil && !isExit(err, 1) {
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		execs = append(execs, d)
	}
	slices.Sort(starts)
	slices.Sort(restarts)
	slices.Sort(execs)
	const startTarget, target = 500 * time.Millisecond, 250 * time.Millisecond
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (floor: the module run by hand; target <= %s)  %s\n",
		"start: host and module cold to serving, p50", round(median(starts)), round(median(execs)),
		float64(median(starts))/float64(median(execs)), startTarget, verdict(median(starts) <= startTarget))
	fmt.Printf("%-44s %10s  floor %10s  %6.2fx  (floor: cold start; target <= %s)  %s\n",
		"restart: kill -9 to serving again, p50", round(median(restarts)), round(median(starts)),
		float64(median(restarts))/float64(median(starts)), target, verdict(median(restarts) <= target))
	fmt.Printf("%-44s %10s  (%d first crashes, one per host)\n", "restart: max", round(pct(restarts, 100)), len(restarts))
	return nil
}

func isExit(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func round(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

// timer times sequential GETs of one URL over one keep-alive connection.
type timer struct {
	client *http.Client
	url    string
}

func newTimer(url string) *timer {
	return &timer{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}, url: url}
}

// times returns the durations of n GETs, unsorted.
func (t *timer) times(n int) ([]time.Duration, error) {
	out := make([]time.Duration, n)
	for i := range out {
		start := time.Now()
		resp, err := t.client.Get(t.url)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("GET %s: %s", t.url, resp.Status)
		}
		if err != nil {
			return nil, err
		}
		out[i] = time.Since(start)
	}
	return out, nil
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func pct(sorted []time.Duration, p int) time.Duration { return sorted[(len(sorted)-1)*p/100] }

// benchHost is a running bin/modhost whose log lines the bench reads.
type benchHost struct {
	cmd      *exec.Cmd
	lines    chan string
	work     string
	keep     bool // stop leaves work in place
	firstPid int  // the module's pid at start
}

// startHost runs bin/modhost with the hello module on a free port and
// returns once it logs that it is listening.
func startHost(dir string) (*benchHost, string, error) {
	desc := fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":"org_execmod_Hello"}]}]}`, filepath.Join(dir, "hello"))
	return launchHost(dir, "", desc, "hello")
}

// launchHost runs bin/modhost with the modules.json desc on a free port,
// in work (a fresh temporary work_dir when ""; either way stop removes
// it), and returns once the module id serves and the host listens.
func launchHost(dir, work, desc, id string) (*benchHost, string, error) {
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "mhb"); err != nil {
			return nil, "", err
		}
	}
	cmd := exec.Command(filepath.Join(dir, "modhost"), "--port=0", "--work_dir="+work, "--modules="+desc)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(work)
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(work)
		return nil, "", err
	}
	h := &benchHost{cmd: cmd, lines: make(chan string, 1024), work: work}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case h.lines <- sc.Text():
			default: // nobody is waiting for this line; never block the host
			}
		}
		close(h.lines)
	}()
	m, err := h.wait(regexp.MustCompile(`module serving: id=` + regexp.QuoteMeta(id) + ` pid=(\d+)`))
	if err == nil {
		h.firstPid, _ = strconv.Atoi(m[1])
		m, err = h.wait(regexp.MustCompile(`listening: addr=(\S+)`))
	}
	if err != nil {
		h.stop()
		return nil, "", err
	}
	return h, "http://" + m[1], nil
}

// wait reads log lines until one matches re.
func (h *benchHost) wait(re *regexp.Regexp) ([]string, error) {
	timeout := time.After(time.Minute)
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				return nil, fmt.Errorf("host exited before logging %q", re)
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m, nil
			}
		case <-timeout:
			return nil, fmt.Errorf("no log line %q within a minute", re)
		}
	}
}

func (h *benchHost) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	_ = h.cmd.Wait()
	if !h.keep {
		os.RemoveAll(h.work)
	}
}
