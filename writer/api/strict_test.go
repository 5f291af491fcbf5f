package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/licensing"
)

// TestStrictInput drives each class of API.md's strict-input rules through the transport
// and checks the contract answer, that it is problem+json with X-Request-Id, and that
// nothing reached the domain (nothing can have been written).
func TestStrictInput(t *testing.T) {
	f := &fakeService{provision: func(licensing.Meta) (resource.LicenseKey, error) { return okKey, nil }}
	s := newTestServer(f)
	good := `{"customer_email":"j@example.com","licenses":[{"product":"pro"}]}`
	type req struct {
		method, target, body string
		hdr                  http.Header
	}
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = append(out[kv[i]], kv[i+1])
		}
		return out
	}
	brand := h("Authorization", "Bearer "+brandToken, "Content-Type", "application/json")
	with := func(base http.Header, kv ...string) http.Header {
		out := base.Clone()
		for i := 0; i+1 < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	for _, c := range []struct {
		name   string
		r      req
		status int
		code   string
		field  string
	}{
		{"media-type-text-plain", req{"POST", "/v1/license-keys", good, with(brand, "Content-Type", "text/plain")}, 415, "unsupported_media_type", ""},
		{"media-type-missing", req{"POST", "/v1/license-keys", good, h("Authorization", "Bearer "+brandToken)}, 415, "unsupported_media_type", ""},
		{"media-type-other-charset", req{"POST", "/v1/license-keys", good, with(brand, "Content-Type", "application/json; charset=latin1")}, 415, "unsupported_media_type", ""},
		{"media-type-extra-parameter", req{"POST", "/v1/license-keys", good, with(brand, "Content-Type", "application/json; v=2")}, 415, "unsupported_media_type", ""},
		{"field-name-other-case", req{"POST", "/v1/license-keys", `{"Customer_Email":"j@example.com","licenses":[]}`, brand}, 400, "invalid_request", "Customer_Email"},
		{"nested-field-name-other-case", req{"POST", "/v1/license-keys", `{"customer_email":"j@example.com","licenses":[{"Product":"pro"}]}`, brand}, 400, "invalid_request", "licenses[0].Product"},
		{"field-given-twice", req{"POST", "/v1/license-keys", `{"customer_email":"a@example.com","customer_email":"b@example.com","licenses":[]}`, brand}, 400, "invalid_request", "customer_email"},
		{"invalid-utf8-in-json", req{"POST", "/v1/license-keys", "{\"customer_email\":\"j\xff@example.com\",\"licenses\":[]}", brand}, 400, "invalid_request", "customer_email"},
		{"nul-in-json", req{"POST", "/v1/license-keys", `{"customer_email":"j\u0000@example.com","licenses":[{"product":"pro"}]}`, brand}, 400, "invalid_request", "customer_email"},
		{"control-char-in-nested-json", req{"POST", "/v1/license-keys", `{"customer_email":"j@example.com","licenses":[{"product":"p\u0007"}]}`, brand}, 400, "invalid_request", "licenses[0].product"},
		{"nul-in-path-segment", req{"GET", "/v1/license-keys/ABCDE%00FGHJK", "", brand}, 400, "invalid_request", "path"},
		{"invalid-utf8-in-path", req{"GET", "/v1/public/acme%ff/licenses/ABCDE/status", "", nil}, 400, "invalid_request", "path"},
		{"control-char-in-query", req{"GET", "/v1/licenses?customer_email=j%01@example.com", "", brand}, 400, "invalid_request", "customer_email"},
		{"invalid-utf8-in-query", req{"GET", "/v1/public/acme/licenses/ABCDE/status?instance=%C3%28", "", nil}, 400, "invalid_request", "instance"},
		{"invalid-utf8-in-idempotency-key", req{"POST", "/v1/license-keys", good, with(brand, "Idempotency-Key", "k\xff")}, 400, "invalid_request", "Idempotency-Key"},
		{"invalid-utf8-in-credential", req{"POST", "/v1/license-keys", good, with(brand, "Authorization", "Bearer lsk_\xfe")}, 400, "invalid_request", "Authorization"},
		{"two-credentials", req{"POST", "/v1/license-keys", good, h("Authorization", "Bearer "+brandToken, "Authorization", "Bearer "+opToken, "Content-Type", "application/json")}, 400, "invalid_request", "Authorization"},
		{"idempotency-key-256-characters", req{"POST", "/v1/license-keys", good, with(brand, "Idempotency-Key", strings.Repeat("é", 256))}, 400, "invalid_request", "Idempotency-Key"},
		{"date-past-9999-in-utc", req{"POST", "/v1/license-keys", `{"customer_email":"j@example.com","licenses":[{"product":"pro","expires_at":"9999-12-31T23:00:00-05:00"}]}`, brand}, 422, "invalid_request", "expires_at"},
		{"date-before-1970", req{"POST", "/v1/license-keys", `{"customer_email":"j@example.com","licenses":[{"product":"pro","expires_at":"1969-12-31T23:59:59Z"}]}`, brand}, 422, "invalid_request", "expires_at"},
		{"oversized-head", req{"GET", "/v1/products", "", with(brand, "X-Padding", strings.Repeat("p", MaxHeadBytes))}, 431, "invalid_request", "head"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r *http.Request
			if c.r.body != "" {
				r = httptest.NewRequest(c.r.method, c.r.target, strings.NewReader(c.r.body))
			} else {
				r = httptest.NewRequest(c.r.method, c.r.target, nil)
			}
			r.Header = c.r.hdr.Clone()
			if r.Header == nil {
				r.Header = http.Header{}
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			body := w.Body.String()
			if w.Code != c.status || !strings.Contains(body, `"code":"`+c.code+`"`) || !strings.Contains(body, c.field) {
				t.Fatalf("%d %s, want %d %s naming %q", w.Code, body, c.status, c.code, c.field)
			}
			if w.Header().Get("Content-Type") != ProblemContentType || w.Header().Get("X-Request-Id") == "" {
				t.Errorf("headers %v", w.Header())
			}
		})
	}
	if f.calls != 0 {
		t.Fatalf("%d calls reached the domain", f.calls)
	}
	// and what the rules allow goes through: charset=utf-8, a 255-character multi-byte
	// Idempotency-Key, a date in 9999
	for name, r := range map[string]req{
		"charset-utf-8": {"POST", "/v1/license-keys", good, with(brand, "Content-Type", "application/json; charset=UTF-8")},
		"idempotency-key-255-multi-byte-characters": {"POST", "/v1/license-keys", good, with(brand, "Idempotency-Key", strings.Repeat("é", 255))},
		"date-in-9999": {"POST", "/v1/license-keys", `{"customer_email":"j@example.com","licenses":[{"product":"pro","expires_at":"9999-12-31T23:59:59Z"}]}`, brand},
	} {
		req := httptest.NewRequest(r.method, r.target, strings.NewReader(r.body))
		req.Header = r.hdr.Clone()
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != 201 {
			t.Errorf("%s: %d %s, want 201", name, w.Code, w.Body)
		}
	}
}
