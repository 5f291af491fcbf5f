package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/edge/app"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/retry"
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
	wr := w.writer(t, func(c *writerapp.Config) {
		c.DatabaseURL = dbURL
		c.RelayRetry = retry.Policy{Initial: 30 * time.Second, Max: 30 * time.Second}
	})
	apiKey := wr.brand(t, "down", "pro")
	k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro"})
	e := w.edge(t, w.edgeConfig("edge-down", wr.base))

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
			r := c.cl.call(t, c.method, c.path, c.token, c.body, c.hdr...)
			if r.Status != 503 || r.Code() != "unavailable" {
				t.Fatalf("%d %s, want 503 unavailable", r.Status, r.Body)
			}
			if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
			}
		})
	}
	m := wr.call(t, "GET", "/metrics", "", nil)
	if !strings.Contains(string(m.Body), "license_writer_db_unavailable_total") ||
		strings.Contains(string(m.Body), "license_writer_db_unavailable_total 0\n") {
		t.Fatal("license_writer_db_unavailable_total did not count the outage")
	}

	// the relay failed while Postgres was away and waits 30 s before its next try (its
	// retry policy for this test): the first request that reaches Postgres again must wake it
	pg.Start(t)
	eventually(t, 10*time.Second, "the writer serves again", func() (bool, string) {
		r, err := wr.do("GET", "/readyz", "", nil)
		return err == nil && r.Status == 200, string(r.Body)
	})
	back := time.Now()
	fresh := wr.licenseKey(t, apiKey, map[string]any{"product": "pro"})
	admin, err := pgx.Connect(context.Background(), w.db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	eventually(t, 10*time.Second, "the outbox drained after Postgres returned", func() (bool, string) {
		var unsent int
		err := admin.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE sent_at IS NULL").Scan(&unsent)
		return err == nil && unsent == 0, fmt.Sprintf("%d unsent (%v)", unsent, err)
	})
	if since := time.Since(back); since > 2*time.Second {
		t.Fatalf("the event of key %s went out %v after Postgres returned: the relay waited out its backoff", fresh.Key, since)
	}
	t.Logf("events of the first write after the outage published %v after Postgres returned", time.Since(back).Round(time.Millisecond))
	// the claim of the refused request was released: the retry takes effect, once
	r := wr.must(t, 201, "POST", "/v1/license-keys", apiKey, body, "Idempotency-Key", "during-outage")
	again := wr.must(t, 201, "POST", "/v1/license-keys", apiKey, body, "Idempotency-Key", "during-outage")
	if again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(r.Body) {
		t.Fatalf("replay: %s", again.Body)
	}
}

// TestAcknowledgedKeyIsNeverAnswered404: right after the writer's 201 for a new key, both
// edges answer 200 within a second and never 404 — with the outbox relay healthy, slow
// (events and heartbeats late), and stopped (no event at all). A "no such key" from the
// replica, which may not have replayed the key yet, is confirmed on the primary; an
// unknown key is answered from memory only while the edge's stream is current (a recent
// relay heartbeat), which the last part checks by counting Postgres reads.
func TestAcknowledgedKeyIsNeverAnswered404(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  func(*writerapp.Config)
	}{
		{"relay-healthy", func(*writerapp.Config) {}},
		{"relay-slow", func(c *writerapp.Config) { c.RelayDelay = 1500 * time.Millisecond }},
		{"relay-stopped", func(c *writerapp.Config) { c.NoRelay = true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			wr := w.writer(t, c.cfg)
			apiKey := wr.brand(t, "ryw", "pro")
			// the edges read a replica that applies WAL 300 ms late: its "no such key" for a
			// key just acknowledged is what must not become a 404
			lagging := func(name string) app.Config {
				cfg := w.edgeConfig(name, wr.base)
				cfg.ReplicaURL = w.db.LaggingEdgeURL
				cfg.KeyFilter = "on" // a key not in the edge's filter yet is no 404 either
				return cfg
			}
			edges := []*edge{w.edge(t, lagging("edge-a")), w.edge(t, lagging("edge-b"))}
			for _, e := range edges { // warm: the brand is known, the edge has served something
				e.call(t, "GET", "/v1/public/ryw/licenses/"+license.NewKey()+"/status", "", nil)
				if c.name == "relay-healthy" {
					eventually(t, 5*time.Second, "a heartbeat applied", func() (bool, string) { return e.node.Events.Current(), "" })
				}
			}
			for i := range 3 {
				k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro"})
				acked := time.Now()
				// each edge polled on its own: a lookup of a key the edge's filter does not
				// hold yet waits for the stream's certification, and must not delay the other
				ok := make([]time.Duration, len(edges))
				got404 := make([]time.Duration, len(edges))
				var wg sync.WaitGroup
				for j, e := range edges {
					wg.Go(func() {
						for time.Since(acked) < 1200*time.Millisecond {
							st, err := e.status("ryw", k.Key, "product=pro")
							if err == nil && st.HTTP == 404 && got404[j] == 0 {
								got404[j] = time.Since(acked)
							}
							if err == nil && st.HTTP == 200 && ok[j] == 0 {
								ok[j] = time.Since(acked)
							}
							time.Sleep(5 * time.Millisecond) // the sampling interval of the 1.2 s watch (waits for nothing)
						}
					})
				}
				wg.Wait()
				for j, d := range got404 {
					if d != 0 {
						t.Fatalf("key %d: %s answered 404 %v after the writer's 201", i, edges[j].cfg.NodeID, d)
					}
				}
				for j, d := range ok {
					if d == 0 || d > time.Second {
						t.Fatalf("key %d: %s answered 200 only after %v", i, edges[j].cfg.NodeID, d)
					}
				}
			}
			// an unknown key: remembered only while heartbeats arrive
			e := edges[0]
			unknown := license.NewKey()
			e.call(t, "GET", "/v1/public/ryw/licenses/"+unknown+"/status", "", nil)
			before := e.node.L3.Reads()
			for range 3 {
				if r := e.call(t, "GET", "/v1/public/ryw/licenses/"+unknown+"/status", "", nil); r.Status != 404 {
					t.Fatalf("unknown key: %d", r.Status)
				}
			}
			reads := e.node.L3.Reads() - before
			current := e.node.Events.Current()
			if c.name == "relay-stopped" && (current || reads < 3) {
				t.Fatalf("without heartbeats: current %v, %d Postgres reads for 3 requests of an unknown key, want 3 or more", current, reads)
			}
			if c.name == "relay-healthy" && (!current || reads != 0) {
				t.Fatalf("with heartbeats: current %v, %d Postgres reads for a remembered unknown key", current, reads)
			}
		})
	}
}
