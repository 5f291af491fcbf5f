package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/sealbox"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/memstore"
	"github.com/licensing/licensing/writer/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// domain is the real transport over the real domain and the in-memory store (the store
// conformance suite holds it to Postgres' behaviour), with one brand, a product, an API
// key and a license key provisioned.
type domain struct {
	s        *Server
	store    *memstore.Store
	apiKey   string
	key, id  string // a license key and its license's id
	endpoint string // a webhook endpoint's id
}

func newDomain(tb testing.TB) *domain {
	tb.Helper()
	store := memstore.New()
	svc := licensing.New(store, time.Now, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	b, err := svc.CreateBrand(ctx, licensing.Meta{Actor: "test"}, "acme", "Acme")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, b.APIKey.Secret, "")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := svc.CreateProduct(ctx, licensing.Meta{Actor: "test"}, p, licensing.ProductSpec{Code: "pro", Name: "Pro"}); err != nil {
		tb.Fatal(err)
	}
	seats := 100
	lk, err := svc.Provision(ctx, licensing.Meta{Actor: "test"}, p, "jane@example.com", []licensing.LicenseSpec{{Product: "pro", SeatLimit: &seats}})
	if err != nil {
		tb.Fatal(err)
	}
	box, err := sealbox.New([]byte(strings.Repeat("k", 32)))
	if err != nil {
		tb.Fatal(err)
	}
	svc.SetWebhooks(licensing.Webhooks{Sealer: box, CheckURL: webhook.Guard{}.CheckURL})
	ep, err := svc.CreateEndpoint(ctx, licensing.Meta{Actor: "test"}, p, "https://93.184.216.34/hooks", nil, "")
	if err != nil {
		tb.Fatal(err)
	}
	s := New(svc, Config{OperatorToken: opToken, StatusMaxAge: time.Minute}, slog.New(slog.DiscardHandler),
		prometheus.NewRegistry(), prometheus.NewRegistry())
	return &domain{s: s, store: store, apiKey: b.APIKey.Secret, key: lk.Key, id: lk.Licenses[0].ID, endpoint: ep.ID}
}

// written is how much the store holds that a write adds to (every write audits, and every
// change under a license key also writes an outbox event).
func (d *domain) written() int { return len(d.store.Audit()) + len(d.store.Outbox()) }

// serve runs one request through the handler (no net/http parsing in between, so header
// values and bodies carry any byte).
func (d *domain) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	d.s.ServeHTTP(w, r)
	return w
}

// hostile are values no field, path segment, query value or header the API reads may
// accept: control characters (C0, DEL, C1), invalid UTF-8, surrogates, and mixtures.
var hostile = []string{"\x00", "a\x00b", "\x01", "\x1f", "\x7f", "x\u0085y", "\xff", "\xc3\x28", "\xed\xa0\x80",
	"\xf4\x90\x80\x80", "ok\r\nX-Injected: 1", "\t", "é\x00", "\x80\x80"}

// randomHostile is a hostile value mixed with random bytes, or one of the fixed ones. The
// mix is drawn again when the random bytes happen to make it valid text (a random lead
// byte before "\x80\x80" completes a character).
func randomHostile(rng *rand.Rand) string {
	h := hostile[rng.IntN(len(hostile))]
	if rng.IntN(2) == 0 {
		return h
	}
	for {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		at := rng.IntN(len(b) + 1)
		if v := string(b[:at]) + h + string(b[at:]); license.CheckText(v) != nil {
			return v
		}
	}
}

