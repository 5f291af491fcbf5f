// Package envconfig reads a binary's configuration from prefixed environment variables
// with github.com/caarlos0/env, and adds what an operator needs around it: the names of
// prefixed variables that no setting reads (a misspelling shows at start), every setting
// rendered for the start-up log with credentials masked, and a help text.
//
// A configuration is a struct whose fields carry `env:"NAME"` (read as PREFIX+NAME),
// `envDefault:"..."`, `help:"..."`, and `mask:"secret"` (never shown) or `mask:"url"`
// (shown with any password or credential in it masked, in URL or key=value form).
package envconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caarlos0/env/v11"
)

// Load fills cfg (a pointer to a struct) from environ (KEY=value entries, as os.Environ
// returns) with prefix, and returns the prefixed variables that no field reads, sorted.
func Load(cfg any, prefix string, environ []string) (unknown []string, err error) {
	vars := env.ToMap(environ)
	opts := env.Options{Prefix: prefix, Environment: vars}
	if err := env.ParseWithOptions(cfg, opts); err != nil {
		return nil, named(cfg, prefix, err)
	}
	params, err := env.GetFieldParamsWithOptions(cfg, opts)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, p := range params {
		known[p.Key] = true
	}
	for k := range vars {
		if strings.HasPrefix(k, prefix) && !known[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	return unknown, nil
}

// named rewrites env's parse errors to name the variable and its value, not the field.
func named(cfg any, prefix string, err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	t := reflect.Indirect(reflect.ValueOf(cfg)).Type()
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if sf, ok := t.FieldByName(pe.Name); ok {
				name, _, _ := strings.Cut(sf.Tag.Get("env"), ",")
				out = append(out, fmt.Errorf("%s%s: %w", prefix, name, pe.Err))
				continue
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// field is one setting of a configuration struct.
type field struct {
	name, def, help, mask string
	value                 reflect.Value
}

func fields(cfg any, prefix string) []field {
	v := reflect.Indirect(reflect.ValueOf(cfg))
	t := v.Type()
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("env"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		out = append(out, field{name: prefix + name, def: sf.Tag.Get("envDefault"), help: sf.Tag.Get("help"),
			mask: sf.Tag.Get("mask"), value: v.Field(i)})
	}
	return out
}

func show(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v.Interface())
}

// LogValue renders every setting of cfg (name without prefix, lower-cased) for the
// start-up log, masking secrets and credentials in URLs.
func LogValue(cfg any) slog.Value {
	var attrs []slog.Attr
	for _, f := range fields(cfg, "") {
		s := show(f.value)
		switch f.mask {
		case "secret":
			s = Mask(s)
		case "url":
			s = Redact(s)
		}
		attrs = append(attrs, slog.String(strings.ToLower(f.name), s))
	}
	return slog.GroupValue(attrs...)
}

// Help is a table of cfg's settings: variable, default and meaning.
func Help(cfg any, prefix string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VARIABLE\tDEFAULT\tMEANING")
	for _, f := range fields(cfg, prefix) {
		def := f.def
		if f.mask == "secret" && def != "" {
			def = Mask(def)
		} else if f.mask == "url" {
			def = Redact(def)
		}
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", f.name, def, f.help)
	}
	_ = w.Flush()
	return b.String()
}

// Mask hides a secret.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	return "****"
}

var kvSecret = regexp.MustCompile(`(?i)\b(password|pass|pwd|secret|token|sslpassword)\s*=\s*('[^']*'|\S+)`)

// Redact masks the credentials of a connection string: the password (or a lone token
// user) of a URL, a password in its query, and password=... items of a key=value DSN.
// Anything it cannot parse is masked whole if it could hold a credential.
func Redact(s string) string {
	if s == "" || s == "off" {
		return s
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			if strings.Contains(s, "@") {
				return Mask(s)
			}
			return s
		}
		if u.User != nil {
			if _, ok := u.User.Password(); !ok && u.User.Username() != "" && u.Scheme != "postgres" && u.Scheme != "postgresql" {
				// nats://TOKEN@host: a lone user part is a token
				u.User = url.User("****")
			}
		}
		q := u.Query()
		masked := false
		for k := range q {
			if kvSecret.MatchString(k + "=x") {
				q.Set(k, "****")
				masked = true
			}
		}
		if masked {
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.Contains(s, "=") {
		return kvSecret.ReplaceAllString(s, "$1=****")
	}
	return s
}
