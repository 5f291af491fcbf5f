// Package clientip resolves the address a request comes from (API.md, conventions): the
// TCP peer, unless the peer is in the configured trusted-proxy ranges; then the right-most
// address of X-Forwarded-For that is not itself trusted. Nothing is trusted by default, so
// a client talking to a binary directly cannot choose its address by sending the header.
package clientip

import (
	"fmt"
	"net/netip"
	"strings"
)

// Trusted is a set of trusted-proxy ranges. The zero value trusts nothing.
type Trusted struct{ ranges []netip.Prefix }

// Parse reads a comma-separated list of CIDR ranges or single addresses ("" and "off":
// none).
func Parse(s string) (Trusted, error) {
	var t Trusted
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return t, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return t, fmt.Errorf("trusted proxy %q: not a CIDR range or an address", f)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		t.ranges = append(t.ranges, p.Masked())
	}
	return t, nil
}

// Contains reports whether a is trusted.
func (t Trusted) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Empty reports whether nothing is trusted.
func (t Trusted) Empty() bool { return len(t.ranges) == 0 }

// Resolve returns the client address of a request from peer carrying the X-Forwarded-For
// values xff (every header line, in order), and whether the peer is a trusted proxy. A
// malformed entry met before an untrusted address ends the walk at the last trusted hop
// (whoever wrote it cannot be believed for what lies to its left).
func (t Trusted) Resolve(peer netip.Addr, xff []string) (client netip.Addr, viaProxy bool) {
	peer = peer.Unmap()
	if !t.Contains(peer) {
		return peer, false
	}
	client = peer
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			h := strings.TrimSpace(hops[j])
			if h == "" {
				continue
			}
			a, err := netip.ParseAddr(h)
			if err != nil {
				return client, true
			}
			a = a.Unmap()
			if !t.Contains(a) {
				return a, true
			}
			client = a
		}
	}
	return client, true
}

// PeerAddr parses a "host:port" remote address (net/http's Request.RemoteAddr).
func PeerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(strings.Trim(remote, "[]"))
	return a.Unmap()
}
