package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeService stands in for the domain (the transport depends on the Service interface
// only). Methods not overridden here panic through the nil embedded interface, which the
// server turns into a 500: a test reaching one fails on the status.
type fakeService struct {
	Service
	calls     int
	lastMeta  licensing.Meta
	provision func(m licensing.Meta) (resource.LicenseKey, error)
	remove    func() error
	status    func(product, instance string) (resource.Status, error)
}

var _ Service = (*fakeService)(nil)

const (
	opToken    = "op-token"
	brandToken = "lsk_brand_secret"
)

func (f *fakeService) Now() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }

func (f *fakeService) Authenticate(_ context.Context, token, operatorToken string) (licensing.Principal, error) {
	switch token {
	case operatorToken:
		return licensing.Principal{Operator: true}, nil
	case brandToken:
		return licensing.Principal{BrandID: "b1", BrandSlug: "acme", KeyID: "k1"}, nil
	}
	return licensing.Principal{}, problem.New(problem.Unauthorized, "missing, invalid or revoked credentials")
}

func (f *fakeService) Provision(_ context.Context, m licensing.Meta, _ licensing.Principal, _ string, _ []licensing.LicenseSpec) (resource.LicenseKey, error) {
	f.calls++
	f.lastMeta = m
	return f.provision(m)
}

func (f *fakeService) RemoveActivation(_ context.Context, m licensing.Meta, _ licensing.Principal, _, _ string) error {
	f.calls++
	f.lastMeta = m
	return f.remove()
}

func (f *fakeService) Status(_ context.Context, _, _, product, instance string) (resource.Status, error) {
	f.calls++
	return f.status(product, instance)
}

func newTestServer(f *fakeService) *Server {
	return New(f, Config{OperatorToken: opToken, StatusMaxAge: time.Minute}, slog.New(slog.DiscardHandler),
		prometheus.NewRegistry(), prometheus.NewRegistry())
}

type answer struct {
	status int
	header http.Header
	body   string
	code   string
}

func call(s *Server, method, target, token, body string, hdr ...string) answer {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	return answer{w.Code, w.Header(), w.Body.String(), p.Code}
}

var okKey = resource.LicenseKey{Key: "ABCDE-FGHJK-MNPQR-STUVW-XYZ23", Brand: "acme", CustomerEmail: "j@example.com", Licenses: []resource.License{}}

func TestRoutingAndCredentials(t *testing.T) {
	f := &fakeService{provision: func(licensing.Meta) (resource.LicenseKey, error) { return okKey, nil }}
	s := newTestServer(f)
	body := `{"customer_email":"j@example.com","licenses":[{"product":"pro"}]}`
	for _, c := range []struct {
		name, method, target, token, body string
		status                            int
		code                              string
	}{
		{"provision-201", "POST", "/v1/license-keys", brandToken, body, 201, ""},
		{"unknown-path-404", "GET", "/v1/nope", brandToken, "", 404, "not_found"},
		{"wrong-method-405", "PUT", "/v1/license-keys", brandToken, body, 405, "method_not_allowed"},
		{"no-credential-401", "POST", "/v1/license-keys", "", body, 401, "unauthorized"},
		{"bad-credential-401", "POST", "/v1/license-keys", "lsk_nope", body, 401, "unauthorized"},
		{"operator-on-brand-endpoint-403", "POST", "/v1/license-keys", opToken, body, 403, "insufficient_scope"},
		{"brand-on-operator-endpoint-403", "GET", "/v1/brands", brandToken, "", 403, "insufficient_scope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := call(s, c.method, c.target, c.token, c.body)
			if a.status != c.status || a.code != c.code {
				t.Fatalf("%d %s, want %d %s", a.status, a.body, c.status, c.code)
			}
			if a.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if c.status >= 400 && a.header.Get("Content-Type") != ProblemContentType {
				t.Errorf("content type %q", a.header.Get("Content-Type"))
			}
		})
	}
	if a := call(s, "PUT", "/v1/license-keys", brandToken, body); a.header.Get("Allow") != "POST" {
		t.Errorf("Allow %q", a.header.Values("Allow"))
	}
}

