package auth

import (
	"encoding/base64"
	"errors"
	"strings"
)

// Errors of ParseBasic. None of them quotes the header.
var (
	ErrNoCredentials = errors.New("no credentials")
	ErrNotBasic      = errors.New("the Authorization header is not of the Basic scheme")
	ErrMalformed     = errors.New("malformed Basic credentials")
)

// maxBasicLen bounds the base64 part of a Basic header we decode.
const maxBasicLen = 8 << 10

// ParseBasic parses the value of an Authorization header of the Basic
// scheme (RFC 7617): the scheme name in any case, one or more spaces,
// then base64(user-id ":" password). The user id ends at the FIRST colon,
// so a password may contain colons. Anything else is an error.
func ParseBasic(header string) (user, secret string, err error) {
	if header == "" {
		return "", "", ErrNoCredentials
	}
	scheme, rest, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", ErrNotBasic
	}
	token := strings.Trim(rest, " ")
	if token == "" || len(token) > maxBasicLen || strings.ContainsAny(token, " \t") {
		return "", "", ErrMalformed
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(token)
	if err != nil {
		return "", "", ErrMalformed
	}
	user, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", ErrMalformed
	}
	return user, secret, nil
}
