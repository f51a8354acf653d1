package descriptor

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Options are the flags Load reads descriptors from.
type Options struct {
	// Modules is --modules: file://PATH, an absolute path (deprecated in
	// Mesos; a warning) or inline JSON.
	Modules string
	// ModulesDir is --modules_dir: every entry of the directory, in name
	// order, is a descriptor (as in Mesos, dotfiles included).
	ModulesDir string
	// ModulesPath and PathEnv are searched, in that order, for a library
	// given by "name" or by a "file" without a slash.
	ModulesPath []string
	PathEnv     string
	// WorkingDir resolves file://relative and the files of inline JSON.
	WorkingDir string
}

// Entry is one module to start: its Mesos name, the executable that
// serves it and its parameters.
type Entry struct {
	Name       string
	Path       string // absolute path of the executable
	Parameters []Parameter
	Source     string // where it was declared: "modules.json libraries[0].modules[0]"
}

// Load reads the descriptors opts names, resolves every library to an
// executable and returns the modules in declaration order. A module
// declared twice identically (same executable, same parameters in the same
// order) is loaded once, as in Mesos; declared twice differently it is an
// error. The error joins every problem found; warnings are for the log.
func Load(opts Options) ([]Entry, []string, error) {
	l := &loader{opts: opts, byName: map[string]int{}}
	switch {
	case opts.Modules != "" && opts.ModulesDir != "":
		return nil, nil, errors.New("only one of --modules or --modules_dir should be specified")
	case opts.ModulesDir != "":
		l.dir(opts.ModulesDir)
	case opts.Modules != "":
		l.flag(opts.Modules)
	}
	return l.entries, l.warnings, errors.Join(l.errs...)
}

type loader struct {
	opts     Options
	entries  []Entry
	byName   map[string]int // module name -> index in entries
	errs     []error
	warnings []string
}

func (l *loader) abs(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(l.opts.WorkingDir, path)
}

// flag loads --modules.
func (l *loader) flag(v string) {
	switch {
	case strings.HasPrefix(v, "file://"):
		l.file(l.abs(strings.TrimPrefix(v, "file://")))
	case strings.HasPrefix(v, "/"):
		l.warnings = append(l.warnings, fmt.Sprintf("--modules=%s: specifying an absolute filename without 'file://' is deprecated in Mesos; write --modules=file://%s", v, v))
		l.file(filepath.Clean(v))
	default:
		s := strings.TrimSpace(v)
		if s != "" && s[0] != '{' {
			l.errs = append(l.errs, fmt.Errorf("--modules: %q is neither file://PATH nor JSON; to load a file write --modules=file://%s", v, v))
			return
		}
		l.parse([]byte(v), "--modules", l.opts.WorkingDir)
	}
}

// dir loads --modules_dir.
func (l *loader) dir(dir string) {
	dir = l.abs(dir)
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("error loading module manifests from '%s' directory: %w", dir, err))
		return
	}
	if len(ents) == 0 {
		l.warnings = append(l.warnings, fmt.Sprintf("--modules_dir=%s is empty: no modules loaded", dir))
	}
	for _, e := range ents {
		l.file(filepath.Join(dir, e.Name()))
	}
}

func (l *loader) file(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("error reading module manifest file '%s': %w", path, unwrapPath(err)))
		return
	}
	l.parse(data, path, filepath.Dir(path))
}

// parse checks one descriptor and adds its modules; source names it in
// messages, base resolves its relative files.
func (l *loader) parse(data []byte, source, base string) {
	d, warnings, err := Parse(data)
	for _, w := range warnings {
		l.warnings = append(l.warnings, source+": "+w)
	}
	if err != nil {
		for _, e := range unjoin(err) {
			l.errs = append(l.errs, fmt.Errorf("%s: %w", source, e))
		}
		return
	}
	for _, lib := range d.Libraries {
		exe, err := l.resolve(lib, base)
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s: %s: %w", source, lib.Path, err))
			continue
		}
		for _, m := range lib.Modules {
			l.add(Entry{Name: m.Name, Path: exe, Parameters: m.Parameters, Source: source + " " + m.Path})
		}
	}
}

// add records e unless an identical module of that name is already there.
func (l *loader) add(e Entry) {
	i, dup := l.byName[e.Name]
	if !dup {
		l.byName[e.Name] = len(l.entries)
		l.entries = append(l.entries, e)
		return
	}
	prev := l.entries[i]
	var why string
	switch {
	case prev.Path != e.Path:
		why = fmt.Sprintf("the same module appears in two different module libraries - '%s' and '%s'", prev.Path, e.Path)
	case !slices.Equal(prev.Parameters, e.Parameters):
		why = "a module with same name but different parameters already exists"
	default:
		return // identical: loaded once
	}
	l.errs = append(l.errs, fmt.Errorf("%s: error loading module '%s'; this is potentially due to duplicate module names (first at %s); %s", e.Source, e.Name, prev.Source, why))
}

// resolve finds the executable a library names.
func (l *loader) resolve(lib Library, base string) (string, error) {
	file, field := lib.File, "file"
	if file == "" {
		file, field = lib.Name, "name"
	}
	if strings.Contains(file, "/") {
		if field == "name" {
			return "", fmt.Errorf("name %q: a name is looked up on --modules_path and $PATH and cannot contain '/'; use \"file\" for a path", file)
		}
		path := file
		if !filepath.IsAbs(path) {
			path = filepath.Join(base, path)
		}
		if err := executable(path); err != nil {
			return "", fmt.Errorf("file %q: %w", file, err)
		}
		return path, nil
	}
	dirs := slices.Clone(l.opts.ModulesPath)
	dirs = append(dirs, filepath.SplitList(l.opts.PathEnv)...)
	var tried []string
	for _, d := range dirs {
		if d == "" || !filepath.IsAbs(d) {
			continue // as exec.LookPath: never the working directory implicitly
		}
		path := filepath.Join(d, file)
		if executable(path) == nil {
			return path, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("%s %q: no executable of that name on --modules_path or $PATH (searched %s)", field, file, cmp.Or(strings.Join(tried, ":"), "nothing"))
}

// executable checks that path is a regular file the host may execute.
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not executable (chmod +x, or build it with make build)", path)
	}
	return nil
}

// unwrapPath drops the *fs.PathError wrapper whose path the message
// already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
