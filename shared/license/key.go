package license

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// KeyAlphabet has no 0/O, 1/I/L: 31 symbols that cannot be misread.
const KeyAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

const (
	keyGroups    = 5
	keyGroupSize = 5
	// KeyLength is the length of a formatted key, dashes included.
	KeyLength = keyGroups*keyGroupSize + keyGroups - 1
)

// NewKey returns a fresh license key: 25 symbols from KeyAlphabet (log2(31^25) ≈ 123.9 bits
// of randomness) in five dash-separated groups, e.g. "K7QMN-3XH9T-...". Symbols are drawn by
// rejection sampling so every symbol is equally likely.
func NewKey() string {
	var b strings.Builder
	b.Grow(KeyLength)
	buf := make([]byte, 64)
	n := 0
	for n < keyGroups*keyGroupSize {
		if _, err := rand.Read(buf); err != nil {
			panic("license: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			// 248 = 8*31: reject the tail so the modulo is unbiased.
			if c >= 248 || n == keyGroups*keyGroupSize {
				continue
			}
			if n > 0 && n%keyGroupSize == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(KeyAlphabet[int(c)%len(KeyAlphabet)])
			n++
		}
	}
	return b.String()
}

// NormalizeKey canonicalizes a key as a customer may paste it: surrounding space trimmed,
// upper-cased. It does not validate.
func NormalizeKey(s string) string {
	return strings.ToUpper(strings.TrimSpace(s))
}

// ValidKey reports whether s (normalized) has the shape of a key this service issues.
func ValidKey(s string) bool {
	if len(s) != KeyLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (i+1)%(keyGroupSize+1) == 0 {
			if s[i] != '-' {
				return false
			}
			continue
		}
		if strings.IndexByte(KeyAlphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

// MaskKey returns the key with all but its last 4 characters hidden.
func MaskKey(s string) string {
	if len(s) <= 4 {
		return strings.Repeat("*", len(s))
	}
	return strings.Repeat("*", len(s)-4) + s[len(s)-4:]
}

// KeyDigest is a stable, non-reversible identifier of a key, safe for logs and cache
// keys (the key itself must never be logged).
func KeyDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}
