package licensing

import (
	"bytes"
	"testing"
)

// FuzzCursorOpen: a cursor comes back from any client. Opening one never panics; what
// opens is an id this list sealed (a forged, altered or other list's cursor is refused),
// and sealing then opening any id for a list gives it back.
func FuzzCursorOpen(f *testing.F) {
	c, err := newCursors(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	id := "0190d5b0-0000-7000-8000-000000000000"
	good := c.seal("products:acme", id)
	for _, s := range []string{good, good[:len(good)-1], good + "A", "", "AAAA", "!!!!", "0190d5b0-0000-7000-8000-000000000000"} {
		f.Add("products:acme", s)
		f.Add("customer:operator:j@example.com", s)
	}
	f.Fuzz(func(t *testing.T, list, cursor string) {
		got, err := c.open(list, cursor)
		switch {
		case err != nil:
			if got != "" {
				t.Fatalf("refused cursor returned %q", got)
			}
		case cursor == "":
			if got != "" {
				t.Fatalf("no cursor returned %q", got)
			}
		case !validID(got):
			t.Fatalf("opened %q to %q", cursor, got)
		}
		// only what was sealed for a list opens for it: the seed cursor, for its own list
		if got != "" && (list != "products:acme" || got != id) {
			t.Fatalf("%q opened for list %q: %q", cursor, list, got)
		}
		if again, err := c.open(list, c.seal(list, id)); err != nil || again != id {
			t.Fatalf("round trip for %q: %q %v", list, again, err)
		}
	})
}
