// Package descriptor reads Mesos modules.json descriptors, as the Mesos
// agent's --modules and --modules_dir flags give them, and resolves each
// module to the executable that serves it.
//
// The schema is Mesos's own (include/mesos/module/module.proto):
//
//	{"libraries": [{"file": "bin/remote-execute",
//	                "modules": [{"name": "org_execmod_RemoteExecution",
//	                             "parameters": [{"key": "default_timeout", "value": "30s"}]}]}]}
//
// Where Mesos would dlopen a shared library, the host starts the "file" as
// a go-plugin subprocess. Unlike Mesos, which silently drops keys it does
// not know, unknown keys are errors: a misspelt "parameter" must not lose
// the operator's settings. Every problem is reported at once, each with
// its JSON path.
package descriptor

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Descriptor is one modules.json.
type Descriptor struct {
	Libraries []Library
}

// Library is an executable and the modules it serves. File, when it
// contains a slash, is a path (relative to the descriptor's directory);
// otherwise File or Name is looked up on --modules_path and $PATH.
type Library struct {
	File    string
	Name    string
	Modules []Module
	Path    string // JSON path, e.g. libraries[0]
}

// Module is one named module and its parameters.
type Module struct {
	Name       string
	Parameters []Parameter
	Path       string // JSON path, e.g. libraries[0].modules[1]
}

// Parameter is one key/value pair; empty strings are allowed, as in Mesos.
type Parameter struct{ Key, Value string }

// moduleName is what Mesos can name a module: a C symbol (it dlsyms the
// name). The host also uses it as a directory name under work_dir, so the
// rule keeps paths safe too.
var moduleName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Parse decodes and checks one descriptor. The error joins every problem,
// each prefixed with its JSON path; warnings are problems that do not stop
// loading (both "file" and "name" given, a library without modules).
func Parse(data []byte) (Descriptor, []string, error) {
	root, err := parseJSON(data)
	if err != nil {
		return Descriptor{}, nil, err
	}
	p := &parser{}
	d := p.descriptor(root)
	return d, p.warnings, errors.Join(p.errs...)
}

type parser struct {
	errs     []error
	warnings []string
}

func (p *parser) errorf(path, format string, args ...any) {
	if path == "" {
		path = "(top level)"
	}
	p.errs = append(p.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// object checks that n is an object whose keys are all known and appear
// once, and returns its fields by key.
func (p *parser) object(n node, path string, known ...string) map[string]node {
	if n.kind != kindObject {
		p.errorf(path, "want an object, got %v", n.kind)
		return nil
	}
	out := map[string]node{}
	for _, f := range n.fields {
		fp := join(path, f.key)
		switch _, dup := out[f.key]; {
		case !slices.Contains(known, f.key):
			p.errorf(fp, "unknown key %q (known: %s)", f.key, strings.Join(known, ", "))
		case dup:
			p.errorf(fp, "key %q given twice", f.key)
		default:
			out[f.key] = f.val
		}
	}
	return out
}

func (p *parser) array(n node, path string) []node {
	if n.kind != kindArray {
		p.errorf(path, "want an array, got %v", n.kind)
		return nil
	}
	return n.elems
}

// str returns the string at n; ok is false (and an error recorded) if n is
// not a string.
func (p *parser) str(n node, path string) (string, bool) {
	if n.kind != kindString {
		p.errorf(path, "want a string, got %v", n.kind)
		return "", false
	}
	return n.str, true
}

func (p *parser) descriptor(root node) Descriptor {
	var d Descriptor
	obj := p.object(root, "", "libraries")
	libs, ok := obj["libraries"]
	if !ok {
		return d
	}
	for i, ln := range p.array(libs, "libraries") {
		path := "libraries[" + strconv.Itoa(i) + "]"
		lib := Library{Path: path}
		fields := p.object(ln, path, "file", "name", "modules")
		if fields == nil {
			continue
		}
		file, hasFile := fields["file"]
		name, hasName := fields["name"]
		if hasFile {
			lib.File, _ = p.str(file, path+".file")
		}
		if hasName {
			lib.Name, _ = p.str(name, path+".name")
		}
		switch {
		case hasFile && file.kind == kindString && lib.File == "":
			p.errorf(path+".file", "must not be empty")
		case hasName && name.kind == kindString && lib.Name == "" && !hasFile:
			p.errorf(path+".name", "must not be empty")
		case !hasFile && !hasName:
			p.errorf(path, "library name or path not provided: give \"file\" (the module's executable) or \"name\" (looked up on --modules_path and $PATH)")
		case hasFile && hasName:
			p.warnings = append(p.warnings, fmt.Sprintf("%s: both \"file\" and \"name\" given; \"name\" is ignored, as in Mesos", path))
		}
		mods, ok := fields["modules"]
		if ok {
			for j, mn := range p.array(mods, path+".modules") {
				lib.Modules = append(lib.Modules, p.module(mn, path+".modules["+strconv.Itoa(j)+"]"))
			}
		}
		if !ok || mods.kind == kindArray && len(mods.elems) == 0 {
			p.warnings = append(p.warnings, fmt.Sprintf("%s: declares no modules; nothing is started for it", path))
		}
		d.Libraries = append(d.Libraries, lib)
	}
	return d
}

func (p *parser) module(n node, path string) Module {
	m := Module{Path: path}
	fields := p.object(n, path, "name", "parameters")
	if fields == nil {
		return m
	}
	if nn, ok := fields["name"]; !ok {
		p.errorf(path, "module name not provided")
	} else if s, ok := p.str(nn, path+".name"); ok {
		m.Name = s
		if !moduleName.MatchString(s) {
			p.errorf(path+".name", "%q is not a module name: use letters, digits and '_', not starting with a digit (e.g. org_example_Hello)", s)
		}
	}
	params, ok := fields["parameters"]
	if !ok {
		return m
	}
	seen := map[string]int{}
	for i, pn := range p.array(params, path+".parameters") {
		pp := path + ".parameters[" + strconv.Itoa(i) + "]"
		pf := p.object(pn, pp, "key", "value")
		if pf == nil {
			continue
		}
		var prm Parameter
		kn, hasKey := pf["key"]
		vn, hasValue := pf["value"]
		if !hasKey {
			p.errorf(pp, "missing required field \"key\"")
		}
		if !hasValue {
			p.errorf(pp, "missing required field \"value\"")
		}
		keyOK, valueOK := false, false
		if hasKey {
			prm.Key, keyOK = p.str(kn, pp+".key")
		}
		if hasValue {
			prm.Value, valueOK = p.str(vn, pp+".value")
		}
		if keyOK {
			if first, dup := seen[prm.Key]; dup {
				p.errorf(pp+".key", "%q is already given at %s.parameters[%d]", prm.Key, path, first)
				continue
			}
			seen[prm.Key] = i
		}
		if keyOK && valueOK {
			m.Parameters = append(m.Parameters, prm)
		}
	}
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
