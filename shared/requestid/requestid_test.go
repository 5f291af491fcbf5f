package requestid

import (
	"strings"
	"testing"
)

func TestOrEchoesValidIDsOnly(t *testing.T) {
	for _, c := range []struct {
		in   string
		echo bool
	}{
		{"abc-123", true},
		{strings.Repeat("x", MaxLength), true},
		{strings.Repeat("x", MaxLength+1), false},
		{"", false},
		{"has space", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"é", false},
	} {
		got := Or(c.in)
		if (got == c.in) != c.echo || !Valid(got) {
			t.Errorf("Or(%q) = %q, echo want %v", c.in, got, c.echo)
		}
	}
}

func TestNewIsUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if seen[id] || !Valid(id) {
			t.Fatalf("id %q repeated or invalid", id)
		}
		seen[id] = true
	}
}
