package operator

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gogo/protobuf/proto"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
)

// readCall runs Mesos's checks on the request's headers, reads and decodes
// the call, validates it, and returns it with the response media type.
// The order and answers are Http::api's and the first checks of _api.
func readCall(w http.ResponseWriter, r *http.Request) (*agent.Call, string, *reject) {
	if r.Method != http.MethodPost {
		return nil, "", &reject{status: http.StatusMethodNotAllowed,
			body:   "405 Method Not Allowed. Expecting one of { 'POST' }, but received '" + r.Method + "'.",
			header: http.Header{"Allow": {"POST"}}}
	}

	ct, ok := header(r, "Content-Type")
	if !ok {
		return nil, "", rejectf(http.StatusBadRequest, "Expecting 'Content-Type' to be present")
	}
	switch ct {
	case mediaJSON, mediaProtobuf, mediaRecordIO:
	default:
		return nil, "", rejectf(http.StatusUnsupportedMediaType,
			"Expecting 'Content-Type' of application/json or application/x-protobuf or application/recordio")
	}
	streaming := ct == mediaRecordIO

	messageType := ""
	mct, hasMCT := header(r, headerMessageContentType)
	switch {
	case streaming && !hasMCT:
		return nil, "", rejectf(http.StatusBadRequest,
			"Expecting 'Message-Content-Type' to be set for streaming requests")
	case streaming && mct != mediaJSON && mct != mediaProtobuf:
		return nil, "", rejectf(http.StatusUnsupportedMediaType,
			"Expecting 'Message-Content-Type' of application/json or application/x-protobuf")
	case streaming:
		messageType = mct
	case hasMCT:
		return nil, "", rejectf(http.StatusUnsupportedMediaType,
			"Expecting 'Message-Content-Type' to be not set for non-streaming requests")
	}

	acceptHeader, hasAccept := headerList(r, "Accept")
	var accept string
	switch {
	case acceptsMediaType(acceptHeader, hasAccept, mediaJSON):
		accept = mediaJSON
	case acceptsMediaType(acceptHeader, hasAccept, mediaProtobuf):
		accept = mediaProtobuf
	case acceptsMediaType(acceptHeader, hasAccept, mediaRecordIO):
		accept = mediaRecordIO
	default:
		return nil, "", rejectf(http.StatusNotAcceptable,
			"Expecting 'Accept' to allow application/json or application/x-protobuf or application/recordio")
	}
	messageAccept, hasMessageAccept := headerList(r, headerMessageAccept)
	if accept == mediaRecordIO {
		if !acceptsMediaType(messageAccept, hasMessageAccept, mediaJSON) &&
			!acceptsMediaType(messageAccept, hasMessageAccept, mediaProtobuf) {
			return nil, "", rejectf(http.StatusNotAcceptable,
				"Expecting 'Message-Accept' to allow application/json or application/x-protobuf")
		}
	} else if hasMessageAccept {
		return nil, "", rejectf(http.StatusNotAcceptable,
			"Expecting 'Message-Accept' to be not set for non-streaming responses")
	}

	body := http.MaxBytesReader(w, r.Body, MaxBody)
	var call *agent.Call
	var rej *reject
	if streaming {
		rec, err := firstRecord(body)
		switch {
		case errors.Is(err, io.EOF):
			return nil, "", rejectf(http.StatusBadRequest, "Received EOF while reading request body")
		case errors.As(err, new(recordError)):
			return nil, "", rejectf(http.StatusBadRequest, err.Error())
		case err != nil:
			return nil, "", bodyError(err)
		}
		call, rej = decodeCall(messageType, rec)
	} else {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, "", bodyError(err)
		}
		call, rej = decodeCall(ct, b)
	}
	if rej != nil {
		return nil, "", rej
	}

	// _api: streaming only where Mesos streams.
	switch {
	case streaming && call.Type != agent.Call_ATTACH_CONTAINER_INPUT:
		return nil, "", rejectf(http.StatusUnsupportedMediaType,
			"Streaming 'Content-Type' application/recordio is not supported for "+call.Type.String()+" call")
	case !streaming && call.Type == agent.Call_ATTACH_CONTAINER_INPUT:
		return nil, "", rejectf(http.StatusUnsupportedMediaType,
			"Expecting 'Content-Type' to be application/recordio for ATTACH_CONTAINER_INPUT call")
	case accept == mediaRecordIO && call.Type != agent.Call_ATTACH_CONTAINER_OUTPUT &&
		call.Type != agent.Call_LAUNCH_NESTED_CONTAINER_SESSION:
		return nil, "", rejectf(http.StatusNotAcceptable,
			"Streaming response is not supported for "+call.Type.String()+" call")
	}
	return call, accept, nil
}

