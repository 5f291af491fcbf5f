package apikey

import (
	"strings"
	"testing"
)

// FuzzParse: the credential parser sees every Authorization header. What it accepts is a
// token of the issued shape: the prefix and the secret it returns rebuild the token.
func FuzzParse(f *testing.F) {
	for _, s := range []string{New().Token, "lsk_", "lsk__", "lsk_a_", "lsk__b", "lsk_a_b_c", "Bearer lsk_a_b", "\x00lsk_a_b", "lsk_é_\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		prefix, secret, ok := Parse(token)
		if !ok {
			return
		}
		if prefix == "" || secret == "" || strings.Contains(prefix, "_") || TokenPrefix+prefix+"_"+secret != token {
			t.Fatalf("%q → %q, %q", token, prefix, secret)
		}
		if Matches(secret, Hash(secret+"x")) {
			t.Fatalf("%q matches another secret's hash", secret)
		}
	})
}