// jsonString embeds v in a JSON string literal: raw (invalid UTF-8 and control bytes as
// they are) or escaped (\u0000, lone surrogates) so both decoder paths are reached.
func jsonString(v string, escaped bool) string {
	if !escaped {
		return `"` + strings.NewReplacer(`"`, `\"`, `\`, `\\`).Replace(v) + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == '"' || c == '\\' || c == 0x7f {
			fmt.Fprintf(&b, `\u%04x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	if strings.ContainsRune(v, '\u0085') || strings.Contains(v, "\xed\xa0\x80") {
		b.WriteString(`\ud800`) // a lone surrogate as well
	}
	b.WriteByte('"')
	return b.String()
}

// template builds a valid request with v at one position (v valid: the request succeeds).
type template struct {
	name  string
	build func(d *domain, v string, escaped bool) *http.Request
}

func req(method, target, body string, hdr ...string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func templates() []template {
	activation := func(field string) template {
		return template{"activation." + field, func(d *domain, v string, esc bool) *http.Request {
			base := map[string]string{"license_key": d.key, "product": "pro", "instance": "site.example.com"}
			f := map[string]string{}
			for k, b := range base {
				f[k] = jsonString(b, false)
			}
			f[field] = jsonString(base[field]+v, esc)
			return req("POST", "/v1/public/acme/activations",
				fmt.Sprintf(`{"license_key":%s,"product":%s,"instance":%s}`, f["license_key"], f["product"], f["instance"]))
		}}
	}
	provision := func(field string) template {
		return template{"provision." + field, func(d *domain, v string, esc bool) *http.Request {
			base := map[string]string{"email": "john@example.com", "product": "pro", "expires": "2030-01-01T00:00:00Z"}
			f := map[string]string{}
			for k, b := range base {
				f[k] = jsonString(b, false)
			}
			f[field] = jsonString(base[field]+v, esc)
			return req("POST", "/v1/license-keys",
				fmt.Sprintf(`{"customer_email":%s,"licenses":[{"product":%s,"expires_at":%s}]}`, f["email"], f["product"], f["expires"]),
				"Authorization", "Bearer "+d.apiKey)
		}}
	}
	return []template{
		activation("license_key"), activation("product"), activation("instance"),
		{"activation.path-brand", func(d *domain, v string, _ bool) *http.Request {
			return req("POST", "/v1/public/"+url.PathEscape("acme"+v)+"/activations",
				`{"license_key":"`+d.key+`","product":"pro","instance":"a.example.com"}`)
		}},
		{"activation.content-type", func(d *domain, v string, _ bool) *http.Request {
			r := req("POST", "/v1/public/acme/activations", `{"license_key":"`+d.key+`","product":"pro","instance":"b.example.com"}`)
			r.Header.Set("Content-Type", "application/json"+v)
			return r
		}},
		provision("email"), provision("product"), provision("expires"),
		{"provision.authorization", func(d *domain, v string, _ bool) *http.Request {
			return req("POST", "/v1/license-keys", `{"customer_email":"k@example.com","licenses":[{"product":"pro"}]}`,
				"Authorization", "Bearer "+d.apiKey+v)
		}},
		{"provision.idempotency-key", func(d *domain, v string, _ bool) *http.Request {
			return req("POST", "/v1/license-keys", `{"customer_email":"l@example.com","licenses":[{"product":"pro"}]}`,
				"Authorization", "Bearer "+d.apiKey, "Idempotency-Key", "k"+v)
		}},
		{"product.code", func(d *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/products", `{"code":`+jsonString("px"+v, esc)+`,"name":"P"}`, "Authorization", "Bearer "+d.apiKey)
		}},
		{"product.name", func(d *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/products", `{"code":"other","name":`+jsonString("P"+v, esc)+`}`, "Authorization", "Bearer "+d.apiKey)
		}},
		{"product.dev-suffix", func(d *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/products", `{"code":"sfx","name":"S","dev_instance_suffixes":[`+jsonString("wpengine.com"+v, esc)+`]}`,
				"Authorization", "Bearer "+d.apiKey)
		}},
		{"product-patch.path-code", func(d *domain, v string, _ bool) *http.Request {
			return req("PATCH", "/v1/products/"+url.PathEscape("pro"+v), `{"dev_instances":false}`, "Authorization", "Bearer "+d.apiKey)
		}},
		{"product-patch.name", func(d *domain, v string, esc bool) *http.Request {
			return req("PATCH", "/v1/products/pro", `{"name":`+jsonString("P"+v, esc)+`}`, "Authorization", "Bearer "+d.apiKey)
		}},
		{"suspend.path-id", func(d *domain, v string, _ bool) *http.Request {
			return req("POST", "/v1/licenses/"+url.PathEscape(d.id+v)+"/suspend", "", "Authorization", "Bearer "+d.apiKey)
		}},
		{"renew.expires", func(d *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/licenses/"+d.id+"/renew", `{"expires_at":`+jsonString("2031-01-01T00:00:00Z"+v, esc)+`}`,
				"Authorization", "Bearer "+d.apiKey)
		}},
		{"brand.slug", func(_ *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/brands", `{"slug":`+jsonString("new"+v, esc)+`,"name":"N"}`, "Authorization", "Bearer "+opToken)
		}},
		{"brand.patch-path", func(_ *domain, v string, _ bool) *http.Request {
			return req("PATCH", "/v1/brands/"+url.PathEscape("acme"+v), `{"rate_limit":null}`, "Authorization", "Bearer "+opToken)
		}},
		{"deactivation.instance", func(d *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/public/acme/deactivations",
				`{"license_key":"`+d.key+`","product":"pro","instance":`+jsonString("site.example.com"+v, esc)+`}`)
		}},
		{"status.query-instance", func(d *domain, v string, _ bool) *http.Request {
			return req("GET", "/v1/public/acme/licenses/"+d.key+"/status?product=pro&instance="+url.QueryEscape("s.example.com"+v), "")
		}},
		{"status.x-forwarded-for", func(d *domain, v string, _ bool) *http.Request {
			return req("GET", "/v1/public/acme/licenses/"+d.key+"/status", "", "X-Forwarded-For", "203.0.113.9"+v)
		}},
		{"status.path-key", func(d *domain, v string, _ bool) *http.Request {
			return req("GET", "/v1/public/acme/licenses/"+url.PathEscape(d.key+v)+"/status", "")
		}},
		{"webhook.url", func(d *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/webhook-endpoints", `{"url":`+jsonString("https://93.184.216.34/h"+v, esc)+`}`,
				"Authorization", "Bearer "+d.apiKey)
		}},
		{"webhook.description", func(d *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/webhook-endpoints", `{"url":"https://93.184.216.34/h","description":`+jsonString("d"+v, esc)+`}`,
				"Authorization", "Bearer "+d.apiKey)
		}},
		{"webhook.events", func(d *domain, v string, esc bool) *http.Request {
			return req("POST", "/v1/webhook-endpoints", `{"url":"https://93.184.216.34/h","events":[`+jsonString("license.created"+v, esc)+`]}`,
				"Authorization", "Bearer "+d.apiKey)
		}},
		{"webhook.patch-url", func(d *domain, v string, esc bool) *http.Request {
			return req("PATCH", "/v1/webhook-endpoints/"+d.endpoint, `{"url":`+jsonString("https://93.184.216.34/p"+v, esc)+`}`,
				"Authorization", "Bearer "+d.apiKey)
		}},
		{"webhook.path-id", func(d *domain, v string, _ bool) *http.Request {
			return req("POST", "/v1/webhook-endpoints/"+url.PathEscape(d.endpoint+v)+"/rotate-secret", "", "Authorization", "Bearer "+d.apiKey)
		}},
		{"customers.path-email", func(d *domain, v string, _ bool) *http.Request {
			return req("GET", "/v1/customers/"+url.PathEscape("jane"+v+"@example.com")+"/licenses", "", "Authorization", "Bearer "+opToken)
		}},
	}
}

