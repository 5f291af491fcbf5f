package sealbox

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
)

func newKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

func TestSealOpen(t *testing.T) {
	oldKey, newK := newKey(), newKey()
	old, err := New(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("whsec_abc")
	sealed := old.Seal(secret, []byte("endpoint-1"))
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	if got, err := old.Open(sealed, []byte("endpoint-1")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := old.Open(sealed, []byte("endpoint-2")); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened for another place: %v", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := old.Open(tampered, []byte("endpoint-1")); !errors.Is(err, ErrOpen) {
		t.Fatalf("tampered value opened: %v", err)
	}
	// rotation: the new key first, the old one still opens what it sealed
	rotated, err := Parse(base64.StdEncoding.EncodeToString(newK) + "," + base64.RawURLEncoding.EncodeToString(oldKey))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealed, []byte("endpoint-1")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open after rotation: %q %v", got, err)
	}
	fresh := rotated.Seal(secret, nil)
	if _, err := old.Open(fresh, nil); !errors.Is(err, ErrOpen) {
		t.Fatal("a value sealed with the new key opened with the old one alone")
	}
	for _, bad := range []string{"", "x", base64.StdEncoding.EncodeToString(make([]byte, 16))} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
