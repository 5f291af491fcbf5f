package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	writerapp "github.com/licensing/licensing/writer/app"
)

// TestPostgresUnreachableIs503: while the writer cannot reach Postgres every answer that
// needs it is 503 unavailable with Retry-After — never 500 internal, which tells clients
// not to retry — on brand, operator and public endpoints, directly and relayed by an
// edge; readiness fails; a metric counts it; an idempotent POST refused meanwhile runs
// once Postgres is back.
func TestPostgresUnreachableIs503(t *testing.T) {
	w := newWorld(t)
	dbURL, pg := viaProxy(t, w.db.AppURL)
	wr := w.writer(func(c *writerapp.Config) { c.DatabaseURL = dbURL })
	apiKey := wr.brand("down", "pro")
	k := wr.licenseKey(apiKey, map[string]any{"product": "pro"})
	e := w.edge(w.edgeConfig("edge-down", wr.base))

	pg.Stop()
	body := map[string]any{"customer_email": "x@example.com", "licenses": []map[string]any{{"product": "pro"}}}
	act := map[string]any{"license_key": k.Key, "product": "pro", "instance": "down.example"}
	for _, c := range []struct {
		name                string
		cl                  *client
		method, path, token string
		body                any
		hdr                 []string
	}{
		{"brand-get", wr, "GET", "/v1/products", apiKey, nil, nil},
		{"brand-post-idempotent", wr, "POST", "/v1/license-keys", apiKey, body, []string{"Idempotency-Key", "during-outage"}},
		{"operator", wr, "GET", "/v1/brands", operatorToken, nil, nil},
		{"public-activation", wr, "POST", "/v1/public/down/activations", "", act, nil},
		{"public-activation-relayed-by-an-edge", e.client, "POST", "/v1/public/down/activations", "", act, nil},
		{"public-status", wr, "GET", "/v1/public/down/licenses/" + k.Key + "/status", "", nil, nil},
		{"readyz", wr, "GET", "/readyz", "", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.cl.call(c.method, c.path, c.token, c.body, c.hdr...)
			if r.Status != 503 || r.Code() != "unavailable" {
				t.Fatalf("%d %s, want 503 unavailable", r.Status, r.Body)
			}
			if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
			}
		})
	}
	m := wr.call("GET", "/metrics", "", nil)
	if !strings.Contains(string(m.Body), "license_writer_db_unavailable_total") ||
		strings.Contains(string(m.Body), "license_writer_db_unavailable_total 0\n") {
		t.Fatal("license_writer_db_unavailable_total did not count the outage")
	}

	pg.Start()
	eventually(t, 10*time.Second, "the writer serves again", func() (bool, string) {
		r, err := wr.do("GET", "/readyz", "", nil)
		return err == nil && r.Status == 200, string(r.Body)
	})
	// the claim of the refused request was released: the retry takes effect, once
	r := wr.must(201, "POST", "/v1/license-keys", apiKey, body, "Idempotency-Key", "during-outage")
	again := wr.must(201, "POST", "/v1/license-keys", apiKey, body, "Idempotency-Key", "during-outage")
	if again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(r.Body) {
		t.Fatalf("replay: %s", again.Body)
	}
}
