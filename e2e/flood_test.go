package e2e

import (
	"sync"
	"testing"
	"time"

	"github.com/licensing/licensing/shared/license"
)

// flood sends every key n times from conc goroutines and returns the HTTP status counts.
func flood(t *testing.T, e *edge, brand string, keys []string, n, conc int) map[int]int {
	t.Helper()
	work := make(chan string)
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for k := range work {
				s, err := e.status(brand, k, "")
				mu.Lock()
				if err != nil {
					counts[-1]++
				} else {
					counts[s.HTTP]++
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		for _, k := range keys {
			work <- k
		}
	}
	close(work)
	wg.Wait()
	return counts
}

// TestUnknownKeyFloodIsBounded: random unknown keys reach Postgres a bounded number of
// times (invariant 9): impossible keys never, repeated unknown keys once (coalescing and
// negative caching), and distinct unknown keys no faster than the backend read limit.
func TestUnknownKeyFloodIsBounded(t *testing.T) {
	w := newWorld(t)
	wr := w.writer(t)
	wr.brand(t, "flood", "pro")

	t.Run("repeated-unknown-keys-read-once", func(t *testing.T) {
		cfg := w.edgeConfig("edge-flood", wr.base)
		// what is measured is coalescing and negative caching, not their time windows: on a
		// loaded machine (-race, 2 cores) the flood can outlast the 2 s negative TTL, and a
		// relay heartbeat (every 250 ms) can be applied more than the default 1 s after the
		// last, and either would make a 404 be read again
		cfg.NegativeTTL, cfg.StreamCurrentWithin = time.Minute, 5*time.Second
		e := w.edge(t, cfg)
		eventually(t, 5*time.Second, "a relay heartbeat applied", func() (bool, string) { return e.node.Events.Current(), "" })
		keys := make([]string, 100)
		for i := range keys {
			keys[i] = license.NewKey()
		}
		counts := flood(t, e, "flood", keys, 20, 32)
		if counts[404] != len(keys)*20 {
			t.Fatalf("answers %v, want %d x 404", counts, len(keys)*20)
		}
		t.Logf("l1 hit %v miss %v, l2 hit %v miss %v, l2 errors %v", e.metric(t, "license_edge_cache_lookups_total", "tier", "l1", "result", "hit"),
			e.metric(t, "license_edge_cache_lookups_total", "tier", "l1", "result", "miss"), e.metric(t, "license_edge_cache_lookups_total", "tier", "l2", "result", "hit"),
			e.metric(t, "license_edge_cache_lookups_total", "tier", "l2", "result", "miss"), e.metric(t, "license_edge_backend_errors_total", "tier", "l2"))
		if reads := e.node.L3.Reads(); reads > 2*int64(len(keys)) { // the replica, then the primary, once per key
			t.Fatalf("%d Postgres reads for %d unknown keys requested 20 times each", reads, len(keys))
		} else {
			t.Logf("%d requests for %d unknown keys: %d Postgres reads", len(keys)*20, len(keys), reads)
		}
		before := e.node.L3.Reads()
		bad := []string{"not-a-key", "ABCDE-FGHJK-MNPQR-STUVW-XYZ2O", "abc", "ABCDE-FGHJK-MNPQR-STUVW-XYZ2"}
		counts = flood(t, e, "flood", bad, 50, 16)
		if counts[404] != len(bad)*50 || e.node.L3.Reads() != before {
			t.Fatalf("impossible keys: answers %v, reads %d -> %d", counts, before, e.node.L3.Reads())
		}
	})
	t.Run("distinct-unknown-keys-rate-limited", func(t *testing.T) {
		cfg := w.edgeConfig("edge-flood-limited", wr.base)
		cfg.BackendRate, cfg.BackendBurst = 50, 20
		e := w.edge(t, cfg)
		keys := make([]string, 2000)
		for i := range keys {
			keys[i] = license.NewKey()
		}
		start := time.Now()
		counts := flood(t, e, "flood", keys, 1, 32)
		elapsed := time.Since(start)
		reads := e.node.L3.Reads()
		bound := int64(20 + 50*elapsed.Seconds() + 1)
		t.Logf("%d distinct unknown keys in %v: answers %v, %d Postgres reads (bound %d)", len(keys), elapsed, counts, reads, bound)
		if reads > bound {
			t.Fatalf("%d Postgres reads, bound %d", reads, bound)
		}
		if counts[404]+counts[503] != len(keys) {
			t.Fatalf("answers %v: want only 404 and 503", counts)
		}
		if e.metric(t, "license_edge_rate_limited_total", "reason", "backend") == 0 {
			t.Error("license_edge_rate_limited_total{reason=backend} not counted")
		}
	})
}
