package execmod

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/execmod/execmod"

// TestDependencyDirection keeps the layout's rules: transport stays in
// internal/wire; nothing imports the host; modules and examples reach the
// protocol only through the SDK; the task package imports no HTTP or gRPC.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	transport := []string{"github.com/hashicorp/go-plugin", "google.golang.org/grpc", mod + "/proto/module/v1", "github.com/gogo/protobuf"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		for _, imp := range imports {
			switch {
			case hasPrefix(imp, "github.com/gogo/protobuf") && hasPrefix(pkg, mod+"/host/internal/operator"):
				// Mesos's operator API is protobuf on the wire: the operator
				// package encodes mesos-go's (gogo) types, not our transport.
			case hasPrefix(imp, transport...) && !hasPrefix(pkg, mod+"/internal/wire", mod+"/proto"):
				t.Errorf("%s imports %s: only internal/wire may know the transport", pkg, imp)
			case hasPrefix(imp, mod+"/host") && !hasPrefix(pkg, mod+"/host"):
				t.Errorf("%s imports %s: nothing imports the host", pkg, imp)
			case hasPrefix(imp, mod+"/internal/wire") && hasPrefix(pkg, mod+"/examples", mod+"/module"):
				t.Errorf("%s imports %s: modules use the sdk, not the wire", pkg, imp)
			case hasPrefix(imp, mod+"/sdk") && hasPrefix(pkg, mod+"/internal", mod+"/host") && !hasPrefix(pkg, mod+"/host/internal/testmodule"):
				t.Errorf("%s imports %s: the sdk sits above the wire and beside the host", pkg, imp)
			}
		}
	}
}

// hasPrefix reports whether path is one of the packages or below one.
func hasPrefix(path string, roots ...string) bool {
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	return false
}

// TestTaskPackageKnowsProcesses checks the task package's whole
// dependency graph, not only its direct imports: no HTTP, RPC or gRPC,
// and nothing else of this repository, however indirectly.
func TestTaskPackageKnowsProcesses(t *testing.T) {
	const task = mod + "/module/internal/task"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./module/internal/task").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || deps[len(deps)-1] != task {
		t.Fatalf("go list -deps listed %d packages, ending %q: not the task package's graph", len(deps), deps[len(deps)-1:])
	}
	forbidden := []string{"net/http", "net/rpc", "google.golang.org/grpc", "github.com/hashicorp/go-plugin",
		"github.com/gogo/protobuf", "github.com/golang/protobuf", "google.golang.org/protobuf"}
	for _, dep := range deps {
		if hasPrefix(dep, forbidden...) || (hasPrefix(dep, mod) && dep != task) {
			t.Errorf("%s depends on %s: the task package knows processes, not HTTP, gRPC or the rest of the repo", task, dep)
		}
	}
}
