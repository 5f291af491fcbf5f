package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/writer/openapi/openapitest"
)

// TestEdgeAnswersLikeTheWriter: for the same questions the edge's status answers equal
// the writer's (API.md; only checked_at differs), match the OpenAPI document, and the
// relayed writes come back from the writer unchanged.
func TestEdgeAnswersLikeTheWriter(t *testing.T) {
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "alike", "pro", "lite")
	otherKey := wr.brand(t, "other", "pro")
	e := w.edge(t, w.edgeConfig("edge-alike", wr.base))
	validator, err := openapitest.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	validate := func(t *testing.T, method, path string, r resp) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://edge"+path, nil)
		if err := validator.ValidateResponse(req, r.Status, r.Header, r.Body); err != nil {
			t.Errorf("%s %s: edge response does not match the OpenAPI document: %v\n%s", method, path, err, r.Body)
		}
	}

	exp := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
	k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro", "seat_limit": 2, "expires_at": exp},
		map[string]any{"product": "lite"})
	other := wr.licenseKey(t, otherKey, map[string]any{"product": "pro"})

	// relayed activation: same status and body as the writer gives, request id echoed
	act := map[string]any{"license_key": k.Key, "product": "pro", "instance": "https://www.Site-1.example.com/"}
	r := e.must(t, 201, "POST", "/v1/public/alike/activations", "", act, "X-Request-Id", "req-edge-1")
	if r.Header.Get("X-Request-Id") != "req-edge-1" {
		t.Errorf("relayed X-Request-Id %q", r.Header.Get("X-Request-Id"))
	}
	validate(t, "POST", "/v1/public/alike/activations", r)
	again := e.must(t, 200, "POST", "/v1/public/alike/activations", "", act)
	direct := wr.must(t, 200, "POST", "/v1/public/alike/activations", "", act)
	if string(again.Body) != string(direct.Body) {
		t.Errorf("relayed body differs from the writer's:\nedge   %s\nwriter %s", again.Body, direct.Body)
	}
	for _, c := range []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"activate-201-second-seat", "/v1/public/alike/activations",
			map[string]any{"license_key": k.Key, "product": "pro", "instance": "site-2.example.com"}, 201, ""},
		{"activate-409-seat-limit", "/v1/public/alike/activations",
			map[string]any{"license_key": k.Key, "product": "pro", "instance": "site-3.example.com"}, 409, "seat_limit_reached"},
		{"activate-201-dev-instance-on-a-full-license", "/v1/public/alike/activations",
			map[string]any{"license_key": k.Key, "product": "pro", "instance": "http://site-3.local/"}, 201, ""},
		{"activate-404-foreign-key", "/v1/public/alike/activations",
			map[string]any{"license_key": other.Key, "product": "pro", "instance": "x.example.com"}, 404, "license_not_found"},
		{"activate-422-empty-instance", "/v1/public/alike/activations",
			map[string]any{"license_key": k.Key, "product": "pro", "instance": " "}, 422, "invalid_request"},
		{"deactivate-200", "/v1/public/alike/deactivations",
			map[string]any{"license_key": k.Key, "product": "pro", "instance": "site-2.example.com"}, 200, ""},
		{"deactivate-404-not-active", "/v1/public/alike/deactivations",
			map[string]any{"license_key": k.Key, "product": "pro", "instance": "site-2.example.com"}, 404, "activation_not_found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.call(t, "POST", c.path, "", c.body)
			if r.Status != c.status || r.Code() != c.code {
				t.Fatalf("%d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
			validate(t, "POST", c.path, r)
		})
	}
	if r := e.call(t, "POST", "/v1/public/alike/activations", "", strings.Repeat("x", 70<<10)); r.Status != 400 || r.Code() != "invalid_request" {
		t.Errorf("oversized body: %d %s", r.Status, r.Body)
	}

	base := "/v1/public/alike/licenses/" + k.Key + "/status"
	for _, c := range []struct{ name, query string }{
		{"any-license", ""},
		{"product", "product=pro"},
		{"product-not-licensed", "product=nope"},
		{"instance-activated-normalized", "product=pro&instance=http://site-1.example.com"},
		{"instance-not-activated", "product=pro&instance=elsewhere.example.com"},
		{"instance-without-product", "instance=site-1.example.com"},
		{"development-instance", "product=pro&instance=site-3.local"},
		{"lower-case-key", "product=lite"},
	} {
		t.Run("status-"+c.name, func(t *testing.T) {
			path := base
			if c.name == "lower-case-key" {
				path = "/v1/public/alike/licenses/" + strings.ToLower(k.Key) + "/status"
			}
			if c.query != "" {
				path += "?" + c.query
			}
			var fromEdge, fromWriter resp
			eventually(t, time.Second, "edge agrees with writer", func() (bool, string) {
				fromEdge = e.call(t, "GET", path, "", nil)
				fromWriter = wr.call(t, "GET", path, "", nil)
				a, b := withoutCheckedAt(t, fromEdge.Body), withoutCheckedAt(t, fromWriter.Body)
				return fromEdge.Status == fromWriter.Status && a == b, "edge " + a + "\nwriter " + b
			})
			validate(t, "GET", path, fromEdge)
			if fromEdge.Status == 200 {
				if cc := fromEdge.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "max-age=") {
					t.Errorf("Cache-Control %q", cc)
				}
			}
		})
	}
	for _, c := range []struct{ name, path string }{
		{"foreign-key-404", "/v1/public/alike/licenses/" + other.Key + "/status"},
		{"unknown-brand-404", "/v1/public/nobody/licenses/" + k.Key + "/status"},
		{"malformed-key-404", "/v1/public/alike/licenses/not-a-key/status"},
	} {
		t.Run("status-"+c.name, func(t *testing.T) {
			r := e.call(t, "GET", c.path, "", nil)
			if r.Status != 404 || r.Code() != "license_not_found" || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			validate(t, "GET", c.path, r)
		})
	}
	t.Run("status-development-instance-through-every-tier", func(t *testing.T) {
		// the writer's and the edge's answers agree (above); this one says development, from
		// the edge's cached entry as from a fresh read
		for range 2 {
			var st struct {
				Instance struct{ Activated, Development bool }
			}
			if err := json.Unmarshal(e.must(t, 200, "GET", base+"?product=pro&instance=site-3.local", "", nil).Body, &st); err != nil {
				t.Fatal(err)
			}
			if !st.Instance.Activated || !st.Instance.Development {
				t.Fatalf("edge status of a development instance: %+v", st.Instance)
			}
		}
	})
	t.Run("status-400-instance-too-long", func(t *testing.T) {
		r := e.call(t, "GET", base+"?instance="+strings.Repeat("a", 300), "", nil)
		if r.Status != 400 || r.Code() != "invalid_request" {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("service-endpoints", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := e.call(t, "GET", p, "", nil); r.Status != 200 {
				t.Errorf("%s: %d %s", p, r.Status, r.Body)
			}
		}
		r := e.call(t, "GET", "/metrics", "", nil)
		for _, m := range []string{"license_edge_cache_lookups_total", "license_edge_invalidation_lag_seconds", "license_edge_request_duration_seconds",
			"license_edge_fills_refused_stale_total", "license_edge_stale_answers_total", "license_edge_invalidations_applied_total"} {
			if !strings.Contains(string(r.Body), m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
		if strings.Contains(string(r.Body), k.Key) {
			t.Error("/metrics contains a license key")
		}
	})
}

// withoutCheckedAt renders a JSON body with checked_at and request_id removed.
func withoutCheckedAt(t *testing.T, b []byte) string {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return string(b)
	}
	delete(m, "checked_at")
	delete(m, "request_id")
	out, _ := json.Marshal(m)
	return string(out)
}
