// Package leasetest checks signed status answers the way a plugin would, with an
// independent JOSE implementation (github.com/go-jose/go-jose/v4) rather than
// shared/lease's own verifier: the token must parse as a compact JWS with alg EdDSA, its
// kid must name a key of the served JWK Set, the signature must verify, and the claims
// must hold at the given time (no leeway). Only tests import it.
package leasetest

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Token is a verified signed answer.
type Token struct {
	Kid, Alg, Typ string
	Claims        jwt.Claims
	// Payload is the whole payload: the status answer's fields and the claims.
	Payload map[string]any
}

// Expected are the claims a test expects (zero fields are not checked; At is the time
// exp, iat and nbf are checked at).
type Expected struct {
	Issuer, Subject, Audience string
	At                        time.Time
}

// Verify verifies token against the JWK Set in jwks (the body of /.well-known/jwks.json).
func Verify(token, jwks []byte, want Expected) (Token, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return Token{}, fmt.Errorf("go-jose: JWK Set: %w", err)
	}
	tok, err := jwt.ParseSigned(string(token), []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return Token{}, fmt.Errorf("go-jose: parse: %w", err)
	}
	if len(tok.Headers) != 1 {
		return Token{}, fmt.Errorf("go-jose: %d signatures", len(tok.Headers))
	}
	h := tok.Headers[0]
	out := Token{Kid: h.KeyID, Alg: h.Algorithm}
	if typ, ok := h.ExtraHeaders[jose.HeaderType].(string); ok {
		out.Typ = typ
	}
	keys := set.Key(h.KeyID)
	if len(keys) == 0 {
		return out, fmt.Errorf("go-jose: kid %q is not in the JWK Set", h.KeyID)
	}
	var verr error
	for _, k := range keys {
		if verr = tok.Claims(k.Key, &out.Claims, &out.Payload); verr == nil {
			break
		}
	}
	if verr != nil {
		return out, fmt.Errorf("go-jose: verify: %w", verr)
	}
	var aud jwt.Audience
	if want.Audience != "" {
		aud = jwt.Audience{want.Audience}
	}
	if want.At.IsZero() {
		return out, errors.New("leasetest: Expected.At is required")
	}
	if err := out.Claims.ValidateWithLeeway(jwt.Expected{Issuer: want.Issuer, Subject: want.Subject, AnyAudience: aud,
		Time: want.At}, 0); err != nil {
		return out, fmt.Errorf("go-jose: claims: %w", err)
	}
	return out, nil
}

// WriteKey writes priv to path as a PKCS#8 PEM file of mode 0600 (what openssl genpkey
// writes), for tests that configure a node's SIGNING_KEY_FILE.
func WriteKey(t testing.TB, path string, priv ed25519.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
