package docs_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
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
	"testing"
	"time"

	"github.com/execmod/execmod/internal/hosttest"
)

// readerDir is the module's folder as tutorial.md shows it in output
// (the reader made it in /home/you). The test puts its own folder there
// before it compares.
const readerDir = "/home/you/shout"

// TestTutorial runs tutorial.md from top to bottom, as a reader would, in
// a temporary folder. Every fenced block says by its info string what it
// is, and a block the test does not know fails it:
//
//	sh env          variables the reader sets; the test sets them itself
//	                (EXECMOD is this checkout) and only checks their names
//	sh              commands, run with bash -euo pipefail; the folder the
//	                block ends in is where the next block runs (as cd would)
//	<lang> file=F   a file, written to F in the current folder
//	sh host         the one modhost command line: the test starts the
//	                bin/modhost the tutorial built with these exact args via
//	                internal/hosttest (which adds --port=0 and waits for the
//	                "listening" line), in the current folder
//	console         "$ command" lines, each followed by its output. curl
//	                commands go to the running host by Go HTTP (curl's
//	                User-Agent, localhost:5051 mapped to the host's URL) and
//	                their output must be identical; with -i the status line
//	                and the set of headers must match too (Date only needs
//	                to be there). Other commands run with bash and must exit
//	                0, unless the line ends with a comment stating another
//	                status ("$ bin/shout   # exit status 1"); the lines shown
//	                must appear in their output in order, compared loosely:
//	                runs of white space are one space and every number
//	                matches every number (pids, timings, timestamps, ports).
//	log             lines that must appear in the host's log, in order,
//	                compared loosely as above; "..." stands for lines left
//	                out
//	log interrupt   sends the host SIGINT (Ctrl-C), then as log; the host
//	                must exit 0
//	<lang> from=P   an excerpt of the checkout's file P, not run here:
//	                TestExcerpts checks it is in P as shown
//	<lang> norun    shown to the reader and not run (a sketch, an
//	                illustration); mermaid blocks (diagrams) are not run
//	                either
//
// Indented code blocks are prose and are not run. Module builds are
// offline: GOPROXY=off, so everything comes from the module cache, which
// holds the checkout's dependencies since this test was built from them
// (make deps fills in the rest of the graph that go mod tidy reads); and
// GOSUMDB=off, since the checksum database is not reachable offline and
// the cached modules were verified against the checkout's go.sum when
// they were downloaded.
func TestTutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the host and a module; not in -short mode")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseMarkdown("tutorial.md")
	if err != nil {
		t.Fatal(err)
	}
	goflags := strings.TrimSpace(goEnv(t, "GOFLAGS") + " -count=1") // go test output is never "(cached)"
	vars := map[string]string{"EXECMOD": root}
	s := &session{t: t, dir: t.TempDir(), pwdFile: filepath.Join(t.TempDir(), "pwd")}
	s.env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOTOOLCHAIN=local", "GOFLAGS="+goflags, "TUTORIAL_PWD="+s.pwdFile)
	for k, v := range vars {
		s.env = append(s.env, k+"="+v)
	}

	for _, b := range blocks {
		k, arg, err := classify(b.info)
		if err != nil {
			t.Fatalf("tutorial.md:%d: %v", b.line, err)
		}
		switch k {
		case shown, excerpt:
		case file:
			s.writeFile(b, arg)
		case env:
			for _, line := range b.lines {
				name, _, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
				if _, known := vars[name]; !ok || !known {
					t.Fatalf("tutorial.md:%d: %q: the test sets only %v", b.line, line, vars)
				}
			}
		case host:
			s.startHost(b)
		case script:
			s.runScript(b)
		case console:
			s.console(b)
		case hostLog:
			s.hostLog(b)
		case interrupt:
			s.interrupt(b)
		}
	}
}

// kind is what a fenced block is, by its info string (see TestTutorial).
type kind int

const (
	shown     kind = iota // <lang> norun, mermaid
	excerpt               // <lang> from=P
	file                  // <lang> file=F
	env                   // sh env
	script                // sh
	host                  // sh host
	console               // console
	hostLog               // log
	interrupt             // log interrupt
)

