package examples_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/execmod/execmod/internal/hosttest"
)

// examples are the Go examples, each in examples/<name> with a
// README.md and a modules.json.
var examples = []string{"hello", "counter", "clock", "agentinfo"}

// bins holds bin/modhost and the examples, built with -race by TestMain;
// dir is this folder (tests change the working directory).
var bins, dir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		var err error
		if dir, err = os.Getwd(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		tmp, err := os.MkdirTemp("", "execmod-examples-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		const mod = "github.com/execmod/execmod"
		pkgs := map[string]string{"modhost": mod + "/host"}
		for _, name := range examples {
			pkgs[name] = mod + "/examples/" + name
		}
		if err := hosttest.Build(tmp, pkgs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bins = tmp
		return m.Run()
	}())
}

// checkout lays out a temporary folder as the checkout is after make
// build: bin/modhost and bin/<example> (the test's builds), and each
// example's modules.json, unchanged, in examples/<example>/. Its relative
// "file" (../../bin/<example>) resolves there as it does in the checkout.
func checkout(t *testing.T) string {
	t.Helper()
	root := hosttest.ShortTemp(t)
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{"modhost"}, examples...) {
		if err := os.Symlink(filepath.Join(bins, name), filepath.Join(root, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range examples {
		desc, err := os.ReadFile(filepath.Join(dir, name, "modules.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "examples", name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "examples", name, "modules.json"), desc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// readmeCommand is the bin/modhost command line of the example's README
// ("Run it", from the root of the checkout), continuation lines joined.
func readmeCommand(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case line == "" && strings.HasPrefix(l, "bin/modhost "):
			line = l
		case line != "":
			line = strings.TrimSuffix(line, `\`) + " " + l
		default:
			continue
		}
		if !strings.HasSuffix(line, `\`) {
			break
		}
	}
	if line == "" {
		t.Fatalf("%s/README.md has no bin/modhost command line", name)
	}
	return strings.Fields(line)
}

// startExample starts the host as the example's README says, from the
// root of a checkout made by checkout: the README's arguments, with its
// --work_dir replaced by work (a fresh folder if ""), then extra.
func startExample(t *testing.T, root, name, work string, extra ...string) *hosttest.Host {
	t.Helper()
	if work == "" {
		work = hosttest.ShortTemp(t)
	}
	args := readmeCommand(t, name)
	for i, a := range args {
		if strings.HasPrefix(a, "--work_dir=") {
			args[i] = "--work_dir=" + work
		}
	}
	t.Chdir(root)
	return hosttest.Start(t, filepath.Join(root, args[0]), nil, append(args[1:], extra...)...)
}

func TestHelloGreets(t *testing.T) {
	h := startExample(t, checkout(t), "hello", "")
	if code, body := h.Get("/hello/world"); code != 200 || body != "Hello, world!\n" {
		t.Errorf("GET /hello/world = %d %q, want 200 %q", code, body, "Hello, world!\n")
	}
	if code, body := h.Get("/help/hello/%7Bname%7D"); code != 200 || !strings.Contains(body, "Greets {name}.") {
		t.Errorf("GET /help/hello/{name} = %d %q, want the route's help", code, body)
	}
}

// The counter's figures reach /metrics/snapshot as counter/...; SIGTERM
// stops the host cleanly, the module's Close saves the count, and the
// next host on the same work_dir goes on from it.
func TestCounterSurvivesRestart(t *testing.T) {
	root, work := checkout(t), hosttest.ShortTemp(t)
	h := startExample(t, root, "counter", work)
	for i := 1; i <= 3; i++ {
		if code, body := h.Do("POST", "/counter/hit", nil); code != 200 || body != fmt.Sprintln(i) {
			t.Fatalf("POST /counter/hit #%d = %d %q", i, code, body)
		}
	}
	if got := snapshot(t, h)["counter/hits"]; got != 3 {
		t.Errorf("/metrics/snapshot counter/hits = %v, want 3", got)
	}

	if err := h.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-h.Exited
	if code := h.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the host exited with %d after SIGTERM, want 0", code)
	}
	saved := filepath.Join(work, "modules", "org_execmod_Counter", "count")
	if b, err := os.ReadFile(saved); err != nil || string(b) != "3\n" {
		t.Fatalf("%s = %q, %v: Close did not save the count", saved, b, err)
	}

	h = startExample(t, root, "counter", work)
	if code, body := h.Get("/counter/"); code != 200 || body != "3\n" {
		t.Errorf("GET /counter/ after a restart = %d %q, want 200 \"3\\n\"", code, body)
	}
	if got := snapshot(t, h)["counter/hits"]; got != 3 {
		t.Errorf("/metrics/snapshot counter/hits after a restart = %v, want 3", got)
	}
}

func snapshot(t *testing.T, h *hosttest.Host) map[string]float64 {
	t.Helper()
	code, body := h.Get("/metrics/snapshot")
	var m map[string]float64
	if err := json.Unmarshal([]byte(body), &m); code != 200 || err != nil {
		t.Fatalf("GET /metrics/snapshot = %d %q (%v)", code, body, err)
	}
	return m
}

// Events come through the host one at a time, as the module flushes
// them: with an hour between events the first can only arrive if it was
// sent on its own (the client's read is the only wait), and a fast stream
// arrives event by event, in order, and ends after n.
func TestClockStreamsThroughTheHost(t *testing.T) {
	h := startExample(t, checkout(t), "clock", "")

	t.Run("first event alone", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // fails, not hangs, if the host buffers
		defer cancel()
		resp := get(t, ctx, h.URL+"/clock/ticks?n=2&every=1h")
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("GET = %d, Content-Type %q", resp.StatusCode, ct)
		}
		if _, err := readEvent(bufio.NewReader(resp.Body)); err != nil {
			t.Fatalf("the first event: %v", err)
		}
	})
	t.Run("n events, one by one", func(t *testing.T) {
		resp := get(t, t.Context(), h.URL+"/clock/ticks?n=5&every=10ms")
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var prev time.Time
		for i := range 5 {
			ts, err := readEvent(br)
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if !ts.After(prev) {
				t.Errorf("event %d at %v, not after the one before (%v)", i, ts, prev)
			}
			prev = ts
		}
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Errorf("after 5 events: %q, %v; want the end of the stream", rest, err)
		}
	})
}

func get(t *testing.T, ctx context.Context, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// readEvent reads one event, "data: <time>\n\n", and returns its time.
func readEvent(br *bufio.Reader) (time.Time, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return time.Time{}, fmt.Errorf("%w (read %q)", err, line)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
		return time.Time{}, fmt.Errorf("event %q not followed by a blank line: %q, %v", line, blank, err)
	}
	data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
	if !ok {
		return time.Time{}, fmt.Errorf("event %q does not start with \"data: \"", line)
	}
	return time.Parse(time.RFC3339, data)
}

// agentinfo reports the agent's flags as the host passed them, and what
// it writes lands in its data directory and nowhere else under work_dir
// or the sandbox.
func TestAgentinfoReadsFlagsAndWritesOnlyItsDataDir(t *testing.T) {
	work, sandbox := hosttest.ShortTemp(t), hosttest.ShortTemp(t)
	h := startExample(t, checkout(t), "agentinfo", work, "--sandbox_directory="+sandbox)

	code, body := h.Get("/agentinfo/")
	var got struct {
		WorkDir    string            `json:"work_dir"`
		SandboxDir string            `json:"sandbox_dir"`
		DataDir    string            `json:"data_dir"`
		Hostname   string            `json:"hostname"`
		Flags      map[string]string `json:"flags"`
	}
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("GET /agentinfo/ = %d %q (%v)", code, body, err)
	}
	dataDir := filepath.Join(work, "modules", "org_execmod_AgentInfo")
	if got.WorkDir != work || got.SandboxDir != sandbox || got.DataDir != dataDir {
		t.Errorf("dirs = %q %q %q, want %q %q %q", got.WorkDir, got.SandboxDir, got.DataDir, work, sandbox, dataDir)
	}
	// --hostname comes from the README's command line.
	if got.Hostname != "agent7.example" || got.Flags["hostname"] != "agent7.example" || got.Flags["work_dir"] != work || got.Flags["sandbox_directory"] != sandbox {
		t.Errorf("hostname %q, flags %v: want the agent's --hostname, --work_dir and --sandbox_directory", got.Hostname, got.Flags)
	}

	before := files(t, work, dataDir)
	for _, tc := range []struct {
		name string
		code int
	}{{"todo", 204}, {"b.md", 204}, {"..%2Fescape", 400}, {"..%2F..%2Fescape", 400}, {".hidden", 400}} {
		if code, body := h.Do("PUT", "/agentinfo/notes/"+tc.name, strings.NewReader("note "+tc.name)); code != tc.code {
			t.Errorf("PUT notes/%s = %d %q, want %d", tc.name, code, body, tc.code)
		}
	}
	if code, body := h.Get("/agentinfo/notes/todo"); code != 200 || body != "note todo" {
		t.Errorf("GET notes/todo = %d %q", code, body)
	}
	if after := files(t, work, dataDir); !slices.Equal(after, before) {
		t.Errorf("files under work_dir outside the data dir changed:\nbefore %v\nafter  %v", before, after)
	}
	if got, want := files(t, dataDir, ""), []string{"notes/b.md", "notes/todo"}; !slices.Equal(got, want) {
		t.Errorf("files in the data dir = %v, want %v", got, want)
	}
	if got := files(t, sandbox, ""); len(got) != 0 {
		t.Errorf("files in the sandbox = %v, want none", got)
	}
}

// files lists the files under dir (relative, sorted), skipping the tree
// at skip.
func files(t *testing.T, dir, skip string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == skip {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
