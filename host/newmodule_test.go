package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The scaffold builds and passes its own test unchanged, outside the
// checkout, and the result serves through the real host.
func TestNewModuleBuildsAndServes(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "greeter")
	began := time.Now()
	var out strings.Builder
	if err := newModule([]string{"--dir=" + dir, "--execmod=" + root, "greeter"}, &out, &out); err != nil {
		t.Fatalf("new-module: %v\n%s", err, out.String())
	}
	for _, args := range [][]string{{"vet", "./..."}, {"test", "./..."}, {"build", "-o", "greeter", "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the scaffold: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	t.Logf("new-module to a passing test and a built module: %v", time.Since(began).Round(time.Millisecond))

	h := startHost(t, nil, "--modules=file://"+filepath.Join(dir, "modules.json"))
	if code, body := h.Get("/greeter/hello/world"); code != 200 || body != "Hello, world!\n" {
		t.Errorf("GET /greeter/hello/world = %d %q", code, body)
	}
}

func TestNewModuleInsideCheckout(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module github.com/execmod/execmod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "examples", "foo")
	if err := newModule([]string{"--dir=" + dir, "foo"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	desc, _ := os.ReadFile(filepath.Join(dir, "modules.json"))
	if !strings.Contains(string(desc), `"file": "../../bin/foo"`) {
		t.Errorf("modules.json inside a checkout:\n%s", desc)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); !os.IsNotExist(err) {
		t.Errorf("a go.mod was written inside the checkout: %v", err)
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