// classify says what a block with info string info is, and its file=
// or from= path.
func classify(info string) (k kind, path string, err error) {
	f := strings.Fields(info)
	if len(f) == 0 {
		return 0, "", errors.New("a fenced block without an info string: say what it is (see TestTutorial in tutorial_test.go), or mark it <lang> norun")
	}
	if len(f) == 2 {
		if p, ok := strings.CutPrefix(f[1], "file="); ok {
			return file, p, nil
		}
		if p, ok := strings.CutPrefix(f[1], "from="); ok {
			return excerpt, p, nil
		}
		if f[1] == "norun" {
			return shown, "", nil
		}
	}
	switch strings.Join(f, " ") {
	case "mermaid":
		return shown, "", nil
	case "sh env":
		return env, "", nil
	case "sh":
		return script, "", nil
	case "sh host":
		return host, "", nil
	case "console":
		return console, "", nil
	case "log":
		return hostLog, "", nil
	case "log interrupt":
		return interrupt, "", nil
	}
	return 0, "", fmt.Errorf("the test does not know a %q block: it runs sh, sh env, sh host, console, log, log interrupt and <lang> file=F blocks, "+
		"checks <lang> from=PATH excerpts and leaves <lang> norun and mermaid blocks alone (see TestTutorial in tutorial_test.go)", info)
}

// block is one fenced block of a markdown file.
type block struct {
	info  string   // the fence's info string
	line  int      // line of the opening fence
	lines []string // the content
}

func parseMarkdown(path string) ([]block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var blocks []block
	var cur *block
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &block{info: strings.TrimPrefix(line, "```"), line: i + 1}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, line)
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: unclosed code block", path, cur.line)
	}
	return blocks, nil
}

func fileAttr(attrs []string) string {
	for _, a := range attrs {
		if f, ok := strings.CutPrefix(a, "file="); ok {
			return f
		}
	}
	return ""
}

func goEnv(t *testing.T, name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// session is the reader's terminal: a current folder, an environment and
// the host they started.
type session struct {
	t       *testing.T
	dir     string
	env     []string
	pwdFile string
	host    *hosttest.Host
}

func (s *session) writeFile(b block, name string) {
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(b.lines, "\n")+"\n"), 0o644); err != nil {
		s.t.Fatalf("tutorial.md:%d: %v", b.line, err)
	}
}

// runScript runs an sh block and moves to the folder it ended in.
func (s *session) runScript(b block) {
	script := "trap 'pwd > \"$TUTORIAL_PWD\"' EXIT\n" + strings.Join(b.lines, "\n")
	out, err := s.bash(script, "-euo", "pipefail")
	if err != nil {
		hint := ""
		if strings.Contains(out, "module lookup disabled by GOPROXY=off") {
			hint = "\nthe module cache lacks a module of the graph: run `go mod download all` in the checkout (make test does)"
		}
		s.t.Fatalf("tutorial.md:%d: %v\n%s\n%s%s", b.line, err, strings.Join(b.lines, "\n"), out, hint)
	}
	pwd, err := os.ReadFile(s.pwdFile)
	if err != nil {
		s.t.Fatal(err)
	}
	s.dir = strings.TrimSpace(string(pwd))
}

