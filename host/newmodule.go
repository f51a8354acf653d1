package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// moduleID is what a scaffolded module may be called: a module id (its
// mount point), which is also its folder and binary name.
var moduleID = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

const execmodModule = "github.com/execmod/execmod"

// newModule is `modhost new-module [--dir=DIR] [--execmod=CHECKOUT] NAME`:
// it writes a working module folder (main.go, main_test.go, README.md,
// modules.json; go.mod and go.sum when the folder is outside an execmod
// checkout) that builds and passes its test unchanged.
func newModule(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("new-module", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "folder to create (default ./NAME)")
	checkout := fs.String("execmod", "", "the execmod checkout to build against, when the folder is outside it (default: the checkout this modhost was built in, if found)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: modhost new-module [--dir=DIR] [--execmod=CHECKOUT] NAME\n\nWrites a new module, its test, README and modules.json into DIR (default ./NAME).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("new-module: want exactly one NAME")
	}
	name := fs.Arg(0)
	if !moduleID.MatchString(name) {
		return fmt.Errorf("new-module: %q is not a module name: use lower-case letters, digits, '-' and '_', starting with a letter (it becomes the mount point /%s/)", name, name)
	}
	target := *dir
	if target == "" {
		target = name
	}
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	if _, err := os.Stat(target); err == nil {
		return fmt.Errorf("new-module: %s already exists; choose another --dir", target)
	}
	root, inside := findCheckout(filepath.Dir(target))
	if !inside {
		root = *checkout
		if root == "" {
			root = checkoutOfExecutable()
		}
		if root == "" {
			return errors.New("new-module: the folder is outside an execmod checkout; pass --execmod=<path to your checkout> so the module can build against it")
		}
		if root, err = filepath.Abs(root); err != nil {
			return err
		}
		if r, ok := findCheckout(root); !ok || r != root {
			return fmt.Errorf("new-module: %s is not an execmod checkout (no go.mod for %s there)", root, execmodModule)
		}
	}

	data := struct {
		Name, Title, Binary, Checkout, Pkg string
		Inside                             bool
	}{Name: name, Title: strings.ToUpper(name[:1]) + strings.ReplaceAll(name[1:], "-", "_"), Binary: "./" + name, Checkout: root, Inside: inside}
	// Inside a checkout, modules and examples are built into <checkout>/bin
	// (by make build, or go build -o bin/ ./<dir>/ from the root); elsewhere,
	// go build leaves the binary in the folder.
	if inside {
		rel, err := filepath.Rel(target, filepath.Join(root, "bin", name))
		if err != nil {
			return err
		}
		data.Binary = rel
		if rel, err = filepath.Rel(root, target); err != nil {
			return err
		}
		data.Pkg = "./" + filepath.ToSlash(rel) + "/"
	}
	files := map[string]string{
		"main.go": mainTmpl, "main_test.go": testTmpl, "README.md": readmeTmpl, "modules.json": descTmpl,
	}
	if !inside {
		files["go.mod"] = ""
		files["go.sum"] = ""
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	for file, tmpl := range files {
		var b bytes.Buffer
		switch file {
		case "go.mod":
			if err := goMod(&b, name, root); err != nil {
				return err
			}
		case "go.sum":
			sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
			if err != nil {
				return err
			}
			b.Write(sum)
		default:
			if err := template.Must(template.New(file).Delims("[[", "]]").Parse(tmpl)).Execute(&b, data); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(target, file), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	work := filepath.Join(os.TempDir(), name+"-work")
	fmt.Fprintf(stdout, "Created module %q in %s. Next:\n", name, target)
	if inside {
		// modules.json names <checkout>/bin/NAME, where make build puts it.
		fmt.Fprintf(stdout, "\tcd %s && go test %s && go build -o bin/ %s\n", root, data.Pkg, data.Pkg)
		fmt.Fprintf(stdout, "\tbin/modhost --work_dir=%s --modules=file://%s\n", work, filepath.Join(data.Pkg[2:], "modules.json"))
		fmt.Fprintf(stdout, "make build builds it (and bin/modhost) with the other modules; make test runs its test.\n")
		return nil
	}
	fmt.Fprintf(stdout, "\tcd %s && go test ./... && go build -o %s .\n", target, name)
	fmt.Fprintf(stdout, "\tmodhost --work_dir=%s --modules=file://%s\n", work, filepath.Join(target, "modules.json"))
	return nil
}

// findCheckout walks up from dir to the go.mod of the execmod module.
func findCheckout(dir string) (string, bool) {
	for d := dir; ; d = filepath.Dir(d) {
		if f, err := os.Open(filepath.Join(d, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			sc.Scan()
			f.Close()
			return d, strings.TrimSpace(sc.Text()) == "module "+execmodModule
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// checkoutOfExecutable is the checkout this modhost lives in (bin/modhost),
// if any.
func checkoutOfExecutable() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if root, ok := findCheckout(filepath.Dir(exe)); ok {
		return root
	}
	return ""
}

// goMod writes a go.mod that builds against the checkout at root: its
// requirements, and a replace directive pointing at it.
func goMod(w io.Writer, name, root string) error {
	src, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	var reqs []string
	goLine := "go 1.26"
	inBlock := false
	for _, line := range strings.Split(string(src), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "require (":
			inBlock = true
		case strings.HasPrefix(t, "go "):
			goLine = t
		case inBlock && t == ")":
			inBlock = false
		case inBlock && t != "":
			reqs = append(reqs, strings.TrimSuffix(t, " // indirect")+" // indirect")
		case strings.HasPrefix(t, "require ") && !strings.HasSuffix(t, "("):
			reqs = append(reqs, strings.TrimSuffix(strings.TrimPrefix(t, "require "), " // indirect")+" // indirect")
		}
	}
	slices.Sort(reqs)
	fmt.Fprintf(w, "module example.com/%s\n\n%s\n\nrequire %s v0.0.0\n\nrequire (\n", name, goLine, execmodModule)
	for _, r := range reqs {
		fmt.Fprintf(w, "\t%s\n", r)
	}
	fmt.Fprintf(w, ")\n\n// The execmod SDK comes from your checkout.\nreplace %s => %s\n", execmodModule, root)
	return nil
}

const mainTmpl = `// Command [[.Name]] is an execmod module. Mounted at /[[.Name]]/ by
// modhost it serves
//
//	GET /[[.Name]]/hello/{who}
//
// with the greeting the "greeting" parameter in modules.json gives.
package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/execmod/execmod/sdk"
)

type module struct{ greeting string }

var _ sdk.Provisioner = (*module)(nil)

// Provision reads the module's parameters from modules.json. Without a
// greeting the host does not start, and says what to add; for a
// parameter with a default, use cmp.Or(env.Params["name"], "default").
func (m *module) Provision(_ context.Context, env sdk.Env) error {
	greeting, err := env.Params.Required("greeting")
	if err != nil {
		return err
	}
	m.greeting = greeting
	env.Logger.Info("provisioned", "greeting", m.greeting)
	return nil
}

func (m *module) Routes() []sdk.Route {
	return []sdk.Route{{
		Pattern: "GET /hello/{who}", Handler: http.HandlerFunc(m.hello), Realm: sdk.ReadOnly,
		Help: sdk.Help{TLDR: "Greets {who}.", Description: "Answers with the greeting from the module's parameters."},
	}}
}

func (m *module) hello(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s, %s!\n", m.greeting, r.PathValue("who"))
}

func main() { sdk.Serve("[[.Name]]", &module{}) }
`

const testTmpl = `package main

import (
	"io"
	"strings"
	"testing"

	"github.com/execmod/execmod/sdk"
	"github.com/execmod/execmod/sdk/sdktest"
)

func TestHello(t *testing.T) {
	srv := sdktest.NewServer(t, "[[.Name]]", &module{}, sdktest.Params("greeting", "Hi"))
	resp, err := srv.Client.Get(srv.URL + "/[[.Name]]/hello/world")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "Hi, world!\n" {
		t.Errorf("GET = %d %q, want 200 %q", resp.StatusCode, body, "Hi, world!\n")
	}
}

func TestGreetingIsRequired(t *testing.T) {
	err := (&module{}).Provision(t.Context(), sdk.Env{Params: sdk.Params{}})
	if err == nil || !strings.Contains(err.Error(), ` + "`" + `parameter "greeting" is required` + "`" + `) {
		t.Errorf("Provision without a greeting = %v, want an error saying it is required", err)
	}
}
`

const readmeTmpl = `# [[.Name]]

An execmod module, mounted at ` + "`/[[.Name]]/`" + `:

    GET /[[.Name]]/hello/{who}    ->  "<greeting>, <who>!"

## Test, build, run
[[if .Inside]]
From the root of the checkout ([[.Checkout]]):

    go test [[.Pkg]]
    go build -o bin/ [[.Pkg]]
    bin/modhost --work_dir=/tmp/[[.Name]]-work --modules=file://[[slice .Pkg 2]]modules.json
    curl localhost:5051/[[.Name]]/hello/world

` + "`make build`" + ` builds it into bin/ with the other modules (and bin/modhost);
` + "`make test`" + ` runs its test.
[[else]]
    go test ./...
    go build -o [[.Name]] .
    modhost --work_dir=/tmp/[[.Name]]-work --modules=file://$PWD/modules.json
    curl localhost:5051/[[.Name]]/hello/world
[[end]]
The module's log lines appear in the host's log under its modules.json
name (org_example_[[.Title]]). Change the greeting in ` + "`modules.json`" + `'s
parameters. A module checks its parameters in Provision, and an error
there stops the host with your message: without the greeting the host
exits 1, and its message ends with

    parameter "greeting" is required: add {"key":"greeting","value":...} to the module's entry in modules.json
`

const descTmpl = `{
  "libraries": [
    {
      "file": "[[.Binary]]",
      "modules": [
        {
          "name": "org_example_[[.Title]]",
          "parameters": [{"key": "greeting", "value": "Hello"}]
        }
      ]
    }
  ]
}
`
