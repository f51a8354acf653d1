package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// object is a JSON object whose values are still raw, with its keys in
// document order.
type object struct {
	keys []string
	vals map[string]json.RawMessage
}

// get returns the raw value of key, and false when the key is absent or
// its value is null.
func (o object) get(key string) (json.RawMessage, bool) {
	v, ok := o.vals[key]
	if !ok || kind(v) == "null" {
		return nil, false
	}
	return v, true
}

// has reports whether key is present, even with a null value.
func (o object) has(key string) bool {
	_, ok := o.vals[key]
	return ok
}

// unknown returns an error for the first key, in document order, that is
// not in known; hint, when it returns a non-empty string for a key, replaces
// the list of known fields in the message.
func (o object) unknown(field string, known []string, hint func(string) string) error {
	for _, k := range o.keys {
		if contains(known, k) {
			continue
		}
		msg := fmt.Sprintf("unknown field %q (known: %s)", k, strings.Join(known, ", "))
		if hint != nil {
			if h := hint(k); h != "" {
				msg = fmt.Sprintf("unknown field %q: %s", k, h)
			}
		}
		return &Error{Field: field, Msg: msg}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseBody checks that body is exactly one strict JSON object and returns
// its fields.
func parseBody(body []byte) (object, error) {
	if err := checkJSON(body); err != nil {
		return object{}, err
	}
	if k := kind(body); k != "an object" {
		return object{}, errorf("", "want a JSON object, got %s", k)
	}
	return readObject("", body)
}

// checkJSON checks that body holds exactly one JSON value, in valid UTF-8,
// with no duplicate field names and no NUL bytes in any string.
func checkJSON(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf("", "empty body: want a JSON object")
	}
	if !utf8.Valid(body) {
		off := 0
		for off < len(body) {
			r, n := utf8.DecodeRune(body[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return errorf("", "body is not valid UTF-8 (at offset %d); JSON must be UTF-8 text", off)
	}
	type frame struct {
		obj     bool
		wantKey bool
		key     string
		idx     int
		seen    map[string]bool
	}
	var stack []frame
	path := func(stack []frame) string {
		var b strings.Builder
		for _, f := range stack {
			if f.obj {
				b.WriteString(keyPath("", f.key))
				continue
			}
			fmt.Fprintf(&b, "[%d]", f.idx)
		}
		return strings.TrimPrefix(b.String(), ".")
	}
	advance := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].obj {
				stack[n-1].wantKey = true
			} else {
				stack[n-1].idx++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(body, err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxDepth {
					return errorf("", "JSON nested more than %d levels deep", maxDepth)
				}
				stack = append(stack, frame{obj: t == '{', wantKey: true, seen: map[string]bool{}})
			default:
				stack = stack[:len(stack)-1]
				advance()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
				f := &stack[n-1]
				if strings.IndexByte(t, 0) >= 0 {
					return errorf(path(stack[:n-1]), "field name %q contains a NUL byte", t)
				}
				if f.seen[t] {
					return errorf(path(stack[:n-1]), "duplicate field %q (send each field once)", t)
				}
				f.seen[t] = true
				f.key, f.wantKey = t, false
				continue
			}
			if strings.IndexByte(t, 0) >= 0 {
				return errorf(path(stack), "contains a NUL byte")
			}
			advance()
		default:
			advance()
		}
		if len(stack) == 0 {
			break
		}
	}
	off := int(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		for off < len(body) && isSpace(body[off]) {
			off++
		}
		return errorf("", "unexpected data after the JSON object at offset %d; send exactly one object", off)
	}
	return checkSurrogates(body)
}

// maxDepth bounds the nesting of JSON values; the deepest valid request
// has 4 levels.
const maxDepth = 32

// checkSurrogates rejects \u escapes of unpaired UTF-16 surrogates in the
// strings of body, a valid JSON value: encoding/json would silently turn
// them into U+FFFD and mesos-go's decoder fails on them.
func checkSurrogates(body []byte) error {
	in := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			in = !in
		case in && c == '\\':
			if body[i+1] != 'u' {
				i++ // a two-byte escape
				continue
			}
			r := hex4(body[i+2 : i+6])
			switch {
			case r >= 0xd800 && r < 0xdc00:
				if i+12 <= len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
					if r2 := hex4(body[i+8 : i+12]); r2 >= 0xdc00 && r2 < 0xe000 {
						i += 11
						continue
					}
				}
				fallthrough
			case r >= 0xdc00 && r < 0xe000:
				return errorf("", "invalid JSON string at offset %d: unpaired UTF-16 surrogate escape %s (send valid Unicode text)", i, body[i:i+6])
			}
			i += 5
		}
	}
	return nil
}

