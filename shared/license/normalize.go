package license

import (
	"errors"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
)

// MaxInstanceLength is the longest accepted instance, after normalization.
const MaxInstanceLength = 255

// ErrEmptyInstance and ErrInstanceTooLong are the two ways an instance is rejected.
var (
	ErrEmptyInstance   = errors.New("instance must not be empty")
	ErrInstanceTooLong = errors.New("instance must be at most 255 characters")
)

// NormalizeInstance canonicalizes the identifier of a site or machine: trimmed; for an
// http(s) URL the scheme, a leading "www.", a default port and a trailing "/" are dropped
// and the host is lower-cased, the path is kept (sub-site installs are distinct); any other
// value is compared as given.
func NormalizeInstance(s string) (string, error) {
	if err := CheckText(s); err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ErrEmptyInstance
	}
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") {
		if n, ok := normalizeURL(s); ok {
			s = n
		}
	}
	if s == "" {
		return "", ErrEmptyInstance
	}
	if Chars(s) > MaxInstanceLength {
		return "", ErrInstanceTooLong
	}
	return s, nil
}

func normalizeURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	host = strings.TrimPrefix(host, "www.")
	if port != "" {
		host = host + ":" + port
	}
	path := u.EscapedPath()
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	path = strings.TrimSuffix(path, "/")
	return host + path, true
}

// NormalizeEmail trims and lower-cases an address and checks that it is a plain valid
// address (no display name).
func NormalizeEmail(s string) (string, error) {
	if CheckText(s) != nil {
		return "", errors.New("must be a valid email address")
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || Chars(s) > 254 {
		return "", errors.New("must be a valid email address")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", errors.New("must be a valid email address")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || !strings.Contains(s[at+1:], ".") {
		return "", errors.New("must be a valid email address")
	}
	return s, nil
}

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// ValidSlug reports whether s is a valid brand slug or product code.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }
