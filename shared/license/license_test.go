package license

import (
	"strings"
	"testing"
	"time"
)

func TestNewKey(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 2000 {
		k := NewKey()
		if !ValidKey(k) {
			t.Fatalf("NewKey() = %q is not a valid key", k)
		}
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
		for _, r := range strings.ReplaceAll(k, "-", "") {
			counts[r]++
		}
	}
	for _, bad := range "01OIL" {
		if counts[bad] > 0 {
			t.Fatalf("ambiguous symbol %q used", bad)
		}
	}
	if len(counts) != len(KeyAlphabet) {
		t.Fatalf("only %d of %d symbols used in 50000 draws", len(counts), len(KeyAlphabet))
	}
	// 50000 draws over 31 symbols: each symbol expects ~1613; a biased modulo would
	// skew the first symbols by ~3%, far less than this bound catches, so check loosely
	for r, n := range counts {
		if n < 1300 || n > 1950 {
			t.Fatalf("symbol %q drawn %d times: not uniform", r, n)
		}
	}
}

func TestValidKeyAndMask(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"ABCDE-FGHJK-MNPQR-STUVW-XYZ23", true},
		{"ABCDE-FGHJK-MNPQR-STUVW-XYZ2", false},
		{"ABCDE-FGHJK-MNPQR-STUVW-XYZ20", false},
		{"ABCDEXFGHJK-MNPQR-STUVW-XYZ23", false},
		{"abcde-fghjk-mnpqr-stuvw-xyz23", false},
	} {
		if got := ValidKey(c.in); got != c.want {
			t.Errorf("ValidKey(%q) = %v", c.in, got)
		}
	}
	if got := NormalizeKey("  abcde-fghjk-mnpqr-stuvw-xyz23\n"); got != "ABCDE-FGHJK-MNPQR-STUVW-XYZ23" {
		t.Errorf("NormalizeKey = %q", got)
	}
	if got := MaskKey("ABCDE-FGHJK-MNPQR-STUVW-XYZ23"); got != strings.Repeat("*", 25)+"YZ23" {
		t.Errorf("MaskKey = %q", got)
	}
}

