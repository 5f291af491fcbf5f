package license

import (
	"errors"
	"unicode"
	"unicode/utf8"
)

// Errors of CheckText.
var (
	ErrInvalidUTF8 = errors.New("must be valid UTF-8")
	ErrControlChar = errors.New("must not contain control characters")
)

// CheckText enforces API.md's rule for every string the API reads (path segment, query
// value, header value, JSON string): valid UTF-8 with no NUL or other control character.
func CheckText(s string) error {
	if !utf8.ValidString(s) {
		return ErrInvalidUTF8
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return ErrControlChar
		}
	}
	return nil
}

// CheckTextBytes is CheckText for bytes (a request's raw query values), without a copy.
func CheckTextBytes(b []byte) error {
	if !utf8.Valid(b) {
		return ErrInvalidUTF8
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if unicode.IsControl(r) {
			return ErrControlChar
		}
		b = b[n:]
	}
	return nil
}

// Chars is the length of s in characters (Unicode code points), as the contract counts.
func Chars(s string) int { return utf8.RuneCountInString(s) }
