package docs_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestExcerpts checks that code the documentation quotes is in the
// source as quoted, so that it cannot drift. It reads every page in
// docs/ and the README. A fenced block marked <lang> from=PATH (PATH
// relative to the checkout) is an excerpt of that file:
//
//   - Go and other text: the block's lines are in the file, in order. A
//     line that is only "..." stands for lines left out; "..." within a
//     line stands for text left out of it. Each run of lines between
//     "..." lines is contiguous in the file, and may be indented less
//     there than in the file (an excerpt of a function body starts at
//     the margin). Within a line, a run of spaces and tabs matches any
//     other (gofmt's alignment of a struct changes when a field is left
//     out).
//   - JSON: the block is the file's JSON with array elements left out:
//     the same keys, equal values, and arrays whose elements are, in
//     order, elements of the file's array.
//
// Pages in docs/ other than tutorial.md (which TestTutorial runs) may
// hold only excerpts and blocks that are not run (<lang> norun, mermaid):
// a block of another kind would look tested and not be. In the README
// only excerpts are checked.
func TestExcerpts(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../README.md")
	checked := 0
	for _, page := range pages {
		blocks, err := parseMarkdown(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			k, path, err := classify(b.info)
			switch {
			case page == "../README.md" && k != excerpt:
				continue
			case err != nil:
				t.Errorf("%s:%d: %v", page, b.line, err)
				continue
			case page != "tutorial.md" && k != excerpt && k != shown:
				t.Errorf("%s:%d: a %q block is run only in tutorial.md: make it an excerpt (<lang> from=PATH) or mark it <lang> norun", page, b.line, b.info)
				continue
			case k != excerpt:
				continue
			}
			checked++
			src, err := os.ReadFile(filepath.Join("..", path))
			if err != nil {
				t.Errorf("%s:%d: %v", page, b.line, err)
				continue
			}
			lang := strings.Fields(b.info)[0]
			if lang == "json" {
				err = jsonExcerpt(string(src), strings.Join(b.lines, "\n"))
			} else {
				err = textExcerpt(string(src), b.lines)
			}
			if err != nil {
				t.Errorf("%s:%d: the excerpt of %s is not in it as shown: %v", page, b.line, path, err)
			}
		}
	}
	if checked == 0 {
		t.Error("no excerpts checked")
	}
}

// textExcerpt checks that excerpt's runs of lines (split at "..." lines)
// are in src in order, as TestExcerpts says.
func textExcerpt(src string, excerpt []string) error {
	lines := strings.Split(src, "\n")
	var runs [][]string
	cur := []string{}
	for _, l := range append(excerpt, "...") {
		if strings.TrimSpace(l) != "..." {
			cur = append(cur, l)
			continue
		}
		for len(cur) > 0 && strings.TrimSpace(cur[0]) == "" {
			cur = cur[1:]
		}
		for len(cur) > 0 && strings.TrimSpace(cur[len(cur)-1]) == "" {
			cur = cur[:len(cur)-1]
		}
		if len(cur) > 0 {
			runs = append(runs, cur)
		}
		cur = []string{}
	}
	from := 0
	for _, run := range runs {
		at := findRun(lines, from, run)
		if at < 0 {
			return fmt.Errorf("no lines from %d on read\n\t%s", from+1, strings.Join(run, "\n\t"))
		}
		from = at + len(run)
	}
	return nil
}

// findRun returns the index of the first line at or after from where
// run starts, or -1. The run's first line sets the indentation the file
// adds to every line of the run.
func findRun(lines []string, from int, run []string) int {
	pats := make([]*regexp.Regexp, len(run))
	for i, l := range run {
		parts := strings.Split(strings.TrimLeft(l, " \t"), "...")
		for j, p := range parts {
			words := strings.Fields(p)
			for k := range words {
				words[k] = regexp.QuoteMeta(words[k])
			}
			parts[j] = strings.Join(words, `[ \t]+`)
			if len(words) > 0 && strings.TrimLeft(p, " \t") != p {
				parts[j] = `[ \t]+` + parts[j]
			}
			if len(words) > 0 && strings.TrimRight(p, " \t") != p {
				parts[j] += `[ \t]+`
			}
		}
		pats[i] = regexp.MustCompile(`^` + regexp.QuoteMeta(leading(l)) + strings.Join(parts, ".*") + `\s*$`)
	}
next:
	for at := from; at+len(run) <= len(lines); at++ {
		first := lines[at]
		indent := first[:len(first)-len(strings.TrimLeft(first, " \t"))]
		indent = indent[:max(0, len(indent)-len(leading(run[0])))]
		for i, l := range run {
			src := lines[at+i]
			if strings.TrimSpace(l) == "" {
				if strings.TrimSpace(src) != "" {
					continue next
				}
				continue
			}
			rest, ok := strings.CutPrefix(src, indent)
			if !ok || !pats[i].MatchString(rest) {
				continue next
			}
		}
		return at
	}
	return -1
}