func TestNormalizeInstance(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"url-drops-scheme-www-port-slash", "https://WWW.Example.COM:443/", "example.com"},
		{"http-default-port", "http://example.com:80", "example.com"},
		{"non-default-port-kept", "https://example.com:8443/", "example.com:8443"},
		{"path-kept-subsite", "https://example.com/Blog/", "example.com/Blog"},
		{"trimmed", "  https://example.com  ", "example.com"},
		{"non-url-as-given", "  Machine-ABC ", "Machine-ABC"},
		{"host-only-as-given", "Example.com", "Example.com"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := NormalizeInstance(c.in)
			if err != nil || got != c.want {
				t.Fatalf("NormalizeInstance(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
	if _, err := NormalizeInstance("   "); err != ErrEmptyInstance {
		t.Fatalf("empty: %v", err)
	}
	if _, err := NormalizeInstance(strings.Repeat("x", 256)); err != ErrInstanceTooLong {
		t.Fatalf("long: %v", err)
	}
	if _, err := NormalizeInstance(strings.Repeat("x", 255)); err != nil {
		t.Fatalf("255 chars: %v", err)
	}
}

func TestNormalizeEmail(t *testing.T) {
	if got, err := NormalizeEmail("  Jane.Doe@Example.COM "); err != nil || got != "jane.doe@example.com" {
		t.Fatalf("got %q %v", got, err)
	}
	for _, bad := range []string{"", "jane", "jane@", "@example.com", "Jane <jane@example.com>", "jane@localhost", "a b@example.com"} {
		if _, err := NormalizeEmail(bad); err == nil {
			t.Errorf("NormalizeEmail(%q) accepted", bad)
		}
	}
}

func TestTransitions(t *testing.T) {
	for _, c := range []struct {
		t                 Transition
		stored, effective string
		next              string
		ok                bool
	}{
		{Suspend, StatusValid, StatusValid, StatusSuspended, true},
		{Suspend, StatusValid, StatusExpired, StatusSuspended, true},
		{Suspend, StatusSuspended, StatusSuspended, StatusSuspended, true},
		{Resume, StatusSuspended, StatusSuspended, StatusValid, true},
		{Resume, StatusValid, StatusValid, StatusValid, true},
		{Resume, StatusValid, StatusExpired, StatusValid, false},
		{Renew, StatusSuspended, StatusSuspended, StatusSuspended, true},
		{Renew, StatusValid, StatusExpired, StatusValid, true},
		{Cancel, StatusSuspended, StatusSuspended, StatusCancelled, true},
		{Cancel, StatusCancelled, StatusCancelled, StatusCancelled, true},
		{Resume, StatusCancelled, StatusCancelled, StatusCancelled, false},
		{Renew, StatusCancelled, StatusCancelled, StatusCancelled, false},
		{Suspend, StatusCancelled, StatusCancelled, StatusCancelled, false},
	} {
		next, ok := Next(c.t, c.stored, c.effective)
		if next != c.next || ok != c.ok {
			t.Errorf("Next(%s, %s/%s) = %s %v, want %s %v", c.t, c.stored, c.effective, next, ok, c.next, c.ok)
		}
	}
}

func inst(id string, licenseIDs ...string) *Instance {
	in := &Instance{Instance: id}
	for _, l := range licenseIDs {
		in.Activations = append(in.Activations, InstanceActivation{LicenseID: l})
	}
	return in
}

func TestEvaluate(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	past, later := now.Add(-time.Second), now.Add(time.Hour)
	three := 3
	s := State{Brand: "rankmath", Key: "K", Licenses: []LicenseState{
		{ID: "L-pro", Product: "pro", Status: StatusValid, ExpiresAt: &later, SeatLimit: &three, SeatsUsed: 1},
		{ID: "L-old", Product: "old", Status: StatusValid, ExpiresAt: &past},
		{ID: "L-sus", Product: "sus", Status: StatusSuspended},
	}}
	for _, c := range []struct {
		name, product string
		inst          *Instance
		valid         bool
		code          string
		n             int
	}{
		{"any-valid", "", nil, true, "valid", 3},
		{"product-valid", "pro", nil, true, "valid", 1},
		{"expired-at-read-time", "old", nil, false, "expired", 1},
		{"suspended", "sus", nil, false, "suspended", 1},
		{"not-licensed", "nope", nil, false, "product_not_licensed", 0},
		{"instance-activated", "pro", inst("example.com", "L-pro"), true, "valid", 1},
		{"instance-not-activated", "pro", inst("other.com"), false, "instance_not_activated", 1},
		{"instance-on-another-license", "pro", inst("other.com", "L-sus"), false, "instance_not_activated", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := s.Evaluate(c.product, c.inst, now)
			if st.Valid != c.valid || st.Code != c.code || len(st.Licenses) != c.n {
				t.Fatalf("got valid=%v code=%s n=%d", st.Valid, st.Code, len(st.Licenses))
			}
			if c.inst != nil && (st.Instance == nil || st.Instance.ID != c.inst.Instance) {
				t.Fatalf("instance = %+v", st.Instance)
			}
		})
	}
	// a seat left on a cancelled license does not count for the live one (same product)
	one := 1
	moved := State{Licenses: []LicenseState{
		{ID: "L1", Product: "pro", Status: StatusCancelled},
		{ID: "L2", Product: "pro", Status: StatusValid, SeatLimit: &one, SeatsUsed: 1},
		{ID: "L3", Product: "sus", Status: StatusSuspended},
	}}
	for _, c := range []struct {
		product   string
		inst      *Instance
		valid     bool
		code      string
		activated bool
	}{
		{"pro", inst("a.com", "L1"), false, "instance_not_activated", false},
		{"pro", inst("b.com", "L2"), true, "valid", true},
		{"", inst("a.com", "L1"), false, "instance_not_activated", true},
		{"", inst("c.com", "L3"), false, "instance_not_activated", true},
		{"", inst("b.com", "L2"), true, "valid", true},
		{"", inst("d.com"), false, "instance_not_activated", false},
	} {
		st := moved.Evaluate(c.product, c.inst, now)
		if st.Valid != c.valid || st.Code != c.code || st.Instance.Activated != c.activated {
			t.Errorf("Evaluate(%q, %q) = valid %v code %s activated %v", c.product, c.inst.Instance, st.Valid, st.Code, st.Instance.Activated)
		}
	}
	if st := s.Evaluate("pro", nil, later); st.Valid || st.Code != "expired" {
		t.Fatalf("at expires_at exactly: %+v", st)
	}
	if st := s.Evaluate("pro", nil, now); *st.Licenses[0].SeatsRemaining != 2 {
		t.Fatalf("seats_remaining = %d", *st.Licenses[0].SeatsRemaining)
	}
}

func TestCacheMaxAge(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	soon, far := now.Add(10*time.Second), now.Add(time.Hour)
	s := State{Licenses: []LicenseState{{Product: "a", Status: StatusValid, ExpiresAt: &soon}, {Product: "b", Status: StatusValid, ExpiresAt: &far}}}
	if got := CacheMaxAge(time.Minute, s.Evaluate("", nil, now), now); got != 10 {
		t.Fatalf("max-age = %d, want 10 (the nearest expiry of a valid license)", got)
	}
	if got := CacheMaxAge(time.Minute, s.Evaluate("b", nil, now), now); got != 60 {
		t.Fatalf("max-age = %d, want the ceiling 60", got)
	}
}

func TestStateNext(t *testing.T) {
	two := 2
	s := State{Key: "K", Version: 4, Licenses: []LicenseState{
		{ID: "a", Product: "pro", Status: StatusValid, SeatLimit: &two, SeatsUsed: 1},
		{ID: "b", Product: "lite", Status: StatusValid},
	}}
	n, ok := s.Next(Changed{Version: 5, Licenses: []LicenseState{{ID: "a", Product: "pro", Status: StatusValid, SeatLimit: &two, SeatsUsed: 2}}})
	if !ok || n.Version != 5 || n.Licenses[0].SeatsUsed != 2 || len(n.Licenses) != 2 || s.Licenses[0].SeatsUsed != 1 {
		t.Fatalf("seat change: %+v (the old state must not change: %+v)", n, s)
	}
	n, ok = s.Next(Changed{Version: 5, Licenses: []LicenseState{{ID: "c", Product: "max", Status: StatusValid}}})
	if !ok || len(n.Licenses) != 3 || n.Licenses[2].ID != "c" {
		t.Fatalf("new license: %+v", n)
	}
	for _, c := range []Changed{
		{Version: 6, Licenses: []LicenseState{{ID: "a"}}}, // a gap: version 5 is missing
		{Version: 4, Licenses: []LicenseState{{ID: "a"}}}, // not newer
		{Version: 5, NewKey: true, Licenses: []LicenseState{{ID: "a"}}},
		{Version: 5}, // no license
	} {
		if _, ok := s.Next(c); ok {
			t.Errorf("Next(%+v) applied", c)
		}
	}
}
