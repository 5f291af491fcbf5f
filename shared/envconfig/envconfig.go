// Package envconfig reads a binary's configuration from prefixed environment variables
// with github.com/caarlos0/env, and adds what an operator needs around it: the names of
// prefixed variables that no setting reads (a misspelling shows at start), every setting
// rendered for the start-up log with credentials masked, and a help text.
//
// A configuration is a struct whose fields carry `env:"NAME"` (read as PREFIX+NAME),
// `envDefault:"..."`, `help:"..."`, and `mask:"secret"` (never shown) or `mask:"url"`
// (shown with every credential in it masked: see Redact for the forms). Every setting
// that holds a connection string or a credential carries one (Unmasked lists those that
// do not).
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

// credentialName: a setting whose name says it holds a connection string or a credential.
var credentialName = regexp.MustCompile(`(_URL|_URLS|_DSN|_ADDR|PASSWORD|_PASS|TOKEN|SECRET|_KEY)$`)

// Unmasked names the settings of cfg whose variable says they hold a connection string or
// a credential (…_URL, …_DSN, …_ADDR, …PASSWORD, …TOKEN, …SECRET, …_KEY) but that carry
// no mask tag, so would reach the start-up log as they are. A binary's tests want none.
func Unmasked(cfg any) []string {
	var out []string
	for _, f := range fields(cfg, "") {
		if credentialName.MatchString(f.name) && f.mask != "secret" && f.mask != "url" {
			out = append(out, f.name)
		}
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

// secretName matches the name of a parameter that holds a credential, in a URL query or
// a key=value DSN (password, sslpassword, pass, pwd, token, auth_token, secret, ...).
var secretName = regexp.MustCompile(`(?i)^[a-z0-9_.-]*(password|passwd|pass|pwd|secret|token|apikey|api_key|auth)$`)

// kvSecret matches one credential item of a key=value DSN (libpq's form: items separated
// by white space, values unquoted with backslash escapes or in single quotes; double
// quotes and ';' separators of other DSN styles are covered too). An unterminated quote
// masks the rest of the string.
var kvSecret = regexp.MustCompile(`(?i)(^|[\s;])([a-z0-9_.-]*(?:password|passwd|pass|pwd|secret|token|apikey|api_key|auth))(\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|(?:[^\s\\]|\\.)+)`)

// queryItem is one name=value item of a URL query.
var queryItem = regexp.MustCompile(`(^|[?&;])([^=&;#?]*)=([^&;#]*)`)

// urlStart finds where each URL of a comma-separated list begins (a scheme and "://",
// at the start or after a comma); a comma not followed by a scheme belongs to the URL
// before it (a multi-host Postgres URL, a password with a comma in it).
var urlStart = regexp.MustCompile(`(?:^|,)\s*[a-zA-Z][a-zA-Z0-9+.-]*://`)

// Redact masks the credentials of a connection string, in each of its forms: the
// password of a URL (url.URL.Redacted), a lone user part that is a token
// (nats://TOKEN@host: any scheme but postgres), credentials in its query (?password=,
// ?token=, ...), the credential items of a key=value DSN (quoted or not), and each URL of
// a comma-separated list. A URL it cannot parse is masked whole after its scheme.
func Redact(s string) string {
	if s == "" || s == "off" {
		return s
	}
	starts := urlStart.FindAllStringIndex(s, -1)
	if len(starts) == 0 || starts[0][0] != 0 {
		switch {
		case strings.Contains(s, "="):
			return kvSecret.ReplaceAllString(s, "${1}${2}${3}****")
		case strings.Contains(s, "@"):
			// user:password@host without a scheme
			return strings.TrimPrefix(redactURL("x://"+s), "x://")
		}
		return s
	}
	var b strings.Builder
	for i, m := range starts {
		end := len(s)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		seg := s[m[0]:end]
		// keep the separator (a comma and spaces) as it is
		lead := len(seg) - len(strings.TrimLeft(strings.TrimPrefix(seg, ","), " \t\n"))
		b.WriteString(seg[:lead])
		seg = seg[lead:]
		if postgres(seg) {
			// a comma is part of one URL: hosts of a multi-host URL, or a password
			b.WriteString(redactURL(seg))
			continue
		}
		// other clients (NATS) take server lists whose later entries may lack a scheme
		for j, part := range strings.Split(seg, ",") {
			if j == 0 {
				b.WriteString(redactURL(part))
				continue
			}
			b.WriteString(",")
			trimmed := strings.TrimLeft(part, " \t\n")
			b.WriteString(part[:len(part)-len(trimmed)])
			b.WriteString(strings.TrimPrefix(redactURL("x://"+trimmed), "x://"))
		}
	}
	return b.String()
}

func postgres(u string) bool {
	scheme, _, _ := strings.Cut(u, "://")
	scheme = strings.ToLower(scheme)
	return scheme == "postgres" || scheme == "postgresql"
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		scheme, _, _ := strings.Cut(s, "://")
		return scheme + "://" + Mask(s)
	}
	if u.User != nil {
		if strings.ContainsAny(u.User.Username(), "@,") {
			// not one user: the user part swallowed more than it should (a list)
			return u.Scheme + "://" + Mask(s)
		}
		if _, ok := u.User.Password(); !ok && u.User.Username() != "" && !postgres(s) {
			// nats://TOKEN@host: a lone user part is a token
			u.User = url.User("****")
		}
	}
	u.RawQuery = redactQuery(u.RawQuery)
	u.RawFragment, u.Fragment = "", ""
	return u.Redacted()
}

func redactQuery(q string) string {
	return queryItem.ReplaceAllStringFunc(q, func(item string) string {
		m := queryItem.FindStringSubmatch(item)
		name, err := url.QueryUnescape(m[2])
		if err != nil {
			name = m[2]
		}
		if secretName.MatchString(strings.TrimSpace(name)) {
			return m[1] + m[2] + "=****"
		}
		return item
	})
}
