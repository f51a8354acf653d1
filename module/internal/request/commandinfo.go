package request

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// TimeoutVariable is the environment variable of the CommandInfo form that
// sets the timeout, in seconds; it is not passed to the command.
const TimeoutVariable = "EXECUTE_TIMEOUT_SEC"

func commandInfoFields() []string {
	return []string{"uris", "environment", "shell", "value", "arguments", "user"}
}

// ciVar is one environment variable of a CommandInfo, as checked before
// and as decoded by mesos-go.
type ciVar struct {
	Name, Value string
	HasValue    bool
	Type        int32
	Secret      bool
}

// ciView is what this package reads from a CommandInfo. It is built twice,
// once by the strict checker and once from mesos-go's decoding, and the
// two must agree.
type ciView struct {
	Value     string
	Shell     bool
	Arguments []string
	User      string
	URIs      int
	Vars      []ciVar
}

// commandInfo decodes the Mesos CommandInfo form of Execute.
func commandInfo(body []byte, o object, lim Limits) (Command, error) {
	hint := func(k string) string {
		if k == "timeout" {
			return fmt.Sprintf(`in the Mesos CommandInfo form the timeout is the environment variable %s `+
				`(e.g. "environment": {"variables": [{"name": %q, "value": "30"}]})`, TimeoutVariable, TimeoutVariable)
		}
		return ""
	}
	if err := o.unknown("", commandInfoFields(), hint); err != nil {
		return Command{}, err
	}
	want, err := checkCommandInfo(o)
	if err != nil {
		return Command{}, err
	}
	ci, err := unmarshalCommandInfo(body)
	if err != nil {
		return Command{}, err
	}
	got := viewOf(&ci)
	if !reflect.DeepEqual(got, want) {
		return Command{}, errorf("", "the Mesos CommandInfo decoder read this body differently from the validator; "+
			"simplify the strings (avoid unusual escapes) and retry")
	}

	c := Command{Form: FormCommandInfo, Shell: got.Shell, User: got.User}
	if got.Shell {
		if !lim.AllowShell {
			return Command{}, ErrShellNotAllowed
		}
		// As in Mesos, the arguments are ignored with a shell command.
		c.Path, c.Args = ShellPath, []string{ShellPath, "-c", got.Value}
	} else {
		c.Path = got.Value
		c.Args = append([]string(nil), got.Arguments...)
		if len(c.Args) == 0 {
			c.Args = []string{got.Value}
		}
	}
	for i, v := range got.Vars {
		if v.Name == TimeoutVariable {
			if c.Timeout, err = timeoutVariable(v.Value, lim.MaxTimeout); err != nil {
				return Command{}, err
			}
			continue
		}
		if c.Env == nil {
			c.Env = map[string]string{}
		}
		if _, dup := c.Env[v.Name]; dup {
			return Command{}, errorf(fmt.Sprintf("environment.variables[%d].name", i), "duplicate variable %q (set each variable once)", v.Name)
		}
		c.Env[v.Name] = v.Value
	}
	return finish(c, lim)
}

// checkCommandInfo checks the types and values of a CommandInfo body with
// precise messages, and returns what mesos-go must decode.
func checkCommandInfo(o object) (ciView, error) {
	v := ciView{Shell: true}
	var err error
	raw, ok := o.get("value")
	if !ok {
		return v, errorf("value", `required (the command line, e.g. "ls -la /tmp"; with "shell": false the executable, e.g. "/bin/ls")`)
	}
	if v.Value, err = getString("value", raw); err != nil {
		return v, err
	}
	if v.Value == "" {
		return v, errorf("value", `must not be empty (the command line, e.g. "ls -la /tmp"; with "shell": false the executable, e.g. "/bin/ls")`)
	}
	if raw, ok := o.get("shell"); ok {
		if v.Shell, err = getBool("shell", raw); err != nil {
			return v, err
		}
	}
	if raw, ok := o.get("arguments"); ok {
		if v.Arguments, err = getStrings("arguments", raw); err != nil {
			return v, err
		}
		if len(v.Arguments) == 0 {
			v.Arguments = nil
		}
	}
	if raw, ok := o.get("user"); ok {
		if v.User, err = getString("user", raw); err != nil {
			return v, err
		}
	}
	if raw, ok := o.get("uris"); ok {
		if k := kind(raw); k != "an array" {
			return v, errorf("uris", "want an array of URIs, got %s", k)
		}
		var uris []json.RawMessage
		if err := json.Unmarshal(raw, &uris); err != nil {
			return v, errorf("uris", "malformed array")
		}
		if len(uris) > 0 {
			return v, errorf("uris", `fetching URIs is not supported; put the files on the agent beforehand and leave "uris" out (or empty)`)
		}
	}
	if raw, ok := o.get("environment"); ok {
		if v.Vars, err = checkEnvironment(raw); err != nil {
			return v, err
		}
	}
	return v, nil
}