// TestHostileRequests: generated requests with a hostile value in every string position
// the API reads (body fields raw and escaped, path segments, query values, credentials,
// Idempotency-Key, Content-Type) are refused with a 4xx problem, and nothing is written.
// Every template is first checked to succeed with a valid value, so a refusal is the
// hostile value's doing.
func TestHostileRequests(t *testing.T) {
	d := newDomain(t)
	for _, tp := range templates() {
		w := d.serve(tp.build(d, "", false))
		if w.Code >= 300 && w.Code != http.StatusNotFound { // a deactivation of an instance never activated
			t.Fatalf("%s with a valid value: %d %s", tp.name, w.Code, w.Body)
		}
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 9))
	before := d.written()
	n := 4000
	if testing.Short() {
		n = 500
	}
	tps := templates()
	for i := range n {
		tp := tps[rng.IntN(len(tps))]
		v := randomHostile(rng)
		esc := rng.IntN(2) == 0
		w := d.serve(tp.build(d, v, esc))
		if w.Code < 400 || w.Code >= 500 || w.Header().Get("Content-Type") != ProblemContentType || w.Header().Get("X-Request-Id") == "" {
			t.Fatalf("seed %d, request %d, %s with %q (escaped %v): %d %q %s", seed, i, tp.name, v, esc, w.Code,
				w.Header().Get("Content-Type"), w.Body)
		}
		if got := d.written(); got != before {
			t.Fatalf("seed %d, request %d, %s with %q: %d rows written", seed, i, tp.name, v, got-before)
		}
	}
}