// header returns the request's one value of a header, and whether it is
// there at all (present but empty counts as present).
func header(r *http.Request, name string) (string, bool) {
	v, ok := r.Header[http.CanonicalHeaderKey(name)]
	if !ok || len(v) == 0 {
		return "", ok
	}
	return v[0], true
}

// headerList returns every value of a list-valued header joined with ",".
func headerList(r *http.Request, name string) (string, bool) {
	v, ok := r.Header[http.CanonicalHeaderKey(name)]
	return strings.Join(v, ","), ok
}

func bodyError(err error) *reject {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok || errors.Is(err, errTooLarge) {
		return rejectf(http.StatusRequestEntityTooLarge,
			"Request body is larger than "+strconv.Itoa(MaxBody)+" bytes")
	}
	return rejectf(http.StatusBadRequest, "Failed to read request body: "+err.Error())
}

// acceptsMediaType is libprocess's Request::_acceptsMediaType: no header
// accepts everything; otherwise the first of type/subtype, type/* and */*
// found in the list decides, and it accepts unless its q is a number <= 0.
func acceptsMediaType(field string, present bool, mediaType string) bool {
	typ, _, ok := strings.Cut(mediaType, "/")
	if !ok {
		return false
	}
	if !present {
		return true
	}
	field = strings.NewReplacer(" ", "", "\t", "", "\n", "").Replace(field)
	for _, candidate := range []string{mediaType, typ + "/*", "*/*"} {
		for _, item := range strings.Split(field, ",") {
			params := strings.FieldsFunc(item, func(r rune) bool { return r == ';' })
			if len(params) == 0 || !strings.EqualFold(params[0], candidate) {
				continue
			}
			var qs []string
			for _, p := range params {
				if k, v, ok := strings.Cut(p, "="); ok && k == "q" {
					qs = append(qs, v)
				}
			}
			if len(qs) != 1 {
				return true // no q, or a malformed one
			}
			q, err := strconv.ParseFloat(qs[0], 64)
			return err == nil && q > 0
		}
	}
	return false
}

// recordError is a malformed RecordIO stream.
type recordError string

func (e recordError) Error() string { return "Failed to decode RecordIO record: " + string(e) }

// firstRecord reads one RecordIO record: "<size>\n<size bytes>".
func firstRecord(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	var size []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(size) > 0 {
				return nil, recordError("unexpected EOF in record size")
			}
			return nil, err
		}
		if c == '\n' {
			break
		}
		if c < '0' || c > '9' || len(size) >= 20 {
			return nil, recordError("invalid record size")
		}
		size = append(size, c)
	}
	n, err := strconv.ParseUint(string(size), 10, 64)
	if err != nil || len(size) == 0 {
		return nil, recordError("invalid record size")
	}
	if n > MaxBody {
		return nil, errTooLarge
	}
	rec := make([]byte, n)
	if _, err := io.ReadFull(br, rec); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, err
		}
		return nil, recordError("unexpected EOF in record data")
	}
	return rec, nil
}

// decodeCall is Mesos's deserialize<v1::agent::Call> followed by
// validation::agent::call::validate. It never panics: a panic in the
// decoders is turned into a 400 (gogoUnmarshal handles the one known
// panic; this is the backstop for ffjson, which no fuzzing has made
// panic behind encoding/json's validation).
func decodeCall(mediaType string, b []byte) (call *agent.Call, rej *reject) {
	defer func() {
		if p := recover(); p != nil {
			call, rej = nil, rejectf(http.StatusBadRequest, fmt.Sprintf("Failed to decode agent::Call: %v", p))
		}
	}()
	var hasType bool
	if mediaType == mediaProtobuf {
		call, hasType, rej = decodeProtobuf(b)
	} else {
		call, hasType, rej = decodeJSON(b)
	}
	if rej != nil {
		return nil, rej
	}
	if msg := validate(call, hasType); msg != "" {
		return nil, rejectf(http.StatusBadRequest, "Failed to validate agent::Call: "+msg)
	}
	return call, nil
}

