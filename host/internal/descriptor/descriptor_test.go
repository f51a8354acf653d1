package descriptor

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	d, warnings, err := Parse([]byte(`{
	  "libraries": [
	    {"file": "/path/to/foo",
	     "modules": [
	       {"name": "org_apache_mesos_bar", "parameters": [{"key": "X", "value": "Y"}, {"key": "", "value": ""}]},
	       {"name": "org_apache_mesos_baz"}]},
	    {"name": "qux", "modules": [{"name": "org_apache_mesos_norf"}]},
	    {"file": "x", "name": "ignored", "modules": []}
	  ]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Descriptor{Libraries: []Library{
		{File: "/path/to/foo", Path: "libraries[0]", Modules: []Module{
			{Name: "org_apache_mesos_bar", Path: "libraries[0].modules[0]", Parameters: []Parameter{{"X", "Y"}, {"", ""}}},
			{Name: "org_apache_mesos_baz", Path: "libraries[0].modules[1]"},
		}},
		{Name: "qux", Path: "libraries[1]", Modules: []Module{{Name: "org_apache_mesos_norf", Path: "libraries[1].modules[0]"}}},
		{File: "x", Name: "ignored", Path: "libraries[2]"},
	}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", d, want)
	}
	wantWarnings := []string{
		`libraries[2]: both "file" and "name" given; "name" is ignored, as in Mesos`,
		`libraries[2]: declares no modules; nothing is started for it`,
	}
	if !reflect.DeepEqual(warnings, wantWarnings) {
		t.Errorf("warnings = %q, want %q", warnings, wantWarnings)
	}
	if d, _, err := Parse([]byte(`{}`)); err != nil || len(d.Libraries) != 0 {
		t.Errorf("Parse({}) = %+v, %v", d, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       []string // every line of the joined error, in order
	}{
		{"not JSON", `{"libraries": [`, []string{"invalid JSON: unexpected end of input"}},
		{"syntax", `{"libraries" 1}`, []string{"invalid JSON at offset 13: invalid character '1' after object key"}},
		{"trailing data", `{} {}`, []string{"invalid JSON at offset 4: data after the top-level value"}},
		{"top level", `[]`, []string{"(top level): want an object, got an array"}},
		{"too deep", `{"libraries":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
			[]string{"invalid JSON at offset 45: nested more than 32 levels deep"}},
		{"every problem at once", `{
		  "libraries": [
		    {"fiel": "x", "modules": [{"name": "m"}]},
		    {"file": 7, "modules": {}},
		    {"file": "", "modules": [{"nmae": "m"}, {"name": "1bad/../x"}, "m"]},
		    {"name": "n", "modules": [{"name": "m", "parameters": [
		       {"key": "a"}, {"value": "b"}, {"key": "a", "value": "1"}, {"key": "c", "value": 2}, {"key": "c", "value": "3"}, {"key": "d", "value": "", "extra": 1}
		    ]}], "name": "again"}
		  ],
		  "version": 2
		}`, []string{
			`version: unknown key "version" (known: libraries)`,
			`libraries[0].fiel: unknown key "fiel" (known: file, name, modules)`,
			`libraries[0]: library name or path not provided: give "file" (the module's executable) or "name" (looked up on --modules_path and $PATH)`,
			`libraries[1].file: want a string, got a number`,
			`libraries[1].modules: want an array, got an object`,
			`libraries[2].file: must not be empty`,
			`libraries[2].modules[0].nmae: unknown key "nmae" (known: name, parameters)`,
			`libraries[2].modules[0]: module name not provided`,
			`libraries[2].modules[1].name: "1bad/../x" is not a module name: use letters, digits and '_', not starting with a digit (e.g. org_example_Hello)`,
			`libraries[2].modules[2]: want an object, got a string`,
			`libraries[3].name: key "name" given twice`,
			`libraries[3].modules[0].parameters[0]: missing required field "value"`,
			`libraries[3].modules[0].parameters[1]: missing required field "key"`,
			`libraries[3].modules[0].parameters[2].key: "a" is already given at libraries[3].modules[0].parameters[0]`,
			`libraries[3].modules[0].parameters[3].value: want a string, got a number`,
			`libraries[3].modules[0].parameters[4].key: "c" is already given at libraries[3].modules[0].parameters[3]`,
			`libraries[3].modules[0].parameters[5].extra: unknown key "extra" (known: key, value)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.json))
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// fixture is a directory with executables and descriptors.
type fixture struct{ dir string }

func newFixture(t *testing.T) fixture {
	f := fixture{t.TempDir()}
	for _, exe := range []string{"bin/mod", "bin/other", "path1/found", "path2/found", "path2/onpath"} {
		f.write(t, exe, "#!/bin/sh\n", 0o755)
	}
	f.write(t, "bin/noexec", "", 0o644)
	return f
}

func (f fixture) write(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f fixture) path(name string) string { return filepath.Join(f.dir, name) }

func TestLoad(t *testing.T) {
	f := newFixture(t)
	desc := f.write(t, "conf/modules.json", `{"libraries":[{"file":"../bin/mod","modules":[{"name":"a","parameters":[{"key":"k","value":"v"}]}]}]}`, 0o644)
	f.write(t, "dir/10-b.json", `{"libraries":[{"file":"`+f.path("bin/other")+`","modules":[{"name":"b"}]}]}`, 0o644)
	f.write(t, "dir/20-a.json", `{"libraries":[{"file":"../bin/mod","modules":[{"name":"a","parameters":[{"key":"k","value":"v"}]}]}]}`, 0o644)
	f.write(t, "dir/.30-dot", `{"libraries":[{"name":"found","modules":[{"name":"c"}]}]}`, 0o644)

	for _, tc := range []struct {
		name     string
		opts     Options
		want     []Entry
		warnings []string
	}{
		{"file:// absolute", Options{Modules: "file://" + desc}, []Entry{
			{Name: "a", Path: f.path("bin/mod"), Parameters: []Parameter{{"k", "v"}}, Source: desc + " libraries[0].modules[0]"},
		}, nil},
		{"file:// relative to the working directory", Options{Modules: "file://conf/modules.json", WorkingDir: f.dir}, []Entry{
			{Name: "a", Path: f.path("bin/mod"), Parameters: []Parameter{{"k", "v"}}, Source: desc + " libraries[0].modules[0]"},
		}, nil},
		{"deprecated bare path", Options{Modules: desc}, []Entry{
			{Name: "a", Path: f.path("bin/mod"), Parameters: []Parameter{{"k", "v"}}, Source: desc + " libraries[0].modules[0]"},
		}, []string{"--modules=" + desc + ": specifying an absolute filename without 'file://' is deprecated in Mesos; write --modules=file://" + desc}},
		{"inline resolves against the working directory", Options{
			Modules: `{"libraries":[{"file":"bin/mod","modules":[{"name":"x"}]}, {"name":"onpath","modules":[{"name":"y"}]}]}`, WorkingDir: f.dir,
			ModulesPath: []string{f.path("path1")}, PathEnv: "relative:" + f.path("path2"),
		}, []Entry{
			{Name: "x", Path: f.path("bin/mod"), Source: "--modules libraries[0].modules[0]"},
			{Name: "y", Path: f.path("path2/onpath"), Source: "--modules libraries[1].modules[0]"},
		}, nil},
		{"modules_path before PATH", Options{
			Modules: `{"libraries":[{"file":"found","modules":[{"name":"x"}]}]}`, ModulesPath: []string{f.path("path1")}, PathEnv: f.path("path2"),
		}, []Entry{{Name: "x", Path: f.path("path1/found"), Source: "--modules libraries[0].modules[0]"}}, nil},
		{"modules_dir in name order, dotfiles too, identical duplicate once", Options{
			ModulesDir: f.path("dir"), PathEnv: f.path("path2"),
		}, []Entry{
			{Name: "c", Path: f.path("path2/found"), Source: f.path("dir/.30-dot") + " libraries[0].modules[0]"},
			{Name: "b", Path: f.path("bin/other"), Source: f.path("dir/10-b.json") + " libraries[0].modules[0]"},
			{Name: "a", Path: f.path("bin/mod"), Parameters: []Parameter{{"k", "v"}}, Source: f.path("dir/20-a.json") + " libraries[0].modules[0]"},
		}, nil},
		{"nothing", Options{}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := Load(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Load =\n%+v\nwant\n%+v", got, tc.want)
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", warnings, tc.warnings)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	f := newFixture(t)
	bad := f.write(t, "bad.json", `{"libraries":[{"file":"bin/mod","modules":[{"name":"a"}]},{"file":"bin/other","modules":[{"name":"a"}]},`+
		`{"file":"bin/mod","modules":[{"name":"a","parameters":[{"key":"k","value":"v"}]}]}]}`, 0o644)
	f.write(t, "dir/a.json", `{"libraries":[{"fiel":"x"}]}`, 0o644)
	f.write(t, "dir/b.json", `not json`, 0o644)
	if err := os.Mkdir(f.path("dir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"both flags", Options{Modules: "{}", ModulesDir: "/d"}, []string{"only one of --modules or --modules_dir should be specified"}},
		{"missing descriptor", Options{Modules: "file:///nonexistent/modules.json"},
			[]string{"error reading module manifest file '/nonexistent/modules.json': no such file or directory"}},
		{"relative path without file://", Options{Modules: "modules.json"},
			[]string{`--modules: "modules.json" is neither file://PATH nor JSON; to load a file write --modules=file://modules.json`}},
		{"missing modules_dir", Options{ModulesDir: "/nonexistent"},
			[]string{"error loading module manifests from '/nonexistent' directory: open /nonexistent: no such file or directory"}},
		{"executables", Options{WorkingDir: f.dir, Modules: `{"libraries":[` +
			`{"file":"bin/missing","modules":[{"name":"a"}]},` +
			`{"file":"bin/noexec","modules":[{"name":"b"}]},` +
			`{"file":"./bin","modules":[{"name":"c"}]},` +
			`{"name":"nowhere","modules":[{"name":"d"}]},` +
			`{"name":"bin/mod","modules":[{"name":"e"}]}]}`, PathEnv: f.path("path1")}, []string{
			`--modules: libraries[0]: file "bin/missing": ` + f.path("bin/missing") + `: no such file or directory`,
			`--modules: libraries[1]: file "bin/noexec": ` + f.path("bin/noexec") + `: not executable (chmod +x, or build it with make build)`,
			`--modules: libraries[2]: file "./bin": ` + f.path("bin") + `: not a regular file`,
			`--modules: libraries[3]: name "nowhere": no executable of that name on --modules_path or $PATH (searched ` + f.path("path1") + `)`,
			`--modules: libraries[4]: name "bin/mod": a name is looked up on --modules_path and $PATH and cannot contain '/'; use "file" for a path`,
		}},
		{"conflicting duplicates", Options{Modules: "file://" + bad}, []string{
			bad + " libraries[1].modules[0]: error loading module 'a'; this is potentially due to duplicate module names (first at " + bad +
				" libraries[0].modules[0]); the same module appears in two different module libraries - '" + f.path("bin/mod") + "' and '" + f.path("bin/other") + "'",
			bad + " libraries[2].modules[0]: error loading module 'a'; this is potentially due to duplicate module names (first at " + bad +
				" libraries[0].modules[0]); a module with same name but different parameters already exists",
		}},
		{"every file of a modules_dir", Options{ModulesDir: f.path("dir")}, []string{
			f.path("dir/a.json") + `: libraries[0].fiel: unknown key "fiel" (known: file, name, modules)`,
			f.path("dir/a.json") + `: libraries[0]: library name or path not provided: give "file" (the module's executable) or "name" (looked up on --modules_path and $PATH)`,
			f.path("dir/b.json") + `: invalid JSON at offset 2: invalid character 'o' in literal null (expecting 'u')`,
			"error reading module manifest file '" + f.path("dir/sub") + "': is a directory",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries, _, err := Load(tc.opts)
			if err == nil {
				t.Fatalf("Load = %+v, want an error", entries)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// FuzzParse: no input panics; a rejection is an error value, an
// acceptance yields only valid module names and complete parameters.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"libraries":[{"file":"bin/remote-execute","modules":[{"name":"org_execmod_RemoteExecution","parameters":[{"key":"default_timeout","value":"30s"}]}]}]}`,
		`{"libraries":[{"name":"x","file":"y","modules":[]}]}`,
		`{"libraries":[{"fiel":1,"modules":{"name":null}}],"x":[true,false,1.5e3]}`,
		`{"libraries":[[[[[[[]]]]]]]}`,
		`{"a":"\u0000","a":"\ud800"}`,
		`{} trailing`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, _, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error message")
			}
			return
		}
		for _, lib := range d.Libraries {
			if lib.File == "" && lib.Name == "" {
				t.Errorf("accepted a library without file or name: %+v", lib)
			}
			for _, m := range lib.Modules {
				if !moduleName.MatchString(m.Name) {
					t.Errorf("accepted module name %q", m.Name)
				}
			}
		}
	})
}

func TestUnjoin(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	if got := unjoin(errors.Join(a, b)); len(got) != 2 {
		t.Errorf("unjoin = %v", got)
	}
	if got := unjoin(a); len(got) != 1 || got[0] != a {
		t.Errorf("unjoin = %v", got)
	}
}
