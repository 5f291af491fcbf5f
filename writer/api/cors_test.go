package api

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/cors"
	"github.com/licensing/licensing/internal/ratelimit"
	"github.com/licensing/licensing/shared/resource"
	"github.com/prometheus/client_golang/prometheus"
)

const docsOrigin = "http://127.0.0.2:8080"

// corsServer allows docsOrigin, with rate limits whose unauthorized budget is already
// spent after one failed authentication.
func corsServer(t *testing.T, f *fakeService) *Server {
	t.Helper()
	origins, err := cors.Parse(docsOrigin)
	if err != nil {
		t.Fatal(err)
	}
	l := DefaultLimits()
	l.Limiter = ratelimit.New(nil, ratelimit.Config{}, slog.New(slog.DiscardHandler), nil)
	l.Unauthorized = ratelimit.Policy{Name: "unauthorized", Rate: 1, Period: time.Hour, Burst: 1}
	return New(f, Config{OperatorToken: opToken, StatusMaxAge: time.Minute, CORS: origins, Limits: &l},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry(), prometheus.NewRegistry())
}

func TestPreflightAnsweredBeforeAuthLimitsAndMediaType(t *testing.T) {
	f := &fakeService{}
	s := corsServer(t, f)
	// spend the unauthorized budget: a credentialed request is now refused with 429
	call(s, "GET", "/v1/products", "wrong", "")
	if a := call(s, "GET", "/v1/products", "wrong", ""); a.status != http.StatusTooManyRequests {
		t.Fatalf("setup: budget not spent: %d", a.status)
	}
	cases := []struct {
		name, origin, target, method string
		allowed                      bool
	}{
		{"preflight-204-brand-endpoint", docsOrigin, "/v1/products", "GET", true},
		{"preflight-204-post-with-json-body-rule", docsOrigin, "/v1/license-keys", "POST", true},
		{"preflight-204-public-endpoint", docsOrigin, "/v1/public/acme/activations", "POST", true},
		{"preflight-204-unknown-path", docsOrigin, "/nowhere", "GET", true},
		{"preflight-other-origin-204-without-allow", "http://evil.test", "/v1/products", "GET", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// a preflight carries no credentials; the browser asks about them
			a := call(s, "OPTIONS", c.target, "", "", "Origin", c.origin, "Access-Control-Request-Method", c.method,
				"Access-Control-Request-Headers", "authorization,content-type,idempotency-key",
				"Content-Type", "text/plain")
			if a.status != http.StatusNoContent || a.body != "" {
				t.Fatalf("status %d body %q", a.status, a.body)
			}
			if a.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			got := a.header.Get("Access-Control-Allow-Origin")
			if !c.allowed {
				if got != "" || a.header.Get("Access-Control-Allow-Methods") != "" {
					t.Fatalf("refused origin got CORS headers: %v", a.header)
				}
				return
			}
			if got != docsOrigin || a.header.Get("Access-Control-Allow-Methods") != cors.AllowMethods ||
				a.header.Get("Access-Control-Allow-Headers") != cors.AllowHeaders || a.header.Get("Access-Control-Max-Age") == "" {
				t.Fatalf("preflight headers: %v", a.header)
			}
		})
	}
	if f.calls != 0 {
		t.Fatalf("a preflight reached the domain %d times", f.calls)
	}
}

func TestPlainOptionsIsNotAPreflight(t *testing.T) {
	s := corsServer(t, &fakeService{})
	// no Access-Control-Request-Method: an ordinary OPTIONS, routed as before (405)
	if a := call(s, "OPTIONS", "/v1/products", "", "", "Origin", docsOrigin); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("status %d, want 405", a.status)
	}
}

func TestActualAnswersCarryCORSForAllowedOrigins(t *testing.T) {
	f := &fakeService{status: func(string, string) (resource.Status, error) {
		return resource.Status{LicenseKey: "ABCDE-FGHJK-MNPQR-STUVW-XYZ23"}, nil
	}}
	s := corsServer(t, f)
	target := "/v1/public/acme/licenses/ABCDE-FGHJK-MNPQR-STUVW-XYZ23/status"
	a := call(s, "GET", target, "", "", "Origin", docsOrigin)
	if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != docsOrigin ||
		a.header.Get("Access-Control-Expose-Headers") != cors.ExposeHeaders || !varies(a.header, "Origin") || !varies(a.header, "Accept") {
		t.Fatalf("allowed origin: %d %v", a.status, a.header)
	}
	// errors are readable too: a page shows the problem+json of a 401
	if a := call(s, "GET", "/v1/products", "wrong", "", "Origin", docsOrigin); a.status != 401 ||
		a.header.Get("Access-Control-Allow-Origin") != docsOrigin {
		t.Fatalf("401 for an allowed origin: %d %v", a.status, a.header)
	}
	if a := call(s, "GET", target, "", "", "Origin", "http://evil.test"); a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin got Allow-Origin: %v", a.header)
	}
	// the default configuration sends no CORS header at all
	if a := call(newTestServer(f), "GET", target, "", "", "Origin", docsOrigin); a.header.Get("Access-Control-Allow-Origin") != "" ||
		varies(a.header, "Origin") {
		t.Fatalf("default config sent CORS headers: %v", a.header)
	}
}

func varies(h http.Header, name string) bool {
	for _, v := range h.Values("Vary") {
		if v == name {
			return true
		}
	}
	return false
}
