package clientip

import (
	"net/netip"
	"testing"
)

func TestResolve(t *testing.T) {
	tr, err := Parse("127.0.0.2/32, 10.0.0.0/8,::1")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	for _, c := range []struct {
		name    string
		peer    string
		xff     []string
		want    string
		viaProx bool
	}{
		{"untrusted peer: the header is ignored", "127.0.0.1", []string{"203.0.113.9"}, "127.0.0.1", false},
		{"untrusted peer without header", "198.51.100.7", nil, "198.51.100.7", false},
		{"trusted edge: the address it appended", "127.0.0.2", []string{"203.0.113.9"}, "203.0.113.9", true},
		{"forged hops left of the appended one are ignored", "127.0.0.2", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9", true},
		{"trusted hops are skipped", "10.1.1.1", []string{"203.0.113.9, 10.2.2.2"}, "203.0.113.9", true},
		{"several header lines read as one list", "10.1.1.1", []string{"1.1.1.1", "203.0.113.9", "10.3.3.3"}, "203.0.113.9", true},
		{"IPv4-mapped IPv6 is IPv4", "::ffff:127.0.0.2", []string{"::ffff:203.0.113.9"}, "203.0.113.9", true},
		{"garbage ends the walk at the last trusted hop", "10.1.1.1", []string{"203.0.113.9, nonsense, 10.2.2.2"}, "10.2.2.2", true},
		{"all trusted: the left-most", "10.1.1.1", []string{"10.9.9.9, 10.2.2.2"}, "10.9.9.9", true},
		{"trusted peer without header", "::1", nil, "::1", true},
	} {
		got, via := tr.Resolve(a(c.peer), c.xff)
		if got != a(c.want) || via != c.viaProx {
			t.Errorf("%s: got %v %v, want %v %v", c.name, got, via, c.want, c.viaProx)
		}
	}
	var none Trusted
	if got, via := none.Resolve(a("127.0.0.2"), []string{"203.0.113.9"}); got != a("127.0.0.2") || via {
		t.Errorf("nothing trusted by default: %v %v", got, via)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/8x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if tr, _ := Parse("off"); !tr.Empty() {
		t.Error("off trusts something")
	}
}

func TestPeerAddr(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1:5000": "127.0.0.1", "[::1]:80": "::1", "[::ffff:10.0.0.1]:1": "10.0.0.1"} {
		if got := PeerAddr(in); got != netip.MustParseAddr(want) {
			t.Errorf("%s: %v", in, got)
		}
	}
}
