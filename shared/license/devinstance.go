package license

import (
	"fmt"
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
	host, builtin := ClassifyInstance(instance)
	if builtin {
		return true
	}
	for _, sfx := range suffixes {
		if UnderSuffix(host, sfx) {
			return true
		}
	}
	return false
}

// ClassifyInstance applies the fixed rules of IsDevelopmentInstance: host is the URL's
// host in lower case without a trailing dot ("" when the instance is not an http(s) URL
// with a host), and builtin whether the fixed rules alone make it a development instance.
// The product's suffixes are matched against host by UnderSuffix (the writer's activation
// statement does the same in SQL, with the suffixes stored as NormalizeDevSuffix left them).
func ClassifyInstance(instance string) (host string, builtin bool) {
	s := strings.TrimSpace(instance)
	lower := strings.ToLower(s)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", false
	}
	host = strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return "", false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		return host, a.IsLoopback() || a.IsPrivate()
	}
	if host == "localhost" || !strings.Contains(host, ".") {
		return host, true
	}
	for _, tld := range []string{"localhost", "local", "test", "example", "invalid"} {
		if underDomain(host, tld) {
			return host, true
		}
	}
	first, _, _ := strings.Cut(host, ".")
	return host, first == "staging" || first == "stage" || first == "dev"
}

// UnderSuffix reports whether host (as ClassifyInstance returns it) lies under suffix by
// whole labels: "wpengine.com" matches "x.wpengine.com", not "xwpengine.com" and not
// "wpengine.com" itself. The suffix is normalized as NormalizeDevSuffix does.
func UnderSuffix(host, suffix string) bool {
	suffix = strings.Trim(strings.ToLower(strings.TrimSpace(suffix)), ".")
	return host != "" && suffix != "" && underDomain(host, suffix)
}

// NormalizeDevSuffix validates and normalizes one of a product's dev_instance_suffixes:
// lower case, a leading dot dropped, a domain name of at least two labels of letters,
// digits and hyphens (a single label such as "com" would make every site under it a
// development instance), at most 253 characters.
func NormalizeDevSuffix(s string) (string, error) {
	n := strings.ToLower(strings.TrimPrefix(s, "."))
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("%q is not a domain name (1 to 253 characters)", s)
	}
	labels := strings.Split(n, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%q must have at least two labels (e.g. wpengine.com)", s)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%q is not a domain name", s)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("%q is not a domain name (letters, digits, hyphens and dots)", s)
			}
		}
	}
	return n, nil
}

// underDomain reports whether host is a name strictly below domain, by whole labels.
func underDomain(host, domain string) bool {
	return strings.HasSuffix(host, "."+domain)
}