// leading is s's leading white space.
func leading(s string) string { return s[:len(s)-len(strings.TrimLeft(s, " \t"))] }

// jsonExcerpt checks that the JSON excerpt is src's JSON with array
// elements left out.
func jsonExcerpt(src, excerpt string) error {
	var s, e any
	if err := json.Unmarshal([]byte(src), &s); err != nil {
		return fmt.Errorf("the file: %v", err)
	}
	if err := json.Unmarshal([]byte(excerpt), &e); err != nil {
		return fmt.Errorf("the excerpt: %v", err)
	}
	if !jsonContains(s, e) {
		b, _ := json.MarshalIndent(e, "", "  ")
		return fmt.Errorf("the file holds no\n%s", b)
	}
	return nil
}

func jsonContains(s, e any) bool {
	switch e := e.(type) {
	case map[string]any:
		s, ok := s.(map[string]any)
		if !ok || len(s) != len(e) {
			return false
		}
		for k, v := range e {
			if sv, ok := s[k]; !ok || !jsonContains(sv, v) {
				return false
			}
		}
		return true
	case []any:
		s, ok := s.([]any)
		if !ok {
			return false
		}
		i := 0
		for _, v := range e {
			for i < len(s) && !jsonContains(s[i], v) {
				i++
			}
			if i == len(s) {
				return false
			}
			i++
		}
		return true
	}
	return reflect.DeepEqual(s, e)
}

func TestTextExcerpt(t *testing.T) {
	src := "func f() {\n\tif x {\n\t\treturn g(a, b...)\n\t}\n\tdone()\n}\n"
	for _, tc := range []struct {
		excerpt string
		ok      bool
	}{
		{"func f() {\n\tif x {", true},
		{"if x {\n\treturn g(a, b...)\n}", true},       // less indented than the file
		{"func f() {\n\t...\n\tdone()\n}", true},       // lines left out
		{"\treturn g(...)", true},                      // text left out
		{"func f() {\n\tdone()", false},                // not contiguous
		{"done()\n...\nif x {", false},                 // out of order
		{"if x {\nreturn g(a, b...)", false},           // indentation changed within a run
		{"func f() {\n\tif y {", false},                // drifted
		{"\t\treturn g(a, b...)\n\t}\n\tdone()", true}, // as indented as the file
		{"\t\t\treturn g(a, b...)\n\t\t}", false},      // more indented than the file
	} {
		err := textExcerpt(src, strings.Split(tc.excerpt, "\n"))
		if (err == nil) != tc.ok {
			t.Errorf("excerpt %q: error %v, want ok=%v", tc.excerpt, err, tc.ok)
		}
	}
}

func TestJSONExcerpt(t *testing.T) {
	src := `{"libraries": [{"file": "a", "modules": [{"name": "A"}]}, {"file": "b", "modules": [{"name": "B"}]}]}`
	for _, tc := range []struct {
		excerpt string
		ok      bool
	}{
		{`{"libraries": [{"file": "b", "modules": [{"name": "B"}]}]}`, true},
		{`{"libraries": [{"file": "b", "modules": [{"name": "A"}]}]}`, false},
		{`{"libraries": [{"file": "b", "modules": [{"name": "B"}]}, {"file": "a", "modules": [{"name": "A"}]}]}`, false},
		{`{"libraries": [{"file": "a"}]}`, false}, // keys left out
	} {
		if err := jsonExcerpt(src, tc.excerpt); (err == nil) != tc.ok {
			t.Errorf("excerpt %s: error %v, want ok=%v", tc.excerpt, err, tc.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		info string
		want kind
		path string
		err  bool
	}{
		{"sh", script, "", false},
		{"sh env", env, "", false},
		{"sh host", host, "", false},
		{"console", console, "", false},
		{"log", hostLog, "", false},
		{"log interrupt", interrupt, "", false},
		{"go file=main.go", file, "main.go", false},
		{"go from=examples/hello/main.go", excerpt, "examples/hello/main.go", false},
		{"cpp norun", shown, "", false},
		{"mermaid", shown, "", false},
		{"", 0, "", true},
		{"go", 0, "", true},
		{"text", 0, "", true},
		{"console foo", 0, "", true},
		{"sh env host", 0, "", true},
		{"go norun file=x", 0, "", true},
	} {
		k, path, err := classify(tc.info)
		if (err != nil) != tc.err || err == nil && (k != tc.want || path != tc.path) {
			t.Errorf("classify(%q) = %v, %q, %v; want %v, %q, error %v", tc.info, k, path, err, tc.want, tc.path, tc.err)
		}
	}
}
