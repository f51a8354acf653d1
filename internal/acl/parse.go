package acl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// maxSize bounds an ACL document.
const maxSize = 4 << 20

// Load reads ACLs from the value of an --acls flag: "file://PATH", an
// absolute path, or inline JSON (starting with '{'). Errors name the
// source and every problem found.
func Load(flag string) (*ACLs, error) {
	v := strings.TrimSpace(flag)
	var file string
	switch {
	case strings.HasPrefix(v, "{"):
		a, err := Parse([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("--acls (inline JSON): %w", err)
		}
		return a, nil
	case strings.HasPrefix(v, "file://"):
		file = strings.TrimPrefix(v, "file://")
	case filepath.IsAbs(v):
		file = v
	default:
		return nil, fmt.Errorf("--acls: %q is neither file://PATH, an absolute path nor inline JSON (which starts with '{')", flag)
	}
	if !filepath.IsAbs(file) {
		return nil, fmt.Errorf("--acls: %q: the path after file:// must be absolute", flag)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("--acls: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("--acls: %s: %w", file, err)
	}
	a, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("--acls (file %s): %w", file, err)
	}
	return a, nil
}

// Parse reads an ACL document strictly: unknown actions and fields,
// duplicate keys, wrong types and bad patterns are errors, each with its
// JSON path ("run_remote_commands[1].principals.values[0]: ..."), all of
// them at once. Mesos's own actions that modhost does not enforce
// (run_tasks, view_tasks, ...: see MesosActions) are not errors: their
// value must be a list of objects, whose fields are not checked, and they
// are listed in ACLs.Unenforced for the caller to report.
func Parse(data []byte) (*ACLs, error) {
	if len(data) > maxSize {
		return nil, fmt.Errorf("the document is over %d bytes", maxSize)
	}
	p := &parser{}
	a := &ACLs{Permissive: true, Rules: map[Action][]Rule{}}
	top, ok := p.object("", data)
	if !ok {
		return nil, p.err()
	}
	for _, kv := range top {
		if kv.key == permissiveKey {
			if err := json.Unmarshal(kv.raw, &a.Permissive); err != nil || !isBool(kv.raw) {
				p.add(permissiveKey, "want true or false, not %s", short(kv.raw))
			}
			continue
		}
		act := Action(kv.key)
		spec, known := actions[act]
		if !known && mesosActions[kv.key] {
			// A real Mesos action that means nothing here: accepted, so
			// that an agent's ACL file works as it is, and reported in
			// Unenforced. Its rules must still be a list of objects.
			if list, ok := p.array(kv.key, kv.raw); ok {
				for i, raw := range list {
					p.object(fmt.Sprintf("%s[%d]", kv.key, i), raw)
				}
			}
			a.Unenforced = append(a.Unenforced, act)
			continue
		}
		if !known {
			p.add(kv.key, "unknown action: neither one modhost enforces (permissive, %s) nor one of Mesos's", joinActions())
			continue
		}
		list, ok := p.array(kv.key, kv.raw)
		if !ok {
			continue
		}
		rules := []Rule{}
		for i, raw := range list {
			at := fmt.Sprintf("%s[%d]", kv.key, i)
			fields, ok := p.object(at, raw)
			if !ok {
				continue
			}
			var r Rule
			var havePrincipals, haveObject bool
			for _, f := range fields {
				fat := at + "." + f.key
				switch f.key {
				case "principals":
					havePrincipals = true
					r.Principals = p.entity(fat, f.raw, false)
					for j, v := range r.Principals.Values {
						if v == "" {
							p.add(fmt.Sprintf("%s.values[%d]", fat, j), "a principal cannot be empty (unauthenticated requests match only {\"type\": \"ANY\"} and NONE)")
						}
					}
				case spec.field:
					haveObject = true
					r.Object = p.entity(fat, f.raw, spec.flags&objectAnyOnly != 0)
					for j, v := range r.Object.Values {
						vat := fmt.Sprintf("%s.values[%d]", fat, j)
						switch act {
						case RunRemoteCommands:
							cp, err := parseCommandPattern(v)
							if err != nil {
								p.add(vat, "%v", err)
							}
							r.commands = append(r.commands, cp)
						case GetEndpoints:
							if !strings.HasPrefix(v, "/") {
								p.add(vat, "%q: a path starts with '/'", v)
							}
						default:
							if v == "" {
								p.add(vat, "an empty value matches nothing")
							}
						}
					}
				default:
					p.add(fat, "unknown field (a %s rule has \"principals\" and %q)", act, spec.field)
				}
			}
			if !havePrincipals {
				p.add(at, "missing \"principals\"")
			}
			if !haveObject {
				if spec.flags&objectOptional != 0 {
					r.Object = Entity{Type: Any}
				} else {
					p.add(at, "missing %q", spec.field)
				}
			}
			rules = append(rules, r)
		}
		a.Rules[act] = rules
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	slices.Sort(a.Unenforced)
	return a, nil
}

func joinActions() string {
	var s []string
	for _, a := range Actions() {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

// parser collects problems.
type parser struct{ errs []error }

func (p *parser) add(at, format string, args ...any) {
	if at == "" {
		at = "(document)"
	}
	p.errs = append(p.errs, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, args...)))
}

func (p *parser) err() error { return errors.Join(p.errs...) }

type member struct {
	key string
	raw json.RawMessage
}

// object reads a JSON object keeping its order, refusing duplicate keys.
func (p *parser) object(at string, raw []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '{' {
		if err != nil {
			p.add(at, "not JSON: %v", err)
		} else {
			p.add(at, "want an object, not %s", short(raw))
		}
		return nil, false
	}
	var out []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			p.add(at, "not JSON: %v", err)
			return nil, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			p.add(join(at, key), "not JSON: %v", err)
			return nil, false
		}
		if seen[key] {
			p.add(join(at, key), "duplicate key")
			continue
		}
		seen[key] = true
		out = append(out, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		p.add(at, "not JSON: %v", err)
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		p.add(at, "unexpected data after the object")
		return nil, false
	}
	return out, true
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func (p *parser) array(at string, raw []byte) ([]json.RawMessage, bool) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		p.add(at, "want a list of rules, not %s", short(raw))
		return nil, false
	}
	return list, true
}

