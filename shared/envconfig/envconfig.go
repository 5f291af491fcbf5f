// Package envconfig reads a binary's configuration from prefixed environment variables and
// renders it for the start-up log with secrets masked.
package envconfig

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables with a prefix, collecting the first error.
type Reader struct {
	Prefix string
	Lookup func(string) (string, bool) // os.LookupEnv when nil
	err    error
	seen   []string
	secret map[string]bool
}

func (r *Reader) get(name string) (string, bool) {
	full := r.Prefix + name
	r.seen = append(r.seen, full)
	if r.Lookup == nil {
		r.Lookup = os.LookupEnv
	}
	v, ok := r.Lookup(full)
	return v, ok && v != ""
}

// String reads a string with a default.
func (r *Reader) String(name, def string) string {
	if v, ok := r.get(name); ok {
		return v
	}
	return def
}

// Secret reads a string that must never be logged.
func (r *Reader) Secret(name, def string) string {
	if r.secret == nil {
		r.secret = map[string]bool{}
	}
	r.secret[r.Prefix+name] = true
	return r.String(name, def)
}

// Int reads an integer.
func (r *Reader) Int(name string, def int) int {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%s%s: %q is not an integer", r.Prefix, name, v)
	}
	return n
}

// Duration reads a Go duration ("250ms", "30s").
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%s%s: %q is not a duration", r.Prefix, name, v)
	}
	return d
}

// Err is the first parse error.
func (r *Reader) Err() error { return r.err }

// Mask hides a secret for logging.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	return "****"
}

// MaskURL hides the password of a connection URL.
func MaskURL(s string) string {
	at := strings.LastIndexByte(s, '@')
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	cred := s[scheme+3 : at]
	if user, _, ok := strings.Cut(cred, ":"); ok {
		return s[:scheme+3] + user + ":****" + s[at:]
	}
	return s
}
