package lease

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadKey reads the Ed25519 private key that signs leases: file is the path of a PKCS#8
// PEM file (what `openssl genpkey -algorithm ed25519` writes); inline is the same PEM
// text, or a base64 (standard or URL alphabet, padded or not) 32-byte seed. Exactly one
// may be set; with neither, LoadKey returns (nil, nil) and the caller decides (an
// ephemeral key, with a warning). Errors say what is wrong with the material, never the
// material itself.
func LoadKey(file, inline string) (ed25519.PrivateKey, error) {
	switch {
	case file != "" && inline != "":
		return nil, errors.New("both a key file and an inline key are set: set one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read key file: %w", err)
		}
		k, err := parsePEM(b)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", file, err)
		}
		return k, nil
	case inline != "":
		s := strings.TrimSpace(inline)
		if strings.HasPrefix(s, "-----BEGIN") {
			return parsePEM([]byte(s))
		}
		return parseSeed(s)
	}
	return nil, nil
}

// LoosePermissions reports whether the key file is readable or writable by every user,
// or writable by its group: worth a warning at start. Group read is allowed: a
// Kubernetes Secret volume is owned by root and read through the pod's fsGroup (mode
// 0440).
func LoosePermissions(file string) bool {
	fi, err := os.Stat(file)
	return err == nil && fi.Mode().Perm()&0o027 != 0
}

// GenerateKey returns a new random key (the ephemeral fallback, and tests).
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return priv, nil
}

func parsePEM(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found (want a PKCS#8 \"PRIVATE KEY\" from openssl genpkey -algorithm ed25519)")
	}
	if block.Type != "PRIVATE KEY" {
		// the type names the format only ("OPENSSH PRIVATE KEY", "PUBLIC KEY", ...)
		return nil, fmt.Errorf("PEM block is %q, want a PKCS#8 \"PRIVATE KEY\" (openssl genpkey -algorithm ed25519)", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("PEM block is not a valid PKCS#8 private key")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("PKCS#8 key is a %T, want an Ed25519 key", k)
	}
	return priv, nil
}

func parseSeed(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	seed, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("inline key is neither PEM nor base64")
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("inline key decodes to %d bytes, want a %d-byte Ed25519 seed", len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key (base64url SHA-256
// of {"crv":"Ed25519","kty":"OKP","x":"..."}): the key id this service gives its keys.
func Thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64(pub) + `"}`))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