// entity reads {"values": [...]}, {"type": "ANY"|"NONE"} or
// {"type": "SOME", "values": [...]}.
func (p *parser) entity(at string, raw []byte, anyOnly bool) Entity {
	fields, ok := p.object(at, raw)
	if !ok {
		return Entity{Type: None}
	}
	e := Entity{Type: Some}
	var typ string
	var haveType, haveValues bool
	for _, f := range fields {
		switch f.key {
		case "type":
			haveType = true
			if err := json.Unmarshal(f.raw, &typ); err != nil || (typ != "ANY" && typ != "NONE" && typ != "SOME") {
				p.add(at+".type", "want \"ANY\", \"NONE\" or \"SOME\", not %s", short(f.raw))
				typ = ""
			}
		case "values":
			haveValues = true
			if err := json.Unmarshal(f.raw, &e.Values); err != nil || bytes.Equal(bytes.TrimSpace(f.raw), []byte("null")) {
				p.add(at+".values", "want a list of strings, not %s", short(f.raw))
			}
		default:
			p.add(at+"."+f.key, "unknown field (an entity has \"values\" or \"type\")")
		}
	}
	switch typ {
	case "ANY":
		e.Type = Any
	case "NONE":
		e.Type = None
	}
	badType := haveType && typ == "" // already reported
	switch {
	case badType:
	case anyOnly && e.Type == Some:
		p.add(at, "only {\"type\": \"ANY\"} or {\"type\": \"NONE\"} is allowed here")
	case e.Type != Some && haveValues:
		p.add(at, "\"values\" with type %s: give either values or a type ANY/NONE", e.Type)
	case e.Type == Some && !haveValues:
		p.add(at, "give \"values\": [...] or \"type\": \"ANY\" or \"NONE\"")
	case e.Type == Some && len(e.Values) == 0:
		p.add(at+".values", "an empty list matches nothing: use {\"type\": \"NONE\"} to deny")
	}
	if e.Type != Some {
		e.Values = nil
	}
	if badType {
		e.Type = None // a broken entity never allows
	}
	return e
}

func isBool(raw []byte) bool {
	s := string(bytes.TrimSpace(raw))
	return s == "true" || s == "false"
}

func short(raw []byte) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// MarshalJSON writes the policy back in the shape Parse reads. The
// rules of Unenforced actions are not kept: each is written as an empty
// list, which Parse reads back to the same policy.
func (a *ACLs) MarshalJSON() ([]byte, error) {
	m := map[string]any{permissiveKey: a.Permissive}
	for _, act := range a.Unenforced {
		m[string(act)] = []any{}
	}
	for act, rules := range a.Rules {
		list := make([]map[string]any, 0, len(rules))
		for _, r := range rules {
			list = append(list, map[string]any{"principals": r.Principals, actions[act].field: r.Object})
		}
		m[string(act)] = list
	}
	return json.Marshal(m)
}

// MarshalJSON writes e as {"values": [...]} or {"type": "ANY"|"NONE"}.
func (e Entity) MarshalJSON() ([]byte, error) {
	if e.Type == Some {
		return json.Marshal(map[string][]string{"values": slices.Clip(e.Values)})
	}
	return json.Marshal(map[string]string{"type": e.Type.String()})
}