func checkEnvironment(raw []byte) ([]ciVar, error) {
	env, err := getObject("environment", raw, `an object such as {"variables": [{"name": "FOO", "value": "bar"}]}`)
	if err != nil {
		return nil, err
	}
	if err := env.unknown("environment", []string{"variables"}, nil); err != nil {
		return nil, err
	}
	raw, ok := env.get("variables")
	if !ok {
		return nil, nil
	}
	if k := kind(raw); k != "an array" {
		return nil, errorf("environment.variables", `want an array of {"name": ..., "value": ...} objects, got %s`, k)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, errorf("environment.variables", "malformed array")
	}
	var vars []ciVar
	for i, e := range elems {
		field := fmt.Sprintf("environment.variables[%d]", i)
		o, err := getObject(field, e, `an object such as {"name": "FOO", "value": "bar"}`)
		if err != nil {
			return nil, err
		}
		if err := o.unknown(field, []string{"name", "type", "value", "secret"}, nil); err != nil {
			return nil, err
		}
		v := ciVar{Type: int32(mesos.Environment_Variable_VALUE)}
		if raw, ok := o.get("type"); ok {
			s := strings.TrimSpace(string(raw))
			switch s {
			case `"VALUE"`, "1":
			case `"SECRET"`, "2":
				v.Type = int32(mesos.Environment_Variable_SECRET)
			default:
				return nil, errorf(field+".type", `want "VALUE" (or leave it out), got %s`, s)
			}
		}
		if raw, ok := o.get("secret"); ok {
			if k := kind(raw); k != "an object" {
				return nil, errorf(field+".secret", "want an object, got %s", k)
			}
			v.Secret = true
		}
		if v.Secret || v.Type == int32(mesos.Environment_Variable_SECRET) {
			return nil, errorf(field, `secret environment variables are not supported; send the value itself, as {"name": ..., "value": ...}`)
		}
		raw, ok := o.get("name")
		if !ok {
			return nil, errorf(field+".name", `required (the variable name, e.g. "FOO")`)
		}
		if v.Name, err = getString(field+".name", raw); err != nil {
			return nil, err
		}
		if err := checkEnvName(field+".name", v.Name); err != nil {
			return nil, err
		}
		raw, ok = o.get("value")
		if !ok {
			return nil, errorf(field+".value", "required for variable %q (send \"\" for an empty value)", v.Name)
		}
		if v.Value, err = getString(field+".value", raw); err != nil {
			return nil, err
		}
		v.HasValue = true
		vars = append(vars, v)
	}
	return vars, nil
}

// unmarshalCommandInfo decodes body with mesos-go's ffjson-generated
// decoder, turning a panic into an error.
func unmarshalCommandInfo(body []byte) (mesos.CommandInfo, error) {
	var ci mesos.CommandInfo
	if err := noPanic(body, ci.UnmarshalJSON); err != nil {
		return mesos.CommandInfo{}, err
	}
	return ci, nil
}

// noPanic runs decode(body) and returns its error, or the panic it raised,
// as an *Error.
func noPanic(body []byte, decode func([]byte) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errorf("", "malformed Mesos CommandInfo (the decoder failed: %v)", r)
		}
	}()
	if err := decode(body); err != nil {
		return errorf("", "malformed Mesos CommandInfo: %v", err)
	}
	return nil
}

// viewOf returns what this package reads from ci.
func viewOf(ci *mesos.CommandInfo) ciView {
	v := ciView{
		Value:     ci.GetValue(),
		Shell:     ci.GetShell(),
		Arguments: ci.GetArguments(),
		User:      ci.GetUser(),
		URIs:      len(ci.GetURIs()),
	}
	if len(v.Arguments) == 0 {
		v.Arguments = nil
	}
	for _, e := range ci.GetEnvironment().GetVariables() {
		v.Vars = append(v.Vars, ciVar{
			Name:     e.GetName(),
			Value:    e.GetValue(),
			HasValue: e.Value != nil,
			Type:     int32(e.GetType()),
			Secret:   e.Secret != nil,
		})
	}
	return v
}

// timeoutVariable parses the value of EXECUTE_TIMEOUT_SEC.
func timeoutVariable(s string, max time.Duration) (time.Duration, error) {
	if !isDecimal(s) {
		return 0, errorf(TimeoutVariable, `want a positive number of seconds such as "30" or "1.5", got %q`, s)
	}
	d, ok := scaleDecimal(s, int64(time.Second))
	if !ok {
		return 0, errorf(TimeoutVariable, "%s seconds is too large (the maximum is %v)", s, time.Duration(math.MaxInt64))
	}
	if d <= 0 {
		return 0, errorf(TimeoutVariable, `want a positive number of seconds such as "30", got %q (leave the variable out for the default)`, s)
	}
	if max > 0 && d > max {
		return 0, errorf(TimeoutVariable, "%s seconds is above the maximum of %v (parameter max_timeout)", s, max)
	}
	return d, nil
}