func (s *session) bash(script string, opts ...string) (string, error) {
	ctx, cancel := context.WithTimeout(s.t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append(opts, "-c", script)...)
	cmd.Dir, cmd.Env = s.dir, s.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (s *session) startHost(b block) {
	if len(b.lines) != 1 {
		s.t.Fatalf("tutorial.md:%d: a host block has one command line", b.line)
	}
	args := shellSplit(b.lines[0])
	if len(args) == 0 || args[0] != "bin/modhost" {
		s.t.Fatalf("tutorial.md:%d: the host block must run bin/modhost", b.line)
	}
	s.t.Chdir(s.dir) // the args' relative paths are relative to the reader's folder
	s.host = hosttest.Start(s.t, filepath.Join(s.dir, "bin/modhost"), nil, args[1:]...)
}

func (s *session) console(b block) {
	type command struct {
		line   int
		cmd    string
		status int // the exit status the line states; 0 if none
		want   []string
	}
	var cmds []command
	for i, line := range b.lines {
		if c, ok := strings.CutPrefix(line, "$ "); ok {
			cmd := command{line: b.line + 1 + i, cmd: c}
			if m := exitStatus.FindStringSubmatchIndex(c); m != nil {
				cmd.cmd = c[:m[0]]
				cmd.status, _ = strconv.Atoi(c[m[2]:m[3]])
			}
			cmds = append(cmds, cmd)
		} else if len(cmds) > 0 {
			cmds[len(cmds)-1].want = append(cmds[len(cmds)-1].want, line)
		} else {
			s.t.Fatalf("tutorial.md:%d: console block does not start with a $ command", b.line)
		}
	}
	for _, c := range cmds {
		want := ""
		if len(c.want) > 0 {
			want = strings.Join(c.want, "\n") + "\n"
		}
		args := shellSplit(c.cmd)
		if len(args) > 0 && args[0] == "curl" {
			if c.status != 0 {
				s.t.Fatalf("tutorial.md:%d: curl exits 0 whatever the host answers; state no exit status", c.line)
			}
			if got := s.curl(c.line, args[1:]); !sameCurlOutput(got, want, slices.Contains(args, "-i")) {
				s.t.Errorf("tutorial.md:%d: $ %s\ngot:\n%s\nthe tutorial shows:\n%s", c.line, c.cmd, got, want)
			}
			continue
		}
		out, err := s.bash(c.cmd, "-o", "pipefail")
		out = strings.ReplaceAll(out, s.dir, readerDir)
		status := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			status = ee.ExitCode()
		} else if err != nil {
			s.t.Fatalf("tutorial.md:%d: $ %s: %v", c.line, c.cmd, err)
		}
		if status != c.status {
			s.t.Errorf("tutorial.md:%d: $ %s\nexited with status %d, the tutorial says %d (state another with \"# exit status N\" at the end of the line)\n%s",
				c.line, c.cmd, status, c.status, out)
		}
		if !containsLoosely(out, c.want) {
			s.t.Errorf("tutorial.md:%d: $ %s\ngot:\n%s\nthe tutorial shows:\n%s", c.line, c.cmd, out, want)
		}
	}
}

// exitStatus is the comment that ends a console command line to state
// its exit status.
var exitStatus = regexp.MustCompile(`\s+# exit status ([0-9]+)$`)

// curl does what curl with args does against the running host, and
// returns what curl would print.
func (s *session) curl(line int, args []string) string {
	if s.host == nil {
		s.t.Fatalf("tutorial.md:%d: curl with no host running", line)
	}
	method, url, include := "", "", false
	var body io.Reader
	var headers []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-s":
		case a == "-i":
			include = true
		case a == "-X" && i+1 < len(args):
			i++
			method = args[i]
		case a == "-d" && i+1 < len(args):
			i++
			body = strings.NewReader(args[i])
			method = cmp.Or(method, "POST")
			headers = append(headers, "Content-Type: application/x-www-form-urlencoded")
		case a == "-H" && i+1 < len(args):
			i++
			headers = append(headers, args[i])
		case !strings.HasPrefix(a, "-") && url == "":
			url = a
		default:
			s.t.Fatalf("tutorial.md:%d: the test does not know curl's %q", line, a)
		}
	}
	path, ok := strings.CutPrefix(strings.TrimPrefix(url, "http://"), "localhost:5051")
	if !ok {
		s.t.Fatalf("tutorial.md:%d: curl URL %q is not on localhost:5051", line, url)
	}
	req, err := http.NewRequestWithContext(s.t.Context(), cmp.Or(method, "GET"), s.host.URL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("User-Agent", "curl/8.5.0")
	req.Header.Set("Accept", "*/*")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("tutorial.md:%d: %v", line, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("tutorial.md:%d: %v", line, err)
	}
	if !include {
		return string(b)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%s %s\n", resp.Proto, resp.Status)
	if err := resp.Header.Write(&out); err != nil {
		s.t.Fatal(err)
	}
	out.WriteString("\n")
	out.Write(b)
	return strings.ReplaceAll(out.String(), "\r\n", "\n")
}

// sameCurlOutput compares curl's output exactly; with -i the headers are
// compared as a set and Date only needs to be there.
func sameCurlOutput(got, want string, include bool) bool {
	if !include {
		return got == want
	}
	split := func(s string) (status string, headers []string, body string) {
		head, body, _ := strings.Cut(s, "\n\n")
		lines := strings.Split(head, "\n")
		for _, h := range lines[1:] {
			if strings.HasPrefix(h, "Date: ") {
				h = "Date: *"
			}
			headers = append(headers, h)
		}
		slices.Sort(headers)
		return lines[0], headers, body
	}
	gs, gh, gb := split(got)
	ws, wh, wb := split(want)
	return gs == ws && slices.Equal(gh, wh) && gb == wb
}

var number = regexp.MustCompile(`[0-9]+`)

// loose is a line with runs of white space made one space and every
// number made 0.
func loose(s string) string {
	return number.ReplaceAllString(strings.Join(strings.Fields(s), " "), "0")
}

// containsLoosely reports whether the lines of want (less blank lines and
// "...") appear in out in order, compared loosely.
func containsLoosely(out string, want []string) bool {
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		got = append(got, loose(sc.Text()))
	}
	i := 0
	for _, w := range want {
		if w = loose(w); w == "" || w == "..." {
			continue
		}
		for i < len(got) && got[i] != w {
			i++
		}
		if i == len(got) {
			return false
		}
		i++
	}
	return true
}

