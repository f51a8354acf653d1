// Package auth is the host's HTTP authentication: Mesos's --http_credentials
// file, HTTP basic authentication per realm (mesos-agent-readonly and
// mesos-agent-readwrite), and the TLS configuration for --ssl_cert_file,
// --ssl_key_file and --ssl_ca_file, where a verified client certificate
// names the principal.
//
// No error, warning or log line this package produces contains a secret.
package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxCredentialsSize bounds a credentials file: far more than any real one.
const maxCredentialsSize = 4 << 20

// Credentials are the principals and secrets of --http_credentials. The
// zero value holds none.
type Credentials struct {
	list []credential
}

type credential struct {
	principal string
	// Digests of the principal and the secret: comparing digests of equal
	// length in constant time leaks neither content nor length.
	principalSum, secretSum [sha256.Size]byte
}

// Len is the number of principals.
func (c Credentials) Len() int { return len(c.list) }

// Principals lists the principals, in the order the file gives them.
func (c Credentials) Principals() []string {
	out := make([]string, len(c.list))
	for i, cr := range c.list {
		out[i] = cr.principal
	}
	return out
}

// Verify reports the principal whose name and secret are these, or false.
// Its time depends only on the number of credentials, not on which part
// is wrong nor on whether the principal exists.
func (c Credentials) Verify(principal, secret string) (string, bool) {
	ps, ss := sha256.Sum256([]byte(principal)), sha256.Sum256([]byte(secret))
	match, index := 0, 0
	for i := range c.list {
		ok := subtle.ConstantTimeCompare(ps[:], c.list[i].principalSum[:]) & subtle.ConstantTimeCompare(ss[:], c.list[i].secretSum[:])
		index = subtle.ConstantTimeSelect(ok, i, index)
		match |= ok
	}
	if match != 1 {
		return "", false
	}
	return c.list[index].principal, true
}

// LoadCredentials reads --http_credentials: Mesos's
// {"credentials":[{"principal":"...","secret":"..."}]} given as
// file://PATH, an absolute path, or the JSON itself. Unknown keys,
// duplicate keys or principals, an empty principal or secret and trailing
// data are errors that name the JSON path. The warnings are for the
// operator (a file others may read).
func LoadCredentials(value string) (Credentials, []string, error) {
	var (
		data     []byte
		warnings []string
		source   = "--http_credentials"
	)
	trimmed := strings.TrimSpace(value)
	switch {
	case trimmed == "":
		return Credentials{}, nil, errors.New("--http_credentials is empty")
	case strings.HasPrefix(trimmed, "{"):
		data = []byte(value)
	case strings.HasPrefix(value, "file://") || strings.HasPrefix(value, "/"):
		path := strings.TrimPrefix(value, "file://")
		source = fmt.Sprintf("credentials file '%s'", path)
		b, mode, err := readFile(path)
		if err != nil {
			return Credentials{}, nil, fmt.Errorf("--http_credentials: %w", err)
		}
		if mode&0o077 != 0 {
			warnings = append(warnings, fmt.Sprintf("Permissions on credentials file '%s' are too open (%04o); it is recommended that your credentials file is NOT accessible by others (chmod 600)", path, mode))
		}
		data = b
	default:
		return Credentials{}, nil, errors.New("--http_credentials: want file://PATH, an absolute path, or the JSON itself")
	}
	c, err := ParseCredentials(data)
	if err != nil {
		return Credentials{}, warnings, fmt.Errorf("%s: %w", source, err)
	}
	return c, warnings, nil
}

func readFile(path string) ([]byte, os.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialsSize+1))
	if err != nil {
		return nil, 0, err
	}
	if len(b) > maxCredentialsSize {
		return nil, 0, fmt.Errorf("%s is larger than %d bytes", path, maxCredentialsSize)
	}
	return b, fi.Mode().Perm(), nil
}

