package apikey

import (
	"strings"
	"testing"
)

func TestNewKeysParseAndMatch(t *testing.T) {
	k := New()
	prefix, secret, ok := Parse(k.Token)
	if !ok || prefix != k.Prefix || !Matches(secret, k.Hash) {
		t.Fatalf("Parse(%q) = %q %q %v", k.Token, prefix, secret, ok)
	}
	if Matches(secret+"x", k.Hash) {
		t.Fatal("a different secret matched")
	}
	if New().Token == k.Token {
		t.Fatal("two keys are equal")
	}
	if strings.ContainsAny(k.Token[len(TokenPrefix):], "01lo") {
		t.Fatalf("ambiguous symbol in %q", k.Token)
	}
}

func TestParseRefusesOtherShapes(t *testing.T) {
	for _, tok := range []string{"", "lsk_", "lsk__x", "lsk_abc", "lsk_abc_", "Bearer lsk_a_b", "op-token"} {
		if _, _, ok := Parse(tok); ok {
			t.Errorf("Parse(%q) accepted", tok)
		}
	}
}

func TestFromBytesIsDeterministic(t *testing.T) {
	var raw [PrefixBytes + SecretBytes]byte
	for i := range raw {
		raw[i] = byte(i)
	}
	a, b := FromBytes(raw), FromBytes(raw)
	if a.Token != b.Token || string(a.Hash) != string(b.Hash) || len(a.Prefix) != 8 {
		t.Fatalf("%+v vs %+v", a, b)
	}
}
