package license

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Normalizers see untrusted input from every request: whatever they accept is valid text,
// within its bounds, and already in normal form (normalizing it again changes nothing,
// so a stored value and a value compared with it agree).

func FuzzNormalizeInstance(f *testing.F) {
	for _, s := range []string{"https://www.Example.com:443/", "http://example.com:8080/sub/", "example.com", " site ",
		"HTTPS://WWW.EXAMPLE.COM/a?b=c", "http://", "http://[::1]:80/", "machine-id-1234", "http://www.www.a.com",
		"https://a.com/%2F/", "\x00", "é" + strings.Repeat("a", 300), "http://user:pw@host/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeInstance(s)
		if err != nil {
			return
		}
		if CheckText(n) != nil || n == "" || Chars(n) > MaxInstanceLength || strings.TrimSpace(n) != n {
			t.Fatalf("%q → %q: not a valid instance", s, n)
		}
		if again, err := NormalizeInstance(n); err != nil || again != n {
			t.Fatalf("%q → %q → %q (%v): not idempotent", s, n, again, err)
		}
	})
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"Jane@Example.com", " j@example.com ", "a@b", "\"quoted\"@example.com", "Jane <j@example.com>",
		"j@example.com\x00", "é@exämple.com", strings.Repeat("a", 250) + "@b.co"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeEmail(s)
		if err != nil {
			return
		}
		if CheckText(n) != nil || Chars(n) > 254 || n != strings.ToLower(n) || !strings.Contains(n, "@") {
			t.Fatalf("%q → %q: not a valid address", s, n)
		}
		if again, err := NormalizeEmail(n); err != nil || again != n {
			t.Fatalf("%q → %q → %q (%v): not idempotent", s, n, again, err)
		}
	})
}

func FuzzKey(f *testing.F) {
	for _, s := range []string{NewKey(), " abcde-fghjk-mnpqr-stuvw-xyz23 ", "ABCDE-FGHJK-MNPQR-STUVW-XYZ2", "ABCDE_FGHJK", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeKey(s)
		if !ValidKey(n) {
			return
		}
		if NormalizeKey(n) != n || CheckText(n) != nil || len(n) != KeyLength || strings.ContainsAny(n, "0OIL1 ") {
			t.Fatalf("%q → %q accepted as a key", s, n)
		}
	})
}

func FuzzCheckText(f *testing.F) {
	for _, s := range []string{"plain", "é", "\x00", "\u0085", "\xed\xa0\x80", "\t", "\U0010ffff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if (CheckText(s) == nil) != (CheckTextBytes([]byte(s)) == nil) {
			t.Fatalf("%q: CheckText %v, CheckTextBytes %v", s, CheckText(s), CheckTextBytes([]byte(s)))
		}
		if CheckText(s) != nil {
			return
		}
		if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			t.Fatalf("%q accepted", s)
		}
	})
}
