package e2e

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for the edge.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestExpiryWithoutEvent: a license whose expires_at passes while it is cached reads
// `expired` on every tier without any event (invariant 8), and Cache-Control never lets
// a client keep a `valid` answer past expires_at.
func TestExpiryWithoutEvent(t *testing.T) {
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "exp", "pro")
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro", "expires_at": expires})
	// with no events and a frozen clock a not-yet-replicated key would stay negatively cached
	waitReplay(t, w.db.AppURL, w.db.ReplicaAppURL)

	for _, tc := range []struct {
		name     string
		l1       bool
		redis    bool
		wantTier string
	}{
		{"l1-serves-expired", true, true, "l1"},
		{"l2-serves-expired", false, true, "l2"},
		{"replica-serves-expired", false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{}
			clock.Set(time.Now())
			cfg := w.edgeConfig("edge-"+tc.name, wr.base)
			cfg.Now = clock.Now
			// nothing is revalidated during the test: only serve-time evaluation can expire it
			cfg.Ceiling, cfg.StatusMaxAge = 24*time.Hour, time.Hour
			cfg.NATSURL = "off" // no event can reach this edge
			if !tc.l1 {
				cfg.L1Bytes = 0
			}
			if !tc.redis {
				cfg.RedisAddr = "off"
			}
			e := w.edge(t, cfg)
			var s statusOf
			eventually(t, time.Second, "valid at first", func() (bool, string) {
				s = e.mustStatus(t, "exp", k.Key, "product=pro")
				return s.HTTP == 200 && s.Code == "valid", string(s.Raw)
			})
			// fill the tier under test, then move to just before expiry
			clock.Set(expires.Add(-30 * time.Second))
			var r resp
			for range 10 {
				if tc.l1 {
					e.node.L1.Wait() // the fill's Set has landed, or was dropped
				}
				r = e.call(t, "GET", "/v1/public/exp/licenses/"+k.Key+"/status?product=pro", "", nil)
				if tc.wantTier == "" || r.Header.Get("X-Cache") == tc.wantTier {
					break
				}
				// ristretto may drop a Set: the next miss fills again
			}
			if tc.wantTier != "" && r.Header.Get("X-Cache") != tc.wantTier {
				t.Fatalf("30s before expiry: answered by %q, want %q", r.Header.Get("X-Cache"), tc.wantTier)
			}
			if cc := r.Header.Get("Cache-Control"); cc != "max-age=30" {
				t.Errorf("30s before expiry: Cache-Control %q, want max-age=30", cc)
			}
			if !strings.Contains(string(r.Body), `"code":"valid"`) {
				t.Fatalf("30s before expiry: %s", r.Body)
			}
			clock.Set(expires.Add(time.Second))
			s = e.mustStatus(t, "exp", k.Key, "product=pro")
			if s.HTTP != 200 || s.Code != "expired" || s.Valid || s.Licenses[0].Status != "expired" {
				t.Fatalf("after expiry: %s", s.Raw)
			}
			if tc.wantTier != "" && s.Tier != tc.wantTier {
				t.Fatalf("after expiry: answered by %q, want %q (the cached entry)", s.Tier, tc.wantTier)
			}
		})
	}
}
