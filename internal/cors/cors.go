// Package cors holds the cross-origin policy both binaries apply (writer/api on net/http,
// edge/server on fasthttp): which origins may call the API from a browser, and the header
// values of a preflight answer and of an actual answer to an allowed origin. It is what
// lets the Swagger UI page (served by a writer at /api/docs/) call another writer or an
// edge.
//
// The policy is deliberately small: no credentials mode (the API authenticates with a
// bearer token the page sends itself, never a cookie), so an allowed origin is echoed and
// "*" (any origin) is safe to configure for a public API. With no origins configured
// (the default) no CORS header is ever sent and browsers keep the same-origin rule.
package cors

import (
	"fmt"
	"net/url"
	"strings"
)

// Header values shared by both binaries.
const (
	// AllowMethods are the methods a preflight allows: every method the API uses.
	AllowMethods = "GET, HEAD, POST, PATCH, DELETE"
	// AllowHeaders are the request headers a page may send: the API's own.
	AllowHeaders = "Authorization, Content-Type, Accept, Idempotency-Key, X-Request-Id"
	// ExposeHeaders are the response headers a page may read besides the safelisted ones.
	ExposeHeaders = "X-Request-Id, Retry-After, RateLimit, RateLimit-Policy, X-Cache, X-Cache-Stale, " +
		"X-License-Version, Idempotent-Replayed, Location, Warning"
	// MaxAge is how long, in seconds, a browser may reuse a preflight answer.
	MaxAge = "600"
)

// Origins is the allowed-origins list. The zero value allows none.
type Origins struct {
	any  bool
	list []string
}

// Parse reads a comma-separated list of origins ("https://docs.example.com,
// http://127.0.0.2:8080"), "*" for any origin, or "" (or "off") for none. An origin is a
// scheme and a host with an optional port, nothing else.
func Parse(s string) (Origins, error) {
	var o Origins
	if s = strings.TrimSpace(s); s == "" || s == "off" {
		return o, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			continue
		case f == "*":
			o.any = true
			continue
		}
		u, err := url.Parse(f)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return Origins{}, fmt.Errorf("%q is not an origin (scheme://host[:port])", f)
		}
		o.list = append(o.list, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return o, nil
}

// Enabled reports whether any origin is allowed.
func (o Origins) Enabled() bool { return o.any || len(o.list) > 0 }

// Allow returns the Access-Control-Allow-Origin value for a request's Origin header, or
// "" when that origin is not allowed (or the request carries none).
func (o Origins) Allow(origin string) string {
	if origin == "" {
		return ""
	}
	if o.any {
		return "*"
	}
	for _, a := range o.list {
		if strings.EqualFold(a, origin) {
			return origin
		}
	}
	return ""
}

// String lists the allowed origins as they are configured (for the effective-config log).
func (o Origins) String() string {
	if o.any {
		return "*"
	}
	return strings.Join(o.list, ",")
}