// ParseCredentials decodes the JSON of a credentials file strictly.
func ParseCredentials(data []byte) (Credentials, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Credentials{}, errors.New("Credentials file must contain at least one credential (see --http_credentials flag)")
	}
	top, err := object(data, "$")
	if err != nil {
		return Credentials{}, err
	}
	var entries []json.RawMessage
	for _, f := range top {
		if f.key != "credentials" {
			return Credentials{}, fmt.Errorf("$: unknown key %q (want only \"credentials\")", f.key)
		}
		if entries, err = array(f.value, "$.credentials"); err != nil {
			return Credentials{}, err
		}
	}
	if len(entries) == 0 {
		return Credentials{}, errors.New("$.credentials: Credentials file must contain at least one credential (see --http_credentials flag)")
	}
	var c Credentials
	seen := map[string]int{}
	for i, raw := range entries {
		path := fmt.Sprintf("$.credentials[%d]", i)
		fields, err := object(raw, path)
		if err != nil {
			return Credentials{}, err
		}
		var principal, secret string
		var hasPrincipal, hasSecret bool
		for _, f := range fields {
			switch f.key {
			case "principal":
				principal, hasPrincipal = "", true
				if err := str(f.value, &principal); err != nil {
					return Credentials{}, fmt.Errorf("%s.principal: want a string", path)
				}
			case "secret":
				hasSecret = true
				if err := str(f.value, &secret); err != nil {
					// The value is never quoted: it may be a secret.
					return Credentials{}, fmt.Errorf("%s.secret: want a string", path)
				}
			default:
				return Credentials{}, fmt.Errorf("%s: unknown key %q (want \"principal\" and \"secret\")", path, f.key)
			}
		}
		switch {
		case !hasPrincipal || principal == "":
			return Credentials{}, fmt.Errorf("%s.principal: missing or empty", path)
		case !hasSecret || secret == "":
			return Credentials{}, fmt.Errorf("%s.secret: missing or empty (principal %q): a principal needs a secret", path, principal)
		}
		if err := checkBasicPrincipal(principal); err != nil {
			return Credentials{}, fmt.Errorf("%s.principal: %w", path, err)
		}
		if j, dup := seen[principal]; dup {
			return Credentials{}, fmt.Errorf("%s.principal: duplicate principal %q (also $.credentials[%d])", path, principal, j)
		}
		seen[principal] = i
		c.list = append(c.list, credential{
			principal:    principal,
			principalSum: sha256.Sum256([]byte(principal)),
			secretSum:    sha256.Sum256([]byte(secret)),
		})
	}
	return c, nil
}

// CheckPrincipal reports why a name cannot be a principal: it reaches
// logs and headers, so it must be valid UTF-8 without control characters.
func CheckPrincipal(p string) error {
	switch {
	case p == "":
		return errors.New("empty")
	case !utf8.ValidString(p):
		return errors.New("not valid UTF-8")
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("%q contains a control character", p)
	}
	return nil
}

// checkBasicPrincipal is CheckPrincipal for a principal of the
// credentials file, which HTTP basic authentication must be able to
// carry: its user id cannot contain ':' (RFC 7617).
func checkBasicPrincipal(p string) error {
	if err := CheckPrincipal(p); err != nil {
		return err
	}
	if strings.ContainsRune(p, ':') {
		return fmt.Errorf("%q contains ':', which HTTP basic authentication cannot carry in a user name", p)
	}
	return nil
}

type field struct {
	key   string
	value json.RawMessage
}

// object decodes one JSON object into its fields, in order; duplicate
// keys, other JSON values and trailing data are errors naming path.
// Syntax errors give the offset only: the input may hold secrets.
func object(data []byte, path string) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(path, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%s: want a JSON object", path)
	}
	var out []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(path, err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("%s: key %q given twice", path, key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, syntaxError(path+"."+key, err)
		}
		out = append(out, field{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, syntaxError(path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: unexpected data after the object", path)
	}
	return out, nil
}

// array decodes a JSON array into its raw elements.
func array(data json.RawMessage, path string) ([]json.RawMessage, error) {
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '[' {
		return nil, fmt.Errorf("%s: want a JSON array", path)
	}
	var out []json.RawMessage
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, syntaxError(path, err)
	}
	return out, nil
}

func str(data json.RawMessage, s *string) error {
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '"' {
		return errors.New("not a string")
	}
	return json.Unmarshal(data, s)
}

// syntaxError describes a JSON decoding error without quoting the input.
func syntaxError(path string, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%s: invalid JSON near byte offset %d", path, se.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: unexpected end of JSON", path)
	}
	return fmt.Errorf("%s: invalid JSON", path)
}