// TestHostileHeaders: random bytes in headers the API does not read (and in their names'
// values generally) never make a 5xx; the request is answered as without them.
func TestHostileHeaders(t *testing.T) {
	d := newDomain(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for i := range 300 {
		r := req("GET", "/v1/public/acme/licenses/"+d.key+"/status?product=pro", "")
		for _, h := range []string{"X-Request-Id", "User-Agent", "Accept", "Cookie", "X-Anything"} {
			r.Header.Set(h, randomHostile(rng))
		}
		w := d.serve(r)
		if w.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s (headers %q)", i, w.Code, w.Body, r.Header)
		}
	}
}

// FuzzWriterRequest: any method, target, body and credential/idempotency/media-type
// headers through the real transport and domain: never a 5xx, never a panic, every
// refusal a problem document.
func FuzzWriterRequest(f *testing.F) {
	for _, s := range []struct{ method, target, body, ct, auth, idem string }{
		{"POST", "/v1/public/acme/activations", `{"license_key":"K","product":"pro","instance":"a.example.com"}`, "application/json", "", ""},
		{"POST", "/v1/license-keys", `{"customer_email":"j@example.com","licenses":[{"product":"pro","seat_limit":2}]}`, "application/json", "KEY", "idem-1"},
		{"GET", "/v1/public/acme/licenses/ABCDE-FGHJK-MNPQR-STUVW-XYZ23/status?product=pro&instance=x", "", "", "", ""},
		{"PATCH", "/v1/brands/acme", `{"rate_limit":{"per_second":5,"burst":10}}`, "application/json; charset=utf-8", "OP", ""},
		{"POST", "/v1/licenses/0190d5b0-0000-7000-8000-000000000000/renew", `{"expires_at":"9999-12-31T23:59:59Z"}`, "application/json", "KEY", ""},
		{"GET", "/v1/licenses?customer_email=jane%40example.com&limit=1&cursor=AAAA", "", "", "KEY", ""},
		{"POST", "/v1/products", `{"code":"p","code":"q"}`, "application/json", "KEY", ""},
		{"PATCH", "/v1/products/pro", `{"dev_instances":false,"dev_instance_suffixes":["wpengine.com"]}`, "application/json", "KEY", ""},
		{"DELETE", "/v1/brands/acme/api-keys/x", "", "", "OP", ""},
		{"POST", "/v1/webhook-endpoints", `{"url":"https://93.184.216.34/h","events":["license.created"]}`, "application/json", "KEY", "idem-2"},
		{"PATCH", "/v1/webhook-endpoints/0190d5b0-0000-7000-8000-000000000000", `{"status":"disabled"}`, "application/json", "KEY", ""},
	} {
		f.Add(s.method, s.target, []byte(s.body), s.ct, s.auth, s.idem)
	}
	d := newDomain(f)
	f.Fuzz(func(t *testing.T, method, target string, body []byte, ct, auth, idem string) {
		r, err := http.NewRequest(method, "http://writer"+target, strings.NewReader(string(body)))
		if err != nil || r.URL.Host != "writer" {
			return // not a request net/http would hand to a handler
		}
		r.RequestURI = r.URL.RequestURI()
		r.RemoteAddr = "192.0.2.1:1234"
		switch auth {
		case "KEY":
			auth = "Bearer " + d.apiKey
		case "OP":
			auth = "Bearer " + opToken
		}
		for k, v := range map[string]string{"Content-Type": ct, "Authorization": auth, "Idempotency-Key": idem} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		w := d.serve(r)
		if w.Code >= 500 {
			t.Fatalf("%s %q %q: %d %s", method, target, body, w.Code, w.Body)
		}
		if w.Code >= 400 && w.Header().Get("Content-Type") != ProblemContentType {
			t.Fatalf("%s %q: %d not problem+json: %q", method, target, w.Code, w.Header().Get("Content-Type"))
		}
	})
}
