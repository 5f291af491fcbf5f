package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/licensing/licensing/internal/leasetest"
	"github.com/licensing/licensing/shared/lease"
)

// TestLeaseKey: `writer lease-key` prints the public halves of key files as a JWK Set,
// after the keys of --set, deduplicated; it never prints private material and refuses
// what is not a key.
func TestLeaseKey(t *testing.T) {
	dir := t.TempDir()
	a, _ := lease.GenerateKey()
	b, _ := lease.GenerateKey()
	fa, fb := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	leasetest.WriteKey(t, fa, a)
	leasetest.WriteKey(t, fb, b)
	kid := func(p ed25519.PrivateKey) string { return lease.Thumbprint(p.Public().(ed25519.PublicKey)) }

	var out bytes.Buffer
	if err := leaseKey(&out, []string{fa}); err != nil {
		t.Fatal(err)
	}
	set, err := lease.ParseJWKS(out.Bytes())
	if err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != kid(a) {
		t.Fatalf("%s: %v", out.Bytes(), err)
	}
	pemA, _ := os.ReadFile(fa)
	body := strings.Join(strings.Split(string(pemA), "\n")[1:3], "")
	if strings.Contains(out.String(), body[:40]) {
		t.Error("private key material printed")
	}
	current := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(current, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := leaseKey(&out, []string{"--set", current, fb, fa}); err != nil {
		t.Fatal(err)
	}
	set, err = lease.ParseJWKS(out.Bytes())
	if err != nil || len(set.Keys) != 2 || set.Keys[0].Kid != kid(a) || set.Keys[1].Kid != kid(b) {
		t.Fatalf("merged %s: %v", out.Bytes(), err)
	}
	for _, args := range [][]string{nil, {current}, {filepath.Join(dir, "missing.pem")}, {"--set", fa, fb}} {
		if err := leaseKey(&out, args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
