package main

import (
	"flag"
	"fmt"
	"iter"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/agent/calls"

	"github.com/execmod/execmod/internal/hosttest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, which -update rewrites.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s changed (review, then go test -run %s -update to accept):\n%s\nwant:\n%s", path, t.Name(), got, want)
	}
}

// shape renders the JSON types of v, one "path: type" line per member,
// sorted: what a client of the endpoint may rely on. Arrays show the
// shape of their elements (all of them, merged) as path[]. The members
// of the objects at the maps paths are not listed (their keys are data,
// such as flag names), only the types of their values.
func shape(v any, maps ...string) string {
	lines := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if slices.Contains(maps, path) {
				types := map[string]bool{}
				for _, e := range v {
					types[strings.TrimPrefix(shape(e), ": ")] = true
				}
				lines[path+": object of "+strings.ReplaceAll(strings.Join(slices.Sorted(keysOf(types)), "|"), "\n", "")] = true
				return
			}
			if path != "" {
				lines[path+": object"] = true
			}
			for k, e := range v {
				walk(strings.TrimPrefix(path+"."+k, "."), e)
			}
		case []any:
			if len(v) == 0 {
				lines[path+": array (empty)"] = true
			} else {
				lines[path+": array"] = true
			}
			for _, e := range v {
				walk(path+"[]", e)
			}
		case string:
			lines[path+": string"] = true
		case float64:
			lines[path+": number"] = true
		case bool:
			lines[path+": bool"] = true
		case nil:
			lines[path+": null"] = true
		}
	}
	walk("", v)
	out := make([]string, 0, len(lines))
	for l := range lines {
		out = append(out, l)
	}
	sort.Strings(out)
	return strings.Join(out, "\n") + "\n"
}

func keysOf(m map[string]bool) iter.Seq[string] { return maps.Keys(m) }

