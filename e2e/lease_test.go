package e2e

import (
	"crypto/ed25519"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/leasetest"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/writer/openapi/openapitest"
)

// TestLeaseKeyRotation walks the rotation procedure of the README on a real edge: it
// signs with key A; restarted with key B and A listed as retired in EDGE_JWKS_FILE, it
// publishes both, a lease A signed still verifies against the served set, and new
// leases carry B's kid; once A is removed from the file, A's lease no longer verifies.
// Every signed answer and key set the edge serves matches the OpenAPI document, and the
// writer's key set is served alike.
func TestLeaseKeyRotation(t *testing.T) {
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "rotate", "pro")
	k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro"})
	validator, err := openapitest.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, _ := lease.GenerateKey()
	b, _ := lease.GenerateKey()
	keyA, keyB := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	leasetest.WriteKey(t, keyA, a)
	leasetest.WriteKey(t, keyB, b)
	setFile := func(name string, keys ...ed25519.PrivateKey) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, lease.KeySet(keys...).Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kid := func(p ed25519.PrivateKey) string { return lease.Thumbprint(p.Public().(ed25519.PublicKey)) }
	path := "/v1/public/rotate/licenses/" + k.Key + "/status?product=pro"

	// one edge incarnation: its served key set and a fresh lease
	incarnation := func(t *testing.T, name, keyFile, jwksFile string) (jwks, token []byte, stop func()) {
		t.Helper()
		cfg := w.edgeConfig(name, wr.base)
		cfg.SigningKeyFile, cfg.JWKSFile, cfg.LeaseIssuer = keyFile, jwksFile, "https://licenses.example"
		e := w.edge(t, cfg)
		var r resp
		eventually(t, 5*time.Second, "a signed answer", func() (bool, string) {
			r = e.call(t, "GET", path, "", nil, "Accept", "application/jose")
			return r.Status == 200, string(r.Body)
		})
		j := e.must(t, 200, "GET", "/.well-known/jwks.json", "", nil)
		for _, x := range []struct {
			path string
			r    resp
		}{{path, r}, {"/.well-known/jwks.json", j}} {
			req, _ := http.NewRequest("GET", "http://edge"+x.path, nil)
			if err := validator.ValidateResponse(req, x.r.Status, x.r.Header, x.r.Body); err != nil {
				t.Errorf("%s: edge answer does not match the OpenAPI document: %v", x.path, err)
			}
		}
		if r.Header.Get("Content-Type") != "application/jose" || r.Header.Get("Vary") != "Accept" || r.Header.Get("X-Cache") == "" {
			t.Errorf("signed answer headers %v", r.Header)
		}
		return j.Body, r.Body, e.stop
	}
	verify := func(token, jwks []byte) (leasetest.Token, error) {
		return leasetest.Verify(token, jwks, leasetest.Expected{Issuer: "https://licenses.example", Subject: k.Key,
			Audience: "rotate", At: time.Now()})
	}
	kids := func(t *testing.T, jwks []byte) string {
		t.Helper()
		set, err := lease.ParseJWKS(jwks)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.Kid)
		}
		return strings.Join(out, ",")
	}

	// 1. key A
	jwks1, leaseA, stop := incarnation(t, "edge-key-a", keyA, "")
	if got := kids(t, jwks1); got != kid(a) {
		t.Fatalf("key set %s, want A %s", got, kid(a))
	}
	if tok, err := verify(leaseA, jwks1); err != nil || tok.Kid != kid(a) {
		t.Fatalf("lease A: %v kid %s", err, tok.Kid)
	}
	stop()

	// 2. signing with B, A retired but published
	jwks2, leaseB, stop := incarnation(t, "edge-key-b", keyB, setFile("a-and-b.json", a, b))
	if got := kids(t, jwks2); got != kid(b)+","+kid(a) {
		t.Fatalf("key set %s, want B then A", got)
	}
	if _, err := verify(leaseA, jwks2); err != nil {
		t.Errorf("lease A no longer verifies while A is retired but published: %v", err)
	}
	if tok, err := verify(leaseB, jwks2); err != nil || tok.Kid != kid(b) {
		t.Errorf("lease B: %v kid %s", err, tok.Kid)
	}
	stop()

	// 3. A removed: its leases stop verifying, B's still do
	jwks3, _, stop := incarnation(t, "edge-key-b-only", keyB, setFile("b.json", b))
	if got := kids(t, jwks3); got != kid(b) {
		t.Fatalf("key set %s, want B only", got)
	}
	if _, err := verify(leaseA, jwks3); err == nil {
		t.Error("lease A still verifies after A left the key set")
	}
	if _, err := verify(leaseB, jwks3); err != nil {
		t.Errorf("lease B: %v", err)
	}
	stop()

	// the writer serves its own key set (an ephemeral key here) and signs alike
	wj := wr.must(t, 200, "GET", "/.well-known/jwks.json", "", nil)
	wl := wr.must(t, 200, "GET", path, "", nil, "Accept", "application/jose")
	if _, err := leasetest.Verify(wl.Body, wj.Body, leasetest.Expected{Subject: k.Key, Audience: "rotate", At: time.Now()}); err != nil {
		t.Errorf("writer lease: %v", err)
	}
}
