package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/execmod/execmod/internal/hosttest"
)

// The scaffold, outside the checkout: the hint it prints is what a
// reader runs, and running it gives a module that passes its test and
// serves through the real host; without its required parameter the host
// refuses to start, saying what to add.
func TestNewModuleBuildsAndServes(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(hosttest.ShortTemp(t), "greeter")
	began := time.Now()
	var out strings.Builder
	if err := newModule([]string{"--dir=" + dir, "--execmod=" + root, "greeter"}, &out, &out); err != nil {
		t.Fatalf("new-module: %v\n%s", err, out.String())
	}
	hint := checkHint(t, out.String(), map[string]string{dir: "DIR", os.TempDir(): "TMP"}, `Created module "greeter" in DIR. Next:
	cd DIR && go test ./... && go build -o greeter .
	modhost --work_dir=TMP/greeter-work --modules=file://DIR/modules.json
`)
	runShell(t, hint[0])
	t.Logf("new-module to a passing test and a built module: %v", time.Since(began).Round(time.Millisecond))
	runShell(t, "cd "+dir+" && go vet ./...")

	h := startHint(t, hint[1], "modhost")
	if code, body := h.Get("/greeter/hello/world"); code != 200 || body != "Hello, world!\n" {
		t.Errorf("GET /greeter/hello/world = %d %q", code, body)
	}
	if _, err := h.Logs.Wait(regexp.MustCompile(regexp.QuoteMeta(`org_example_Greeter: provisioned: greeting=Hello`)), h.Exited); err != nil {
		t.Errorf("the module's log line: %v", err)
	}

	// The required parameter, left out.
	desc := withoutParameters(t, filepath.Join(dir, "modules.json"))
	code, stderr := runHost(t, "--work_dir="+hosttest.ShortTemp(t), "--modules="+desc)
	want := `Error loading modules: module org_example_Greeter (--modules libraries[0].modules[0]): module "greeter": parameter "greeting" is required: add {"key":"greeting","value":...} to the module's entry in modules.json`
	if code != 1 || !slices.Contains(strings.Split(stderr, "\n"), want) {
		t.Errorf("without its greeting the host exited %d, want 1 and the line\n%s\nstderr:\n%s", code, want, stderr)
	}
}

// The scaffold inside a checkout (`make new-module NAME=greeter` puts it
// in examples/): its modules.json names <checkout>/bin/greeter, and the
// hint builds it there. The checkout is a copy-like layout in a temporary
// folder (go.mod, go.sum and the SDK's packages), so the test leaves the
// real one alone.
func TestNewModuleInsideCheckout(t *testing.T) {
	root := sdkCheckout(t)
	dir := filepath.Join(root, "examples", "greeter")
	began := time.Now()
	var out strings.Builder
	if err := newModule([]string{"--dir=" + dir, "greeter"}, &out, &out); err != nil {
		t.Fatalf("new-module: %v\n%s", err, out.String())
	}
	hint := checkHint(t, out.String(), map[string]string{root: "ROOT", os.TempDir(): "TMP"}, `Created module "greeter" in ROOT/examples/greeter. Next:
	cd ROOT && go test ./examples/greeter/ && go build -o bin/ ./examples/greeter/
	bin/modhost --work_dir=TMP/greeter-work --modules=file://examples/greeter/modules.json
make build builds it (and bin/modhost) with the other modules; make test runs its test.
`)
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); !os.IsNotExist(err) {
		t.Errorf("a go.mod was written inside the checkout: %v", err)
	}
	runShell(t, hint[0])
	t.Logf("new-module to a passing test and a built module: %v", time.Since(began).Round(time.Millisecond))

	// bin/modhost, as make build leaves it; the hint runs from the root.
	if err := os.Symlink(filepath.Join(bins, "modhost"), filepath.Join(root, "bin", "modhost")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	h := startHint(t, hint[1], "bin/modhost")
	if code, body := h.Get("/greeter/hello/world"); code != 200 || body != "Hello, world!\n" {
		t.Errorf("GET /greeter/hello/world = %d %q", code, body)
	}
}