// The agent's own endpoints against the real binary: /version and /state
// have the shapes of testdata/*.shape (a change is a reviewed diff), with
// the values the host was started with; /flags is sorted by name.
func TestAgentEndpointShapes(t *testing.T) {
	before := float64(time.Now().UnixNano()) / 1e9
	h := startHost(t, nil, "--modules="+testmodJSON("org_execmod_Test"), "--hostname=shape-host")
	after := float64(time.Now().UnixNano()) / 1e9
	get := func(path string) (map[string]any, string) {
		t.Helper()
		resp, body := h.Request("GET", path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s = %d %q %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		return hosttest.Decode(t, body), body
	}

	ver, verBody := get("/version")
	// git_sha is there only when the build knows its commit (a test
	// build usually does not): checked here, left out of the shape.
	if sha, ok := ver["git_sha"]; ok {
		if s, _ := sha.(string); !regexp.MustCompile(`^[0-9a-f]{7,64}(-dirty)?$`).MatchString(s) {
			t.Errorf("/version git_sha %v", sha)
		}
		delete(ver, "git_sha")
	}
	golden(t, "version.shape", shape(ver))
	if ver["version"] != version {
		t.Errorf("/version = %s, want version %s", verBody, version)
	}
	if keys := orderedKeys(t, verBody); !slices.IsSorted(keys) {
		t.Errorf("/version keys %v are not sorted", keys)
	}

	flags, flagsBody := get("/flags")
	keys := orderedKeys(t, flagsBody, "flags")
	if !slices.IsSorted(keys) || len(keys) < 10 || !slices.Contains(keys, "work_dir") {
		t.Errorf("/flags keys %v: want every flag, sorted by name", keys)
	}
	if f := flags["flags"].(map[string]any); f["hostname"] != "shape-host" || f["work_dir"] != h.WorkDir {
		t.Errorf("/flags = %v", f)
	}

	state, stateBody := get("/state")
	if v, ok := state["git_sha"]; ok {
		if v != hosttest.Decode(t, verBody)["git_sha"] {
			t.Errorf("/state git_sha %v, /version's %s", v, verBody)
		}
		delete(state, "git_sha")
	}
	golden(t, "state.shape", shape(state, "flags"))
	addr := strings.TrimPrefix(h.URL, "http://")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-S0$`).MatchString(fmt.Sprint(state["id"])) ||
		state["pid"] != "slave(1)@"+addr || state["hostname"] != "shape-host" {
		t.Errorf("/state id %v pid %v hostname %v, want a UUID-S0, slave(1)@%s, shape-host", state["id"], state["pid"], state["hostname"], addr)
	}
	if st, _ := state["start_time"].(float64); st < before-1 || st > after+1 {
		t.Errorf("/state start_time %v, want between %f and %f", state["start_time"], before, after)
	}
	for _, k := range []string{"version", "build_date", "build_time", "build_user"} {
		if state[k] != ver[k] {
			t.Errorf("/state %s = %v, /version's is %v", k, state[k], ver[k])
		}
	}
	if fmt.Sprint(state["flags"]) != fmt.Sprint(flags["flags"]) {
		t.Errorf("/state flags %v, want /flags's %v", state["flags"], flags["flags"])
	}
	if keys := orderedKeys(t, stateBody, "flags"); !slices.IsSorted(keys) {
		t.Errorf("/state flags keys %v are not sorted", keys)
	}
	for _, k := range []string{`"frameworks":[]`, `"completed_frameworks":[]`} {
		if !strings.Contains(stateBody, k) {
			t.Errorf("/state lacks %s: %s", k, stateBody)
		}
	}
	mods := state["modules"].([]any)
	if len(mods) != 1 {
		t.Fatalf("/state modules = %v", mods)
	}
	m := mods[0].(map[string]any)
	if m["name"] != "org_execmod_Test" || m["id"] != "testmod" || m["state"] != "running" || m["restarts"] != 0.0 ||
		m["pid"] != float64(modulePid(h)) || m["file"] != filepath.Join(bins, "testmodule") {
		t.Errorf("/state module %v", m)
	}
}

// A host built as the Makefile builds it when the go command embeds no
// VCS information (-buildvcs=false, the stamp in -ldflags -X) reports that
// build in /version, /state and GET_VERSION.
func TestVersionBuildStamp(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	exe := filepath.Join(t.TempDir(), "modhost")
	ldflags := "-X main.gitSHA=" + sha + " -X main.gitTime=1700000000 -X main.gitModified=true -X main.buildUser=stamper"
	cmd := exec.CommandContext(t.Context(), "go", "build", "-race", "-buildvcs=false", "-ldflags", ldflags, "-o", exe, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	h := hosttest.Start(t, exe, nil)
	want := fmt.Sprintf(`{"build_date":"2023-11-14 22:13:20","build_time":1700000000,"build_user":"stamper","git_sha":"%s-dirty","version":%q}`+"\n", sha, version)
	if code, body := h.Get("/version"); code != 200 || body != want {
		t.Errorf("/version = %d %s, want %s", code, body, want)
	}
	_, body := h.Get("/state")
	state := hosttest.Decode(t, body)
	if state["git_sha"] != sha+"-dirty" || state["build_time"] != 1700000000.0 || state["build_user"] != "stamper" ||
		state["build_date"] != "2023-11-14 22:13:20" {
		t.Errorf("/state build fields: %s", body)
	}
	for _, mt := range mesosEncodings {
		v := newMesosClient(t, h, mt, "", "").call(calls.GetVersion()).GetVersion.GetVersionInfo()
		if v.GetGitSHA() != sha+"-dirty" || v.GetBuildTime() != 1700000000 || v.GetBuildUser() != "stamper" ||
			v.GetBuildDate() != "2023-11-14 22:13:20" || v.Version != version {
			t.Errorf("GET_VERSION (%s) = %v", mt, v)
		}
	}
}
