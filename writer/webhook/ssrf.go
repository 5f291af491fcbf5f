package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/licensing/licensing/shared/problem"
)

// Guard keeps deliveries away from the deployment's own network (SSRF, API.md): an
// endpoint URL must be https and resolve only to public addresses. Loopback and private
// ranges are refused unless the deployment allows them (the local topology and tests
// allow loopback, and then http for loopback only); link-local, metadata, unspecified,
// multicast and broadcast addresses are never allowed. The check runs at creation and
// update (CheckURL), and again on every connection a delivery opens (Control on the
// dialer, with the address actually dialled), so a name that resolves elsewhere later
// (DNS rebinding, a changed record) is refused too.
type Guard struct {
	AllowLoopback bool
	AllowPrivate  bool
	// Resolver resolves host names (nil: net.DefaultResolver).
	Resolver *net.Resolver
}

// errForbidden is a refused address.
type errForbidden struct {
	addr   netip.Addr
	reason string
}

func (e *errForbidden) Error() string {
	return fmt.Sprintf("%s is a %s address, which webhooks may not reach", e.addr, e.reason)
}

// IsForbidden reports whether err is a delivery refused by the guard.
func IsForbidden(err error) bool {
	var f *errForbidden
	return errors.As(err, &f)
}

// metadata services reachable from cloud instances, refused whatever the configuration.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, DigitalOcean
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IPv6
}

var (
	cgnat   = netip.MustParsePrefix("100.64.0.0/10")
	thisNet = netip.MustParsePrefix("0.0.0.0/8")
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	bcast   = netip.MustParseAddr("255.255.255.255")
)

// Check refuses an address deliveries may not reach.
func (g Guard) Check(a netip.Addr) error {
	a = a.Unmap()
	// an IPv4 address embedded in NAT64 or 6to4 is judged as itself
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:16]))
	} else if a.Is6() && sixTo4.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[2:6]))
	}
	for _, m := range metadata {
		if a == m {
			return &errForbidden{a, "cloud metadata"}
		}
	}
	switch {
	case !a.IsValid() || a.IsUnspecified() || thisNet.Contains(a):
		return &errForbidden{a, "unspecified"}
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return &errForbidden{a, "link-local"}
	case a.IsMulticast() || a == bcast:
		return &errForbidden{a, "multicast or broadcast"}
	case a.IsLoopback():
		if !g.AllowLoopback {
			return &errForbidden{a, "loopback"}
		}
	case a.IsPrivate() || cgnat.Contains(a):
		if !g.AllowPrivate {
			return &errForbidden{a, "private"}
		}
	}
	return nil
}

// CheckURL validates an endpoint URL and the addresses its host resolves to now; it
// returns the URL to store, or a 422 invalid_request naming the field url.
func (g Guard) CheckURL(ctx context.Context, raw string) (string, error) {
	bad := func(format string, args ...any) error { return problem.Unacceptable("url", format, args...) }
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", bad("must be an absolute https URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", bad("must be an https URL")
	}
	if u.User != nil {
		return "", bad("must not carry credentials")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", bad("must not carry a fragment")
	}
	if u.Scheme == "http" && !g.AllowLoopback {
		return "", bad("must be an https URL") // http only on loopback, and only when allowed
	}
	host := u.Hostname()
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return "", bad("host %q does not resolve", host)
	}
	_, literal := netip.ParseAddr(strings.Trim(host, "[]"))
	allLoopback := true
	for _, a := range addrs {
		if err := g.Check(a); err != nil {
			if literal == nil {
				return "", bad("%v", err)
			}
			var f *errForbidden
			if errors.As(err, &f) {
				return "", bad("host %q resolves to %s, a %s address, which webhooks may not reach", host, f.addr, f.reason)
			}
			return "", bad("host %q: %v", host, err)
		}
		allLoopback = allLoopback && a.Unmap().IsLoopback()
	}
	if u.Scheme == "http" && !(g.AllowLoopback && allLoopback) {
		return "", bad("must be an https URL")
	}
	return u.String(), nil
}

func (g Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a}, nil
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no address")
	}
	return addrs, err
}

// Dialer returns a dialer that refuses, at connect time, every address Check refuses.
func (g Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("webhook dial %q: %w", address, err)
			}
			return g.Check(ap.Addr())
		},
		Resolver: g.Resolver,
	}
}
