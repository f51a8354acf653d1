package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/internal/wire"
)

// bins holds the binaries TestMain builds: modhost, testmodule, hello.
var bins string

func TestMain(m *testing.M) {
	if exe := os.Getenv("EXECMOD_TEST_ORPHAN"); exe != "" {
		os.Exit(orphan(exe))
	}
	os.Exit(hosttest.Binaries(map[string]string{
		"modhost": "/host", "testmodule": "/host/internal/testmodule", "hello": "/examples/hello",
	}, func(dir string) int {
		bins = dir
		return m.Run()
	}))
}

// orphan is the test binary impersonating a host that dies without
// killing its module: it starts the module as a host would (but without
// Pdeathsig), waits for the go-plugin handshake line, prints the module's
// pid and exits.
func orphan(exe string) int {
	cmd := exec.Command(exe)
	cmd.Env = []string{wire.Handshake.MagicCookieKey + "=" + wire.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=" + strconv.Itoa(wire.ProtocolVersion), hosttest.RaceEnv,
		// As a host does: the module's socket in a folder of the host's
		// (the test's), never in $TMPDIR, where a module that exits
		// without closing it would leave it behind.
		"PLUGIN_UNIX_SOCKET_DIR=" + os.Getenv("EXECMOD_TEST_ORPHAN_SOCKETS")}
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err == nil {
		_, err = bufio.NewReader(out).ReadString('\n')
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orphan:", err)
		return 1
	}
	fmt.Println(cmd.Process.Pid)
	return 0
}

func startHost(t *testing.T, env []string, args ...string) *hosttest.Host {
	t.Helper()
	return hosttest.Start(t, filepath.Join(bins, "modhost"), env, args...)
}

func runHost(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return hosttest.Run(t, filepath.Join(bins, "modhost"), args...)
}

// modulePid asks the test module for its pid.
func modulePid(h *hosttest.Host) int {
	h.T.Helper()
	code, body := h.Get("/testmod/pid")
	pid, err := strconv.Atoi(strings.TrimSpace(body))
	if code != 200 || err != nil {
		h.T.Fatalf("GET /testmod/pid = %d %q", code, body)
	}
	return pid
}

// descriptorFile writes a modules.json with body into dir and returns its
// path.
func descriptorFile(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "modules.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testmodJSON is a modules.json loading the test module as name, with
// params as key, value pairs.
func testmodJSON(name string, params ...string) string {
	var ps []string
	for i := 0; i+1 < len(params); i += 2 {
		ps = append(ps, fmt.Sprintf(`{"key":%q,"value":%q}`, params[i], params[i+1]))
	}
	return fmt.Sprintf(`{"libraries":[{"file":%q,"modules":[{"name":%q,"parameters":[%s]}]}]}`,
		filepath.Join(bins, "testmodule"), name, strings.Join(ps, ","))
}
