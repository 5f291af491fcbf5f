package lease

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// JWK is one Ed25519 public key in JWK form (RFC 7517, RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	X   string `json:"x"`
}

// JWKS is a JWK Set: {"keys": [...]}.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK is pub as this service publishes it: OKP/Ed25519, kid its thumbprint, use
// sig, alg EdDSA.
func PublicJWK(pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", Kid: Thumbprint(pub), Use: "sig", Alg: "EdDSA", X: b64(pub)}
}

// Public decodes the key's x. It fails unless the key is an Ed25519 OKP key of 32 bytes.
func (k JWK) Public() (ed25519.PublicKey, error) {
	if k.Kty != "OKP" || k.Crv != "Ed25519" {
		return nil, fmt.Errorf("key %q is kty %q crv %q, want OKP Ed25519", k.Kid, k.Kty, k.Crv)
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("key %q has use %q, want sig", k.Kid, k.Use)
	}
	if k.Alg != "" && k.Alg != "EdDSA" {
		return nil, fmt.Errorf("key %q has alg %q, want EdDSA", k.Kid, k.Alg)
	}
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key %q: x is not a base64url %d-byte Ed25519 public key", k.Kid, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

// ParseJWKS reads a JWK Set of Ed25519 public keys. Every key must be OKP/Ed25519 (a set
// meant for this service holds nothing else); a key without kid gets its thumbprint;
// use and alg, when absent, are filled in (sig, EdDSA). Two keys with the same kid but
// different material are an error.
func ParseJWKS(b []byte) (JWKS, error) {
	var set JWKS
	if err := json.Unmarshal(b, &set); err != nil {
		return JWKS{}, fmt.Errorf("JWK Set: %w", err)
	}
	if set.Keys == nil {
		return JWKS{}, errors.New(`JWK Set: no "keys" array`)
	}
	var out JWKS
	for i, k := range set.Keys {
		pub, err := k.Public()
		if err != nil {
			return JWKS{}, fmt.Errorf("JWK Set key %d: %w", i, err)
		}
		if k.Kid == "" {
			k.Kid = Thumbprint(pub)
		}
		k.Use, k.Alg = "sig", "EdDSA"
		if err := out.add(k); err != nil {
			return JWKS{}, err
		}
	}
	return out, nil
}

// ReadJWKS is ParseJWKS of a file ("" is an empty set).
func ReadJWKS(file string) (JWKS, error) {
	if file == "" {
		return JWKS{}, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return JWKS{}, fmt.Errorf("read JWK Set: %w", err)
	}
	set, err := ParseJWKS(b)
	if err != nil {
		return JWKS{}, fmt.Errorf("%s: %w", file, err)
	}
	return set, nil
}

// add appends k unless a key with its kid and material is there already; a kid taken by
// other material is an error.
func (s *JWKS) add(k JWK) error {
	for _, have := range s.Keys {
		if have.Kid == k.Kid {
			if have.X != k.X {
				return fmt.Errorf("JWK Set: kid %q names two different keys", k.Kid)
			}
			return nil
		}
	}
	s.Keys = append(s.Keys, k)
	return nil
}

// Find returns the public key with this kid.
func (s JWKS) Find(kid string) (ed25519.PublicKey, bool) {
	for _, k := range s.Keys {
		if k.Kid == kid {
			pub, err := k.Public()
			return pub, err == nil
		}
	}
	return nil, false
}

// Marshal is the set's JSON.
func (s JWKS) Marshal() []byte {
	if s.Keys == nil {
		s.Keys = []JWK{}
	}
	b, _ := json.Marshal(s) // strings only: cannot fail
	return b
}

// KeySet is the JWK Set of the public halves of privs, in order, deduplicated: what
// `writer lease-key` prints for operators to merge into a JWKS_FILE.
func KeySet(privs ...ed25519.PrivateKey) JWKS {
	var s JWKS
	for _, p := range privs {
		_ = s.add(PublicJWK(p.Public().(ed25519.PublicKey))) // a thumbprint kid never clashes
	}
	return s
}
