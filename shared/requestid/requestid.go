// Package requestid makes and checks the X-Request-Id of every request, for both binaries:
// a client's id is echoed when it is printable ASCII of at most MaxLength characters;
// otherwise a new one is made: a random per-process prefix and a counter, unique across
// nodes and restarts without a crypto/rand read per request.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// MaxLength is the longest client-sent id that is echoed.
const MaxLength = 128

var (
	prefix  = newPrefix()
	counter atomic.Uint64
)

func newPrefix() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("requestid: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b[:]) + "-"
}

// New returns a fresh request id.
func New() string { return prefix + strconv.FormatUint(counter.Add(1), 36) }

// Valid reports whether a client-sent id may be echoed: 1 to MaxLength printable ASCII
// characters (no space, no control character).
func Valid(s string) bool {
	if s == "" || len(s) > MaxLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Or returns s when it is valid, else a new id.
func Or(s string) string {
	if Valid(s) {
		return s
	}
	return New()
}
