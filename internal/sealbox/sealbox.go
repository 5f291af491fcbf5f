// Package sealbox seals small secrets at rest (webhook signing secrets, and the responses
// that carried them in idempotency records) with AES-256-GCM under keys from the
// deployment's configuration. A sealed value names its key by a 4-byte fingerprint, so
// the configuration can list a new key first and old ones after it: new values are sealed
// with the first, and values sealed with any listed key still open (key rotation without
// a migration). The associated data binds a sealed value to where it is stored (an
// endpoint id, an idempotency record): moved elsewhere, it does not open.
package sealbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Box seals with its first key and opens with any of its keys.
type Box struct {
	keys []key
}

type key struct {
	id   [4]byte
	aead cipher.AEAD
}

const version = 1

// New returns a box over 32-byte keys, the first sealing.
func New(keys ...[]byte) (*Box, error) {
	if len(keys) == 0 {
		return nil, errors.New("sealbox: no key")
	}
	b := &Box{}
	for i, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("sealbox: key %d: need 32 bytes, got %d", i+1, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k)
		var id [4]byte
		copy(id[:], sum[:4])
		b.keys = append(b.keys, key{id: id, aead: aead})
	}
	return b, nil
}

// Parse reads a comma-separated list of base64 (standard or URL alphabet, padded or not)
// 32-byte keys, the sealing key first.
func Parse(list string) (*Box, error) {
	var keys [][]byte
	for i, s := range strings.Split(list, ",") {
		s = strings.TrimRight(strings.TrimSpace(s), "=")
		k, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			k, err = base64.RawURLEncoding.DecodeString(s)
		}
		if err != nil {
			return nil, fmt.Errorf("sealbox: key %d is not base64", i+1)
		}
		keys = append(keys, k)
	}
	return New(keys...)
}

// Seal encrypts plain for the place ad names: version, key id, nonce, ciphertext.
func (b *Box) Seal(plain, ad []byte) []byte {
	k := b.keys[0]
	out := make([]byte, 0, 1+4+k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	out = append(out, version)
	out = append(out, k.id[:]...)
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plain, ad)
}

// ErrOpen is returned for a value that does not open: unknown key, tampered, or sealed
// for another place.
var ErrOpen = errors.New("sealbox: value does not open with the configured keys")

// Open decrypts a value Seal made for the same ad.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < 5 || sealed[0] != version {
		return nil, ErrOpen
	}
	for _, k := range b.keys {
		if string(k.id[:]) != string(sealed[1:5]) {
			continue
		}
		rest := sealed[5:]
		if len(rest) < k.aead.NonceSize() {
			return nil, ErrOpen
		}
		plain, err := k.aead.Open(nil, rest[:k.aead.NonceSize()], rest[k.aead.NonceSize():], ad)
		if err != nil {
			return nil, ErrOpen
		}
		return plain, nil
	}
	return nil, ErrOpen
}