func decodeProtobuf(b []byte) (*agent.Call, bool, *reject) {
	call := new(agent.Call)
	if err := gogoUnmarshal(call, b); err != nil {
		return nil, false, rejectf(http.StatusBadRequest, "Failed to parse body into a protobuf object")
	}
	// proto2 in C++ keeps an unknown enum number out of the field, so
	// "type" is present only if a known number was sent; the last one wins.
	typ, ok := protoType(b)
	if ok {
		call.Type = agent.Call_Type(typ)
	}
	return call, ok, nil
}

// gogoUnmarshal is call.Unmarshal, with a panic turned into an error:
// mesos-go's generated code predates gogo 1.3.2's fix for CVE-2021-3121
// and slices out of range on a length that overflows the index (see
// TestGogoUnmarshalPanics).
func gogoUnmarshal(call *agent.Call, b []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return call.Unmarshal(b)
}

// protoType returns the last known Call.Type value among the top-level
// occurrences of field 1 in a protobuf Call that gogo has already parsed.
func protoType(b []byte) (int32, bool) {
	var typ int32
	found := false
	for len(b) > 0 {
		key, n := proto.DecodeVarint(b)
		if n == 0 {
			break
		}
		b = b[n:]
		field, wire := key>>3, key&7
		switch wire {
		case 0:
			v, n := proto.DecodeVarint(b)
			if n == 0 {
				return typ, found
			}
			b = b[n:]
			if field == 1 {
				if _, known := agent.Call_Type_name[int32(v)]; known {
					typ, found = int32(v), true
				}
			}
		case 1:
			if len(b) < 8 {
				return typ, found
			}
			b = b[8:]
		case 2:
			l, n := proto.DecodeVarint(b)
			if n == 0 || l > uint64(len(b)-n) {
				return typ, found
			}
			b = b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return typ, found
			}
			b = b[4:]
		default: // groups: not in agent.Call; gogo skipped them
			return typ, found
		}
	}
	return typ, found
}

// decodeJSON parses b as Mesos does (JSON::parse, then protobuf::parse),
// producing Mesos's errors, and then decodes the canonical form with
// mesos-go's JSON codec.
func decodeJSON(b []byte) (*agent.Call, bool, *reject) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, err2 := dec.Token(); !errors.Is(err2, io.EOF) {
			err = errors.New("trailing data after JSON value")
		}
	}
	if err != nil {
		return nil, false, rejectf(http.StatusBadRequest, "Failed to parse body into JSON: "+err.Error())
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, false, rejectf(http.StatusBadRequest, "Expecting a JSON object")
	}
	clean, msg := cleanMessage(reflect.TypeFor[agent.Call](), obj)
	if msg != "" {
		return nil, false, rejectf(http.StatusBadRequest, msg)
	}
	if missing := missingRequired(reflect.TypeFor[agent.Call](), clean, ""); len(missing) > 0 {
		return nil, false, rejectf(http.StatusBadRequest, "Missing required fields: "+strings.Join(missing, ", "))
	}
	_, hasType := clean["type"]
	canonical, err := json.Marshal(clean)
	if err != nil {
		return nil, false, rejectf(http.StatusBadRequest, "Failed to parse body into JSON: "+err.Error())
	}
	call := new(agent.Call)
	if err := json.Unmarshal(canonical, call); err != nil {
		return nil, false, rejectf(http.StatusBadRequest, "Failed to convert JSON into agent::Call: "+err.Error())
	}
	return call, hasType, nil
}

