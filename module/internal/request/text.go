package request

import (
	"encoding/base64"
	"unicode/utf8"
)

// Text renders output bytes for a JSON result: it returns b as a string and
// "utf-8" when b is valid UTF-8, else b in standard base64 and "base64".
func Text(b []byte) (text string, encoding string) {
	if utf8.Valid(b) {
		return string(b), "utf-8"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}