// hostLog waits for the block's lines in the host's log, in order, from
// where the previous log block left off.
func (s *session) hostLog(b block) {
	if s.host == nil {
		s.t.Fatalf("tutorial.md:%d: host log with no host running", b.line)
	}
	from := 0
	for _, w := range b.lines {
		if w = strings.TrimSpace(w); w == "" || w == "..." {
			continue
		}
		re := looseRegexp(strings.ReplaceAll(w, readerDir, s.dir))
		if _, err := s.host.Logs.WaitFrom(from, re, s.host.Exited); err != nil {
			s.t.Fatalf("tutorial.md:%d: the host's log has no line like\n\t%s\n%v\nhost log:\n%s", b.line, w, err, s.host.Logs)
		}
		lines := strings.Split(s.host.Logs.String(), "\n")
		for from < len(lines) && !re.MatchString(lines[from]) {
			from++
		}
		from++
	}
}

// looseRegexp matches a line that is line compared loosely.
func looseRegexp(line string) *regexp.Regexp {
	var parts []string
	for _, f := range strings.Fields(line) {
		lit := number.Split(f, -1)
		for i := range lit {
			lit[i] = regexp.QuoteMeta(lit[i])
		}
		parts = append(parts, strings.Join(lit, `[0-9]+`))
	}
	return regexp.MustCompile(`^\s*` + strings.Join(parts, `\s+`) + `\s*$`)
}

// interrupt is Ctrl-C in the host's terminal.
func (s *session) interrupt(b block) {
	if s.host == nil {
		s.t.Fatalf("tutorial.md:%d: Ctrl-C with no host running", b.line)
	}
	if err := s.host.Cmd.Process.Signal(os.Interrupt); err != nil {
		s.t.Fatal(err)
	}
	s.hostLog(b)
	select {
	case <-s.host.Exited:
	case <-time.After(time.Minute):
		s.t.Fatalf("tutorial.md:%d: the host did not exit within a minute of Ctrl-C", b.line)
	}
	if code := s.host.Cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Errorf("tutorial.md:%d: the host exited with status %d after Ctrl-C, want 0\n%s", b.line, code, s.host.Logs)
	}
	s.host = nil
}

// shellSplit splits a command line as sh would, for the quoting the
// tutorial uses: single quotes, double quotes and backslashes; no
// expansions.
func shellSplit(line string) []string {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote rune
	escaped := false
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote != 0 && r == quote:
			quote = 0
		case quote == '\'':
			cur.WriteRune(r)
		case r == '\\':
			escaped, inArg = true, true
		case quote == '"':
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