// required names each call type's sub-message that
// validation::agent::call::validate requires.
var required = map[agent.Call_Type]string{
	agent.Call_GET_METRICS:                     "get_metrics",
	agent.Call_SET_LOGGING_LEVEL:               "set_logging_level",
	agent.Call_LIST_FILES:                      "list_files",
	agent.Call_READ_FILE:                       "read_file",
	agent.Call_LAUNCH_NESTED_CONTAINER:         "launch_nested_container",
	agent.Call_WAIT_NESTED_CONTAINER:           "wait_nested_container",
	agent.Call_KILL_NESTED_CONTAINER:           "kill_nested_container",
	agent.Call_REMOVE_NESTED_CONTAINER:         "remove_nested_container",
	agent.Call_LAUNCH_NESTED_CONTAINER_SESSION: "launch_nested_container_session",
	agent.Call_ATTACH_CONTAINER_INPUT:          "attach_container_input",
	agent.Call_ATTACH_CONTAINER_OUTPUT:         "attach_container_output",
	agent.Call_LAUNCH_CONTAINER:                "launch_container",
	agent.Call_WAIT_CONTAINER:                  "wait_container",
	agent.Call_KILL_CONTAINER:                  "kill_container",
	agent.Call_REMOVE_CONTAINER:                "remove_container",
	agent.Call_ADD_RESOURCE_PROVIDER_CONFIG:    "add_resource_provider_config",
	agent.Call_UPDATE_RESOURCE_PROVIDER_CONFIG: "update_resource_provider_config",
	agent.Call_REMOVE_RESOURCE_PROVIDER_CONFIG: "remove_resource_provider_config",
	agent.Call_MARK_RESOURCE_PROVIDER_GONE:     "mark_resource_provider_gone",
}

// validate returns validation::agent::call::validate's message for call,
// or "". Only the checks up to the presence of the call's sub-message are
// made: deeper ones concern calls this agent answers 501 anyway.
func validate(call *agent.Call, hasType bool) string {
	if !hasType {
		return "Expecting 'type' to be present"
	}
	name, ok := required[call.Type]
	if !ok {
		return ""
	}
	if f, ok := fieldsOf(reflect.TypeFor[agent.Call]())[name]; ok {
		if reflect.ValueOf(call).Elem().Field(f.index).IsNil() {
			return "Expecting '" + name + "' to be present"
		}
	}
	return ""
}

// A field of a generated message, as its protobuf tag describes it.
type field struct {
	name     string
	index    int
	required bool
	repeated bool
	kind     fieldKind
	elem     reflect.Type // message type, for kindMessage
	enum     string       // registered enum name, for kindEnum
}

type fieldKind int

const (
	kindOther fieldKind = iota // maps: passed through unchecked
	kindMessage
	kindString
	kindBytes
	kindBool
	kindEnum
	kindInt
	kindFloat
)

var fieldCache sync.Map // reflect.Type -> map[string]field

// fieldsOf returns the protobuf fields of a generated message struct by
// their proto names.
func fieldsOf(t reflect.Type) map[string]field {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]field)
	}
	m := map[string]field{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("protobuf")
		if tag == "" {
			continue
		}
		f := field{index: i}
		for j, part := range strings.Split(tag, ",") {
			switch {
			case j == 2:
				f.required, f.repeated = part == "req", part == "rep"
			case strings.HasPrefix(part, "name="):
				f.name = strings.TrimPrefix(part, "name=")
			case strings.HasPrefix(part, "enum="):
				f.enum = strings.TrimPrefix(part, "enum=")
			}
		}
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8 {
			ft = ft.Elem()
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
		}
		switch {
		case f.enum != "":
			f.kind = kindEnum
		case ft.Kind() == reflect.Struct:
			f.kind, f.elem = kindMessage, ft
		case ft.Kind() == reflect.String:
			f.kind = kindString
		case ft.Kind() == reflect.Slice:
			f.kind = kindBytes
		case ft.Kind() == reflect.Bool:
			f.kind = kindBool
		case ft.Kind() == reflect.Float32 || ft.Kind() == reflect.Float64:
			f.kind = kindFloat
		case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Uint64:
			f.kind = kindInt
		}
		m[f.name] = f
	}
	fieldCache.Store(t, m)
	return m
}

