// Package acl reads and evaluates access control lists in the shape of
// Mesos's local authorizer (the agent's --acls flag), for the host and
// the modules:
//
//	{
//	  "permissive": false,
//	  "run_remote_commands": [
//	    {"principals": {"values": ["ops"]},   "commands": {"values": ["/usr/bin/systemctl status *", "uptime"]}},
//	    {"principals": {"type": "ANY"},       "commands": {"type": "NONE"}}
//	  ],
//	  "view_remote_tasks": [ {"principals": {"type": "ANY"}, "owners": {"values": ["self"]}} ]
//	}
//
// # Semantics (Mesos's, see below)
//
// Each action has a list of rules. A rule has two entities: "principals"
// (who asks) and one object field (what is asked for: "commands",
// "users", "owners", ...). An entity is {"values": [...]} (Mesos's SOME,
// the default type; {"type": "SOME", "values": [...]} is accepted too),
// {"type": "ANY"} or {"type": "NONE"}.
//
// The rules of an action are tried in order and the first rule that
// matches decides; when none matches, the request is allowed exactly when
// "permissive" is true (its default, as in Mesos). A rule matches when
// both its entities match:
//
//   - a known principal (or object value) matches an entity of type ANY
//     or NONE, and a values entity that contains it;
//   - an unknown one — the unauthenticated principal "", or a request
//     without that object, such as a task nobody owns — matches only ANY
//     and NONE.
//
// A matching rule allows when neither of its entities is NONE: NONE means
// "may do nothing" (principals NONE: nobody may; object NONE: these
// principals may not, whatever the object). So an unauthenticated request
// is allowed only by a rule whose principals are {"type": "ANY"}.
//
// This is LocalAuthorizerObjectApprover::approved with its matches() and
// allows() in Mesos's src/authorizer/local/authorizer.cpp, and the shape
// is include/mesos/authorizer/acls.proto (ACL.Entity: SOME default, ANY,
// NONE; unmatched requests follow "permissive", default true); see
// docs/authorization.md "ACLs" and the project's reference notes
// (/work/shared/reference/mesos.md §3.3). Mesos cannot guard module routes
// with get_endpoints (only six agent paths are authorizable there), hence
// the remote-execution actions below.
//
// # Actions and their object fields
//
//	view_flags                   flags     ANY or NONE only (as in Mesos)       host: /flags
//	get_endpoints                paths     exact request paths ("/metrics/snapshot")  host
//	run_remote_commands          commands  command patterns (below)
//	run_remote_commands_as_user  users     user names, as the request gives them
//	run_remote_shell             shells    ANY or NONE only; may be left out (ANY)
//	view_remote_tasks            owners    principals that own tasks; "self" = the asker's own
//	kill_remote_tasks            owners    as view_remote_tasks
//
// Every other action of Mesos's ACLs (register_frameworks, run_tasks,
// view_tasks, ...) is accepted and enforced by nobody: see
// ACLs.Unenforced. A key that is neither is an error.
//
// get_endpoints takes Mesos's paths, exact. The host also guards its
// Prometheus /metrics with it, which serves the figures of
// /metrics/snapshot: a request for /metrics matches a rule that names
// "/metrics" or "/metrics/snapshot" (see Values).
//
// Every rule needs "principals" and its action's object field, except
// run_remote_shell, whose "shells" defaults to ANY: a shell command line
// cannot be restricted by patterns (";" and "$(...)" run anything), so a
// shell is all or nothing, like Mesos's view_flags. Principal values must
// be non-empty.
//
// The owner value "self" matches a task whose owner is the principal
// asking; it never matches for the unauthenticated principal, and it
// cannot name a principal called "self".
//
// # Command patterns
//
// A value of "commands" is an executable followed by argument patterns,
// separated by blanks, with shell-like quoting:
//
//	"/usr/bin/uptime"                 /usr/bin/uptime with no argument
//	"/usr/bin/systemctl status *"     exactly one argument after "status"
//	"/usr/bin/journalctl -u * **"     "-u", one argument, then any number of arguments
//	"/bin/ls **"                      any arguments
//	"uptime"                          an executable named uptime in any directory
//	"/usr/bin/echo 'a b' \*"          two arguments: "a b" and a literal "*"
//
// The executable is matched against the absolute, cleaned path of what
// will run (the caller resolves bare names with the task's PATH); a
// pattern without a slash matches the base name only, wherever the file
// is — pin the directory with an absolute pattern when that matters.
// Each following word matches exactly one argument with path.Match
// (shell glob: *, ?, [a-z], \ escapes); "*" does not match a "/", so
// "/bin/cat /var/log/*" allows files directly under /var/log only.
// Patterns match the strings, not resolved files ("/var/log/.." matches
// "/var/log/*"). A final unquoted "**" matches any number of remaining
// arguments, including none, whatever they contain; "**" anywhere else
// is an error. Quoted text ('...' or "..." with \" and \\) and
// backslash-escaped characters are literal. argv[0] is not matched.
package acl

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Action is an ACL key.
type Action string

