// Package lease signs status answers as offline leases (API.md "Signed status and
// offline leases"): a JWS compact serialization (RFC 7515) with alg EdDSA (Ed25519,
// RFC 8037), protected header {"alg":"EdDSA","kid":...,"typ":"license-status+jwt"}, and
// as payload the plain status answer's JSON object plus the claims iss, sub (the license
// key), aud (the brand slug), iat and exp. It also loads the signing key, builds and
// parses the JWK Set published at /.well-known/jwks.json, and verifies tokens (tests and
// tools; plugins use their own JOSE library).
//
// Signing uses crypto/ed25519 directly and builds the token in one buffer: the edge signs
// on its hot path. The writer and every edge sign with a key of their own or a shared
// one; each publishes its own public key plus a configured set (other nodes' keys, and
// retired keys until every lease they signed has expired).
package lease

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/licensing/licensing/shared/resource"
)

// Type is the typ header of a signed status answer; ContentType its media type.
const (
	Type        = "license-status+jwt"
	ContentType = "application/jose"
)

// DefaultDuration is the lease when none is configured (API.md: 72 h).
const DefaultDuration = 72 * time.Hour

// Granularity is the resolution of iat: a signed answer's iat (and its checked_at) is
// the time of the question truncated to it, so that identical questions within one
// granule get the same token and a node may reuse it instead of signing again.
const Granularity = time.Second

// Signer signs status answers with one key. It is safe for concurrent use.
type Signer struct {
	priv   ed25519.PrivateKey
	kid    string
	header string // base64url of the protected header
	iss    []byte // the issuer as a JSON string
	lease  time.Duration
	set    JWKS
	jwks   []byte
}

// NewSigner returns a signer with issuer iss and lease duration lease (DefaultDuration
// when not positive); its JWK Set is its own public key followed by every key of extra,
// deduplicated by kid. A key of extra whose kid is this key's with other material is an
// error.
func NewSigner(priv ed25519.PrivateKey, issuer string, lease time.Duration, extra JWKS) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("lease: no Ed25519 private key")
	}
	if lease <= 0 {
		lease = DefaultDuration
	}
	own := PublicJWK(priv.Public().(ed25519.PublicKey))
	set := JWKS{Keys: []JWK{own}}
	for _, k := range extra.Keys {
		if err := set.add(k); err != nil {
			return nil, err
		}
	}
	iss, _ := json.Marshal(issuer)
	h, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{"EdDSA", own.Kid, Type})
	return &Signer{priv: priv, kid: own.Kid, header: b64(h), iss: iss, lease: lease, set: set, jwks: set.Marshal()}, nil
}

// Kid is the key id of the signing key (its RFC 7638 thumbprint).
func (s *Signer) Kid() string { return s.kid }

// Lease is the configured lease duration.
func (s *Signer) Lease() time.Duration { return s.lease }

// JWKS is the JSON of the published key set (built once; do not modify).
func (s *Signer) JWKS() []byte { return s.jwks }

// Keys is the published key set.
func (s *Signer) Keys() JWKS { return s.set }

// Expiry is exp for an answer issued at iat: iat + the lease, never after validUntil
// (nil: no cap). Both are whole seconds, validUntil rounded down.
func (s *Signer) Expiry(iat time.Time, validUntil *time.Time) int64 {
	exp := iat.Add(s.lease).Unix()
	if validUntil != nil {
		exp = min(exp, validUntil.Unix())
	}
	return exp
}

// Sign returns the JWS compact serialization of a status answer: status is the plain
// answer's JSON object (resource.Status.AppendJSON), to which the claims iss, sub, aud,
// iat (iat in whole seconds) and exp (Expiry) are added. The caller sets the answer's
// checked_at to iat.
func (s *Signer) Sign(status []byte, sub, aud string, iat time.Time, validUntil *time.Time) []byte {
	payload := s.payload(status, sub, aud, iat.Unix(), s.Expiry(iat, validUntil))
	enc := base64.RawURLEncoding
	n := len(s.header) + 1 + enc.EncodedLen(len(payload))
	tok := make([]byte, n, n+1+enc.EncodedLen(ed25519.SignatureSize))
	copy(tok, s.header)
	tok[len(s.header)] = '.'
	enc.Encode(tok[len(s.header)+1:], payload)
	sig := ed25519.Sign(s.priv, tok)
	tok = append(tok, '.')
	return enc.AppendEncode(tok, sig)
}

// payload is status with its closing brace replaced by the claims.
func (s *Signer) payload(status []byte, sub, aud string, iat, exp int64) []byte {
	status = trimObject(status)
	b := make([]byte, 0, len(status)+len(s.iss)+len(sub)+len(aud)+96)
	b = append(b, status...)
	if len(status) > 1 {
		b = append(b, ',')
	}
	b = append(b, `"iss":`...)
	b = append(b, s.iss...)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, sub)
	b = append(b, `,"aud":`...)
	b = appendJSONString(b, aud)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, iat, 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, exp, 10)
	return append(b, '}')
}

// trimObject drops a JSON object's closing brace (and trailing space); anything that is
// not an object becomes "{".
func trimObject(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return []byte{'{'}
	}
	return b[:len(b)-1]
}

func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s)
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ValidUntil is the cap on exp that API.md sets for an answer: when it calls the key
// valid, the earliest expires_at among its valid licenses that expire (nil when none
// does, or when the answer is not valid).
func ValidUntil(st *resource.Status) *time.Time {
	if !st.Valid {
		return nil
	}
	var out *time.Time
	for i := range st.Licenses {
		l := &st.Licenses[i]
		if l.Valid && l.ExpiresAt != nil && (out == nil || l.ExpiresAt.Before(*out)) {
			out = l.ExpiresAt
		}
	}
	return out
}

// Header is a signed answer's protected header.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// Claims are the claims Sign adds to a status answer.
type Claims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// Verify checks a compact token against keys: header alg EdDSA and typ
// license-status+jwt, a kid found in keys, and the signature. It returns the payload
// (the status answer with its claims) and the header; exp, aud and sub are the caller's
// to check (Claims decodes them).
func Verify(token []byte, keys JWKS) (payload []byte, h Header, err error) {
	parts := strings.Split(string(token), ".")
	if len(parts) != 3 {
		return nil, h, errors.New("lease: not a JWS compact serialization")
	}
	enc := base64.RawURLEncoding
	hb, err := enc.DecodeString(parts[0])
	if err != nil {
		return nil, h, errors.New("lease: header is not base64url")
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, h, fmt.Errorf("lease: header: %w", err)
	}
	if h.Alg != "EdDSA" {
		return nil, h, fmt.Errorf("lease: alg %q, want EdDSA", h.Alg)
	}
	if h.Typ != Type {
		return nil, h, fmt.Errorf("lease: typ %q, want %s", h.Typ, Type)
	}
	pub, ok := keys.Find(h.Kid)
	if !ok {
		return nil, h, fmt.Errorf("lease: no key %q in the set", h.Kid)
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, h, errors.New("lease: signature is not a base64url Ed25519 signature")
	}
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, h, errors.New("lease: signature does not verify")
	}
	payload, err = enc.DecodeString(parts[1])
	if err != nil {
		return nil, h, errors.New("lease: payload is not base64url")
	}
	return payload, h, nil
}