// cleanMessage is stout's protobuf::parse over obj for message type t: it
// returns the object with the fields Mesos would keep (exact names, null
// and unknown enum names dropped, lone values for repeated fields wrapped)
// or Mesos's error message. Keys are visited in order, as std::map does.
func cleanMessage(t reflect.Type, obj map[string]any) (map[string]any, string) {
	fields := fieldsOf(t)
	out := make(map[string]any, len(obj))
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		f, ok := fields[k]
		if !ok {
			continue
		}
		var vals []any
		if arr, isArr := obj[k].([]any); isArr {
			if !f.repeated {
				return nil, "Not expecting a JSON array for field '" + f.name + "'"
			}
			vals = flatten(arr)
		} else {
			vals = []any{obj[k]}
		}
		var kept []any
		for _, v := range vals {
			cv, keep, msg := cleanValue(f, v)
			if msg != "" {
				return nil, msg
			}
			if keep {
				kept = append(kept, cv)
			}
		}
		switch {
		case f.repeated && (len(kept) > 0 || isArray(obj[k])):
			out[k] = append([]any{}, kept...)
		case !f.repeated && len(kept) == 1:
			out[k] = kept[0]
		}
	}
	return out, ""
}

func isArray(v any) bool { _, ok := v.([]any); return ok }

// flatten mirrors stout, which parses an array nested in a repeated
// field's array as more elements of that field.
func flatten(arr []any) []any {
	var out []any
	for _, v := range arr {
		if a, ok := v.([]any); ok {
			out = append(out, flatten(a)...)
		} else {
			out = append(out, v)
		}
	}
	return out
}

func cleanValue(f field, v any) (any, bool, string) {
	notExpecting := func(what string) (any, bool, string) {
		return nil, false, "Not expecting a JSON " + what + " for field '" + f.name + "'"
	}
	switch v := v.(type) {
	case nil:
		return nil, false, ""
	case map[string]any:
		if f.kind == kindOther {
			return v, true, ""
		}
		if f.kind != kindMessage {
			return notExpecting("object")
		}
		c, msg := cleanMessage(f.elem, v)
		return c, msg == "", msg
	case string:
		switch f.kind {
		case kindString, kindOther:
			return v, true, ""
		case kindBytes:
			if _, err := base64.StdEncoding.DecodeString(v); err != nil {
				return nil, false, "Failed to base64 decode bytes field '" + f.name + "': " + err.Error()
			}
			return v, true, ""
		case kindEnum:
			if _, ok := proto.EnumValueMap(f.enum)[v]; ok {
				return v, true, ""
			}
			if f.required {
				return nil, false, "Failed to find enum for '" + v + "'"
			}
			return nil, false, "" // proto2: an unknown enum value is dropped
		}
		return notExpecting("string")
	case json.Number:
		switch f.kind {
		case kindFloat, kindOther:
			return v, true, ""
		case kindInt:
			if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				return v, true, ""
			}
			if _, err := strconv.ParseUint(string(v), 10, 64); err == nil {
				return v, true, ""
			}
			// stout's number.as<int>() truncates a fractional number.
			x, err := v.Float64()
			if err != nil {
				return nil, false, "Failed to parse body into JSON: " + err.Error()
			}
			return json.Number(strconv.FormatFloat(float64(int64(x)), 'f', 0, 64)), true, ""
		}
		return notExpecting("number")
	case bool:
		if f.kind == kindBool || f.kind == kindOther {
			return v, true, ""
		}
		return notExpecting("boolean")
	}
	return nil, false, ""
}

// missingRequired lists the required fields missing from obj and from the
// messages in it, as InitializationErrorString names them.
func missingRequired(t reflect.Type, obj map[string]any, prefix string) []string {
	fields := fieldsOf(t)
	var missing []string
	for i := range t.NumField() {
		for _, f := range fields {
			if f.index != i {
				continue
			}
			v, ok := obj[f.name]
			if f.required && !ok {
				missing = append(missing, prefix+f.name)
			}
			if !ok || f.kind != kindMessage {
				continue
			}
			if arr, isArr := v.([]any); isArr {
				for j, e := range arr {
					if m, isObj := e.(map[string]any); isObj {
						missing = append(missing, missingRequired(f.elem, m, fmt.Sprintf("%s%s[%d].", prefix, f.name, j))...)
					}
				}
			} else if m, isObj := v.(map[string]any); isObj {
				missing = append(missing, missingRequired(f.elem, m, prefix+f.name+".")...)
			}
		}
	}
	return missing
}