// The actions.
const (
	ViewFlags               Action = "view_flags"
	GetEndpoints            Action = "get_endpoints"
	RunRemoteCommands       Action = "run_remote_commands"
	RunRemoteCommandsAsUser Action = "run_remote_commands_as_user"
	RunRemoteShell          Action = "run_remote_shell"
	ViewRemoteTasks         Action = "view_remote_tasks"
	KillRemoteTasks         Action = "kill_remote_tasks"
)

const (
	permissiveKey = "permissive"
	selfOwner     = "self" // the owners value for the asker's own tasks
	restArgs      = "**"   // the final command word for any further arguments
)

const (
	objectAnyOnly  = 1 << iota // the object field takes only ANY or NONE
	objectOptional             // the object field may be left out (then ANY)
	objectSelf                 // the value "self" stands for the asker (owners)
)

// actions maps each action to its object field and flags.
var actions = map[Action]struct {
	field string
	flags int
}{
	ViewFlags:               {"flags", objectAnyOnly},
	GetEndpoints:            {"paths", 0},
	RunRemoteCommands:       {"commands", 0},
	RunRemoteCommandsAsUser: {"users", 0},
	RunRemoteShell:          {"shells", objectAnyOnly | objectOptional},
	ViewRemoteTasks:         {"owners", objectSelf},
	KillRemoteTasks:         {"owners", objectSelf},
}