// hex4 decodes 4 hexadecimal digits, already checked by the JSON syntax.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// syntaxError turns the error of a json.Decoder reading body into a
// readable *Error. The decoder's offsets are those of its buffer, so the
// position comes from json.Unmarshal, which stops at the same first error.
func syntaxError(body []byte, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf("", "invalid JSON: the body ends before the object is complete (%d bytes)", len(body))
	}
	var se *json.SyntaxError
	if uerr := json.Unmarshal(body, new(json.RawMessage)); errors.As(uerr, &se) {
		return errorf("", "invalid JSON at offset %d: %s", max(se.Offset-1, 0), strings.TrimPrefix(se.Error(), "json: "))
	}
	return errorf("", "invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// readObject reads the fields of a JSON object already checked by
// checkJSON.
func readObject(field string, raw []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	bad := func() (object, error) { return object{}, errorf(field, "malformed JSON object") }
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad()
	}
	o := object{vals: map[string]json.RawMessage{}}
	for dec.More() {
		t, err := dec.Token()
		k, ok := t.(string)
		if err != nil || !ok {
			return bad()
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return bad()
		}
		if _, dup := o.vals[k]; dup {
			return object{}, errorf(field, "duplicate field %q (send each field once)", k)
		}
		o.keys = append(o.keys, k)
		o.vals[k] = v
	}
	return o, nil
}

// kind names the JSON type of a raw value for messages: "an object",
// "an array", "a string", "a boolean", "null" or "a number".
func kind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// keyPath is the path of key inside the object at path parent: parent.key,
// or parent["key"] when key is not a plain identifier.
func keyPath(parent, key string) string {
	plain := key != ""
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			plain = false
			break
		}
	}
	if !plain {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return "." + key // checkJSON trims the leading dot of a path
	}
	return parent + "." + key
}

// getString decodes a string value.
func getString(field string, raw json.RawMessage) (string, error) {
	if k := kind(raw); k != "a string" {
		return "", errorf(field, "want a string, got %s", k)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errorf(field, "malformed string")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", errorf(field, "contains a NUL byte")
	}
	return s, nil
}

// getBool decodes a boolean value.
func getBool(field string, raw json.RawMessage) (bool, error) {
	if k := kind(raw); k != "a boolean" {
		return false, errorf(field, "want a boolean (true or false), got %s", k)
	}
	return bytes.HasPrefix(bytes.TrimSpace(raw), []byte("true")), nil
}

// getStrings decodes an array of strings.
func getStrings(field string, raw json.RawMessage) ([]string, error) {
	if k := kind(raw); k != "an array" {
		return nil, errorf(field, "want an array of strings, got %s", k)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, errorf(field, "malformed array")
	}
	out := make([]string, 0, len(elems))
	for i, e := range elems {
		s, err := getString(fmt.Sprintf("%s[%d]", field, i), e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// getObject decodes an object with raw values.
func getObject(field string, raw json.RawMessage, what string) (object, error) {
	if k := kind(raw); k != "an object" {
		return object{}, errorf(field, "want %s, got %s", what, k)
	}
	return readObject(field, raw)
}

// getStringMap decodes an object whose values are strings; check, when not
// nil, validates each pair, in key order. It returns nil for an empty
// object.
func getStringMap(field string, raw json.RawMessage, check func(key, value string) error) (map[string]string, error) {
	o, err := getObject(field, raw, "an object of strings")
	if err != nil {
		return nil, err
	}
	if len(o.keys) == 0 {
		return nil, nil
	}
	keys := append([]string(nil), o.keys...)
	sort.Strings(keys)
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := getString(keyPath(field, k), o.vals[k])
		if err != nil {
			return nil, err
		}
		if check != nil {
			if err := check(k, v); err != nil {
				return nil, err
			}
		}
		m[k] = v
	}
	return m, nil
}
