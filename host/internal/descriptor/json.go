package descriptor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// node is a JSON value that keeps what encoding/json's maps lose: key
// order and duplicate keys, so that every problem can be reported with its
// path, in the order the user wrote it.
type node struct {
	kind   kind
	str    string  // kindString
	fields []field // kindObject, in order
	elems  []node  // kindArray
}

type field struct {
	key string
	val node
}

type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

// maxDepth bounds nesting: a descriptor is three levels deep, and a
// hostile one must not exhaust the stack.
const maxDepth = 32

// parseJSON reads exactly one JSON value from data.
func parseJSON(data []byte) (node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := readValue(dec, 0)
	if err != nil {
		return node{}, jsonError(dec, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return node{}, fmt.Errorf("invalid JSON at offset %d: data after the top-level value", dec.InputOffset())
	}
	return n, nil
}

func jsonError(dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at offset %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of input")
	}
	return fmt.Errorf("invalid JSON at offset %d: %v", dec.InputOffset(), err)
}

func readValue(dec *json.Decoder, depth int) (node, error) {
	if depth > maxDepth {
		return node{}, fmt.Errorf("nested more than %d levels deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return node{}, err
	}
	switch t := tok.(type) {
	case nil:
		return node{kind: kindNull}, nil
	case bool:
		return node{kind: kindBool}, nil
	case json.Number:
		return node{kind: kindNumber, str: t.String()}, nil
	case string:
		return node{kind: kindString, str: t}, nil
	case json.Delim:
		switch t {
		case '[':
			n := node{kind: kindArray}
			for dec.More() {
				e, err := readValue(dec, depth+1)
				if err != nil {
					return node{}, err
				}
				n.elems = append(n.elems, e)
			}
			_, err := dec.Token() // ]
			return n, err
		case '{':
			n := node{kind: kindObject}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return node{}, err
				}
				v, err := readValue(dec, depth+1)
				if err != nil {
					return node{}, err
				}
				n.fields = append(n.fields, field{key: k.(string), val: v})
			}
			_, err := dec.Token() // }
			return n, err
		}
	}
	return node{}, fmt.Errorf("unexpected %v", tok)
}