func TestNewModuleRejects(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"Bad/Name"}, "not a module name"},
		{[]string{}, "exactly one NAME"},
		{[]string{"--dir=" + t.TempDir(), "x"}, "already exists"},
		{[]string{"--dir=" + filepath.Join(t.TempDir(), "x"), "--execmod=" + t.TempDir(), "x"}, "not an execmod checkout"},
	} {
		err := newModule(tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("new-module %q = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// checkHint compares new-module's output, with the paths in names
// replaced by their names, to want, and returns the command lines of its
// "Next:" hint.
func checkHint(t *testing.T, out string, names map[string]string, want string) []string {
	t.Helper()
	got := replacePaths(out, names)
	if got != want {
		t.Fatalf("new-module printed\n%s\nwant\n%s", got, want)
	}
	var cmds []string
	for _, line := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(line, "\t"); ok {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("the hint has %d command lines, want 2: build, run", len(cmds))
	}
	return cmds
}

// replacePaths replaces each path in s by its name, longest path first.
func replacePaths(s string, names map[string]string) string {
	for len(names) > 0 {
		longest := ""
		for p := range names {
			if len(p) > len(longest) {
				longest = p
			}
		}
		s = strings.ReplaceAll(s, longest, names[longest])
		delete(names, longest)
	}
	return s
}

// runShell runs a hint's command line as a reader would, offline.
func runShell(t *testing.T, line string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", line)
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("$ %s\n%s%v", line, b, err)
	}
}

// startHint starts the test's modhost with the arguments of a hint's
// modhost command line, whose first word must be want.
func startHint(t *testing.T, line, want string) *hosttest.Host {
	t.Helper()
	args := strings.Fields(line)
	if args[0] != want {
		t.Fatalf("the hint runs %q, want %q", args[0], want)
	}
	for i, a := range args {
		if w, ok := strings.CutPrefix(a, "--work_dir="); ok {
			// The reader's work_dir, in the test's own temporary folder.
			args[i] = "--work_dir=" + filepath.Join(hosttest.ShortTemp(t), filepath.Base(w))
		}
	}
	return startHost(t, nil, args[1:]...)
}

// withoutParameters is the descriptor at path with every module's
// parameters removed, as inline JSON; "file" is made absolute.
func withoutParameters(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var desc struct {
		Libraries []struct {
			File    string           `json:"file"`
			Modules []map[string]any `json:"modules"`
		} `json:"libraries"`
	}
	if err := json.Unmarshal(b, &desc); err != nil {
		t.Fatal(err)
	}
	for i, l := range desc.Libraries {
		desc.Libraries[i].File = filepath.Join(filepath.Dir(path), l.File)
		for _, m := range l.Modules {
			delete(m, "parameters")
		}
	}
	b, err = json.Marshal(desc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sdkCheckout is a temporary execmod checkout holding what a module
// inside it builds against: go.mod, go.sum and the sources of the
// packages sdk and sdk/sdktest need from this module, copied from this
// checkout.
func sdkCheckout(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if eq .Module.Path "`+execmodModule+`"}}{{.Dir}}{{end}}{{end}}`, "../sdk", "../sdk/sdktest")
	b, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root := hosttest.ShortTemp(t)
	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(to), 0o755)
		}
		if err == nil {
			err = os.WriteFile(to, data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(src, "go.mod"), filepath.Join(root, "go.mod"))
	copyFile(filepath.Join(src, "go.sum"), filepath.Join(root, "go.sum"))
	for _, dir := range strings.Fields(string(b)) {
		rel, err := filepath.Rel(src, dir)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), "_test.go") {
				copyFile(filepath.Join(dir, e.Name()), filepath.Join(root, rel, e.Name()))
			}
		}
	}
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}