// Actions lists the known actions, sorted.
func Actions() []Action {
	var out []Action
	for a := range actions {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// ObjectField is the name of a's object field ("" for an unknown action).
func ObjectField(a Action) string { return actions[a].field }

// Type is an entity's type, as in Mesos's ACL.Entity.
type Type int

// The entity types. Some is Mesos's SOME: the entity's values.
const (
	Some Type = iota
	Any
	None
)

func (t Type) String() string {
	switch t {
	case Any:
		return "ANY"
	case None:
		return "NONE"
	}
	return "SOME"
}

// Entity is one side of a rule.
type Entity struct {
	Type   Type
	Values []string // when Type is Some
}

// Rule is one entry of an action's list.
type Rule struct {
	Principals Entity
	Object     Entity
	commands   []commandPattern // Object.Values compiled, for run_remote_commands
}

// ACLs is a parsed policy. The nil *ACLs allows everything.
type ACLs struct {
	Permissive bool
	Rules      map[Action][]Rule
	// Unenforced are the actions of the document that are Mesos's but
	// not modhost's (run_tasks, view_tasks, ...), sorted: their rules
	// decide nothing here. Whoever loads the document for the agent
	// should say so once (the host logs a warning).
	Unenforced []Action
}

// Object is what a request asks for: one value of the action's object
// field, a command, or nothing known (Mesos's ANY object).
type Object struct {
	known   bool
	value   string
	aliases []string // other names of value (Values)
	path    string   // command: the absolute executable
	args    []string // command: argv[1:]
	command bool
}

// NoObject is a request without a known object: a view_flags request, a
// shell request, a task that nobody owns. It matches only ANY and NONE.
var NoObject = Object{}

// Value is a request for one object: a path, a user, a task's owner. The
// empty string is NoObject.
func Value(v string) Object {
	if v == "" {
		return NoObject
	}
	return Object{known: true, value: v}
}

// Values is a request for one object known by several names, such as
// the host's /metrics, which serves what /metrics/snapshot does: it
// matches a values entity that contains any of them. No names is
// NoObject.
func Values(names ...string) Object {
	var known []string
	for _, n := range names {
		if n != "" {
			known = append(known, n)
		}
	}
	switch len(known) {
	case 0:
		return NoObject
	case 1:
		return Value(known[0])
	}
	return Object{known: true, value: known[0], aliases: known[1:]}
}

// Command is a request to run the executable at the absolute path exe with
// args (argv without argv[0]).
func Command(exe string, args []string) Object {
	return Object{known: true, command: true, path: exe, args: args}
}

// String shows the object in messages: a command as its words, with
// blanks and quotes quoted.
func (o Object) String() string {
	switch {
	case !o.known:
		return "(none)"
	case o.command:
		words := []string{quoteWord(o.path)}
		for _, a := range o.args {
			words = append(words, quoteWord(a))
		}
		return strings.Join(words, " ")
	}
	return o.value
}

func quoteWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Allowed bool
	// Rule names what decided: "run_remote_commands[1]" (the rule's index
	// in its action's list), "permissive=false (no rule matched)", or
	// "no ACLs (everything allowed)".
	Rule string
}

// NoACLs is the Rule of every decision of a nil *ACLs.
const NoACLs = "no ACLs (everything allowed)"

// Evaluate decides whether principal ("" when unauthenticated) may do
// action on object: the first matching rule decides, else "permissive".
func (a *ACLs) Evaluate(action Action, principal string, object Object) Decision {
	if a == nil {
		return Decision{Allowed: true, Rule: NoACLs}
	}
	if _, ok := actions[action]; !ok {
		return Decision{Allowed: false, Rule: fmt.Sprintf("unknown action %q", action)}
	}
	for i, r := range a.Rules[action] {
		if !matchPrincipal(r.Principals, principal) || !r.matchObject(object, principal, actions[action].flags&objectSelf != 0) {
			continue
		}
		return Decision{Allowed: r.Principals.Type != None && r.Object.Type != None, Rule: fmt.Sprintf("%s[%d]", action, i)}
	}
	return Decision{Allowed: a.Permissive, Rule: fmt.Sprintf("permissive=%t (no rule matched)", a.Permissive)}
}

// matchPrincipal is Mesos's matches() for the subject.
func matchPrincipal(e Entity, principal string) bool {
	if e.Type != Some {
		return true
	}
	return principal != "" && slices.Contains(e.Values, principal)
}

// matchObject is Mesos's matches() for the object, with patterns for
// commands and "self" for owners.
func (r Rule) matchObject(o Object, principal string, self bool) bool {
	if r.Object.Type != Some {
		return true
	}
	if !o.known {
		return false
	}
	if o.command {
		for _, p := range r.commands {
			if p.match(o.path, o.args) {
				return true
			}
		}
		return false
	}
	for _, v := range r.Object.Values {
		if self && v == selfOwner {
			if principal != "" && o.value == principal {
				return true
			}
		} else if v == o.value || slices.Contains(o.aliases, v) {
			return true
		}
	}
	return false
}

// commandPattern is a compiled "commands" value.
type commandPattern struct {
	exe     string   // path.Match pattern
	byName  bool     // exe matches the base name only
	args    []string // path.Match patterns, one per argument
	anyRest bool     // a final ** : any number of further arguments
}

func (p commandPattern) match(exe string, args []string) bool {
	target := exe
	if p.byName {
		target = path.Base(exe)
	}
	if ok, _ := path.Match(p.exe, target); !ok {
		return false
	}
	if len(args) < len(p.args) || (!p.anyRest && len(args) != len(p.args)) {
		return false
	}
	for i, pat := range p.args {
		if ok, _ := path.Match(pat, args[i]); !ok {
			return false
		}
	}
	return true
}

// parseCommandPattern compiles a "commands" value; see the package
// comment for the syntax.
func parseCommandPattern(s string) (commandPattern, error) {
	words, rest, err := splitWords(s)
	if err != nil {
		return commandPattern{}, err
	}
	if len(words) == 0 {
		return commandPattern{}, fmt.Errorf("empty command pattern: give an executable, e.g. \"/usr/bin/uptime\", or use {\"type\": \"ANY\"}")
	}
	for i, w := range words {
		if rest[i] && i != len(words)-1 {
			return commandPattern{}, fmt.Errorf("%q: ** (any further arguments) may only be the last word", s)
		}
		if _, err := path.Match(w, ""); err != nil {
			return commandPattern{}, fmt.Errorf("%q: word %d: bad glob pattern %q", s, i+1, w)
		}
	}
	p := commandPattern{exe: words[0]}
	if rest[0] {
		return commandPattern{}, fmt.Errorf("%q: the executable cannot be **: use {\"type\": \"ANY\"} for any command", s)
	}
	switch {
	case strings.HasPrefix(p.exe, "/"):
		if path.Clean(p.exe) != p.exe && !strings.ContainsAny(p.exe, `*?[\`) {
			return commandPattern{}, fmt.Errorf("%q: write the executable as a clean absolute path (%q)", s, path.Clean(p.exe))
		}
	case strings.Contains(p.exe, "/"):
		return commandPattern{}, fmt.Errorf("%q: the executable must be an absolute path or a name without '/'", s)
	default:
		p.byName = true
	}
	words = words[1:]
	if n := len(words); n > 0 && rest[len(rest)-1] {
		p.anyRest = true
		words = words[:n-1]
	}
	p.args = words
	return p, nil
}

// splitWords splits a pattern into path.Match patterns: quoted and
// backslash-escaped characters become literal; rest[i] tells that word i
// was an unquoted "**".
func splitWords(s string) (words []string, rest []bool, err error) {
	var b strings.Builder
	inWord, raw := false, true // raw: the word so far is unquoted, unescaped text
	end := func() {
		if inWord {
			w := b.String()
			words = append(words, w)
			rest = append(rest, raw && w == restArgs)
		}
		b.Reset()
		inWord, raw = false, true
	}
	lit := func(c byte) {
		if strings.IndexByte(`*?[]\`, c) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			end()
		case '\\':
			if i+1 == len(s) {
				return nil, nil, fmt.Errorf("%q: a trailing backslash escapes nothing", s)
			}
			i++
			lit(s[i])
			inWord, raw = true, false
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, nil, fmt.Errorf("%q: unterminated ' quote", s)
			}
			for k := i + 1; k <= i+j; k++ {
				lit(s[k])
			}
			i += j + 1
			inWord, raw = true, false
		case '"':
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				lit(s[i])
			}
			if !closed {
				return nil, nil, fmt.Errorf("%q: unterminated \" quote", s)
			}
			inWord, raw = true, false
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	end()
	return words, rest, nil
}
