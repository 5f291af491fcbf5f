// Package apikey is the format of brand API keys, in one place for the writer (which
// issues and checks them) and the load-test seeder (which writes keys the writer accepts):
// "lsk_<prefix>_<secret>", where prefix (5 random bytes) is public and looked up, and only
// a hash of secret (32 random bytes) is stored. Both are base32 over an alphabet without
// ambiguous symbols.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"strings"
)

// Token prefix and the sizes of the random parts.
const (
	TokenPrefix = "lsk_"
	PrefixBytes = 5
	SecretBytes = 32
)

var enc = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// Key is an issued key: Token is shown once, Hash is what is stored.
type Key struct {
	Prefix string
	Token  string
	Hash   []byte
}

// New draws a fresh key from crypto/rand.
func New() Key {
	var raw [PrefixBytes + SecretBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("apikey: crypto/rand: " + err.Error())
	}
	return FromBytes(raw)
}

// FromBytes builds a key from its random bytes (the seeder's deterministic generator).
func FromBytes(raw [PrefixBytes + SecretBytes]byte) Key {
	prefix, secret := enc.EncodeToString(raw[:PrefixBytes]), enc.EncodeToString(raw[PrefixBytes:])
	return Key{Prefix: prefix, Token: TokenPrefix + prefix + "_" + secret, Hash: Hash(secret)}
}

// Hash is the stored form of a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte("lsk-v1:" + secret))
	return h[:]
}

// Parse splits a token into its prefix and secret; ok is false when it does not have
// the shape of an API key.
func Parse(token string) (prefix, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok {
		return "", "", false
	}
	prefix, secret, ok = strings.Cut(rest, "_")
	if !ok || prefix == "" || secret == "" {
		return "", "", false
	}
	return prefix, secret, true
}

// Matches compares a secret with a stored hash in constant time.
func Matches(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(secret), hash) == 1
}
