package license

import (
	"net/netip"
	"net/url"
	"strings"
)

// IsDevelopmentInstance classifies an instance as sent (before NormalizeInstance drops its
// scheme) as a development copy of a site, which takes no seat (API.md "Development
// instances"). Only an http:// or https:// URL is classified; its host is one when it is
// localhost or under .localhost, a loopback or private-range IP literal, a name without a
// dot, under .local, .test, .example or .invalid, has staging, stage or dev as its first
// label, or is under one of suffixes (the product's dev_instance_suffixes; whole labels,
// a leading dot ignored). .dev is a public top-level domain and does not count.
func IsDevelopmentInstance(instance string, suffixes []string) bool {
	s := strings.TrimSpace(instance)
	lower := strings.ToLower(s)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		return a.IsLoopback() || a.IsPrivate()
	}
	if host == "localhost" || !strings.Contains(host, ".") {
		return true
	}
	for _, tld := range []string{"localhost", "local", "test", "example", "invalid"} {
		if underDomain(host, tld) {
			return true
		}
	}
	first, _, _ := strings.Cut(host, ".")
	if first == "staging" || first == "stage" || first == "dev" {
		return true
	}
	for _, sfx := range suffixes {
		sfx = strings.Trim(strings.ToLower(strings.TrimSpace(sfx)), ".")
		if sfx != "" && underDomain(host, sfx) {
			return true
		}
	}
	return false
}

// underDomain reports whether host is a name strictly below domain, by whole labels.
func underDomain(host, domain string) bool {
	return strings.HasSuffix(host, "."+domain)
}