func TestMalformedInputNeverReachesTheDomain(t *testing.T) {
	f := &fakeService{provision: func(licensing.Meta) (resource.LicenseKey, error) { return okKey, nil }}
	s := newTestServer(f)
	for _, c := range []struct{ name, body, field string }{
		{"malformed-json", `{"customer_email":`, "body"},
		{"unknown-field", `{"customer_email":"j@example.com","licenses":[],"plan":"x"}`, "plan"},
		{"wrong-type", `{"customer_email":7,"licenses":[]}`, "customer_email"},
		{"trailing-data", `{"customer_email":"j@example.com","licenses":[]} {}`, "body"},
		{"bad-time", `{"customer_email":"j@example.com","licenses":[{"product":"p","expires_at":"tomorrow"}]}`, "expires_at"},
		{"oversized", `{"customer_email":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := call(s, "POST", "/v1/license-keys", brandToken, c.body)
			if a.status != 400 || a.code != "invalid_request" || !strings.Contains(a.body, c.field) {
				t.Fatalf("%d %s, want 400 invalid_request naming %s", a.status, a.body, c.field)
			}
		})
	}
	if a := call(s, "POST", "/v1/license-keys", brandToken, `{}`, "Idempotency-Key", strings.Repeat("k", 256)); a.status != 400 {
		t.Fatalf("over-long Idempotency-Key: %d", a.status)
	}
	if f.calls != 0 {
		t.Fatalf("%d calls reached the domain", f.calls)
	}
}

func TestErrorKindsAreRenderedByTheTransport(t *testing.T) {
	var next error
	f := &fakeService{provision: func(licensing.Meta) (resource.LicenseKey, error) { return resource.LicenseKey{}, next }}
	s := newTestServer(f)
	body := `{"customer_email":"j@example.com","licenses":[{"product":"pro"}]}`
	for _, c := range []struct {
		name   string
		err    error
		status int
		code   string
		detail string
	}{
		{"bad-value-422", problem.Unacceptable("licenses[0].seat_limit", "too big"), 422, "invalid_request", "licenses[0].seat_limit: too big"},
		{"malformed-400", problem.Invalid("customer_email", "bad"), 400, "invalid_request", "customer_email: bad"},
		{"unknown-product-422", problem.New(problem.UnknownProduct, "licenses[0].product: unknown product"), 422, "unknown_product", ""},
		{"in-progress-409", problem.New(problem.IdempotencyInProgress, "later"), 409, "idempotency_in_progress", ""},
		{"internal-500-hides-the-cause", errors.New("pq: password authentication failed for secret-thing"), 500, "internal", "an internal error occurred; it has been logged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			next = c.err
			a := call(s, "POST", "/v1/license-keys", brandToken, body)
			var p struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
				Title  string `json:"title"`
				RID    string `json:"request_id"`
			}
			_ = json.Unmarshal([]byte(a.body), &p)
			if a.status != c.status || a.code != c.code || p.Status != c.status || p.Title == "" || p.RID != a.header.Get("X-Request-Id") {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if c.detail != "" && p.Detail != c.detail {
				t.Fatalf("detail %q, want %q", p.Detail, c.detail)
			}
			if strings.Contains(a.body, "secret-thing") {
				t.Fatal("the cause of an internal error reached the client")
			}
		})
	}
}

func TestReplaysAreRenderedLikeFreshAnswers(t *testing.T) {
	var next error
	f := &fakeService{
		provision: func(licensing.Meta) (resource.LicenseKey, error) { return resource.LicenseKey{}, next },
		remove:    func() error { return next },
	}
	s := newTestServer(f)
	body := `{"customer_email":"j@example.com","licenses":[{"product":"pro"}]}`
	stored, _ := json.Marshal(okKey)
	next = &licensing.Replay{Body: stored}
	a := call(s, "POST", "/v1/license-keys", brandToken, body, "Idempotency-Key", "k1")
	if a.status != 201 || a.header.Get("Idempotent-Replayed") != "true" || a.body != string(stored) {
		t.Fatalf("replayed success: %d %q %s", a.status, a.header.Get("Idempotent-Replayed"), a.body)
	}
	next = &licensing.Replay{Err: problem.New(problem.UnknownProduct, "licenses[0].product: unknown product \"x\"")}
	a = call(s, "POST", "/v1/license-keys", brandToken, body, "Idempotency-Key", "k1")
	if a.status != 422 || a.code != "unknown_product" || a.header.Get("Idempotent-Replayed") != "true" || a.header.Get("Content-Type") != ProblemContentType {
		t.Fatalf("replayed failure: %d %s", a.status, a.body)
	}
	next = &licensing.Replay{Body: []byte(`{}`)}
	a = call(s, "DELETE", "/v1/licenses/01900000-0000-7000-8000-000000000001/activations/01900000-0000-7000-8000-000000000002", brandToken, "", "Idempotency-Key", "k2")
	if a.status != 204 || a.body != "" || a.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed 204: %d %q", a.status, a.body)
	}
}

func TestIdempotencyFingerprintIgnoresJSONLayout(t *testing.T) {
	f := &fakeService{provision: func(licensing.Meta) (resource.LicenseKey, error) { return okKey, nil }}
	s := newTestServer(f)
	call(s, "POST", "/v1/license-keys", brandToken, `{"customer_email":"j@example.com","licenses":[{"product":"pro"}]}`, "Idempotency-Key", "k")
	a := f.lastMeta.Idempotency
	call(s, "POST", "/v1/license-keys", brandToken, "{ \"licenses\": [ {\"product\": \"pro\"} ],\n \"customer_email\": \"j@example.com\" }", "Idempotency-Key", "k")
	b := f.lastMeta.Idempotency
	call(s, "POST", "/v1/license-keys", brandToken, `{"customer_email":"j@example.com","licenses":[{"product":"lite"}]}`, "Idempotency-Key", "k")
	c := f.lastMeta.Idempotency
	if a == nil || a.Key != "k" || string(a.Fingerprint) != string(b.Fingerprint) || string(a.Fingerprint) == string(c.Fingerprint) {
		t.Fatalf("fingerprints: %x %x %x", a.Fingerprint, b.Fingerprint, c.Fingerprint)
	}
	call(s, "POST", "/v1/license-keys", brandToken, `{"customer_email":"j@example.com","licenses":[{"product":"pro"}]}`)
	if f.lastMeta.Idempotency != nil || f.lastMeta.Actor != "api_key:k1" || f.lastMeta.RequestID == "" {
		t.Fatalf("meta without Idempotency-Key: %+v", f.lastMeta)
	}
}

func TestStatusAnswerAndRequestIDs(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 20, 0, time.UTC) // 20 s after the fake's Now
	f := &fakeService{status: func(product, instance string) (resource.Status, error) {
		if product == "gone" {
			return resource.Status{}, problem.New(problem.LicenseNotFound, "license not found")
		}
		return resource.Status{LicenseKey: "K", Brand: "acme", Valid: true, Code: "valid",
			Licenses: []resource.StatusLicense{{Product: "pro", Status: "valid", Valid: true, ExpiresAt: &exp}}}, nil
	}}
	s := newTestServer(f)
	a := call(s, "GET", "/v1/public/acme/licenses/K/status", "", "", "X-Request-Id", "client-id-1")
	if a.status != 200 || a.header.Get("Cache-Control") != "max-age=20" || a.header.Get("X-Request-Id") != "client-id-1" {
		t.Fatalf("%d cc=%q rid=%q", a.status, a.header.Get("Cache-Control"), a.header.Get("X-Request-Id"))
	}
	a = call(s, "GET", "/v1/public/acme/licenses/K/status?product=gone", "", "", "X-Request-Id", "bad id")
	if a.status != 404 || a.code != "license_not_found" || a.header.Get("X-Request-Id") == "bad id" || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %s rid=%q", a.status, a.body, a.header.Get("X-Request-Id"))
	}
}

// Every kind has a status in the writer's table.
func TestEveryKindHasAStatus(t *testing.T) {
	for _, k := range problem.Kinds() {
		if _, ok := statusOf[k]; !ok {
			t.Errorf("kind %s has no status", k)
		}
	}
}
