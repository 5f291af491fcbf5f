package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestConvergence: after each of 200 writer changes (suspend, resume, renew, activate),
// both edges answer the new state within 1 s (invariant 7).
func TestConvergence(t *testing.T) {
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "conv", "pro")
	e1 := w.edge(t, w.edgeConfig("edge-1", wr.base))
	e2 := w.edge(t, w.edgeConfig("edge-2", wr.base))
	k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro"})
	lic := k.Licenses[0]
	key := k.Key

	// warm both edges: every check from now on starts from a cached answer
	// (the new key may be unknown to the replica for a moment: its creation event fixes that)
	for _, e := range []*edge{e1, e2} {
		eventually(t, time.Second, "new key visible on "+e.cfg.NodeID, func() (bool, string) {
			s := e.mustStatus(t, "conv", key, "")
			return s.HTTP == 200 && s.Code == "valid", string(s.Raw)
		})
	}

	type want struct {
		status  string
		expires string
		seats   int
	}
	cur := want{status: "valid", seats: 0}
	var lat []time.Duration
	renewBase := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	const changes = 200
	for i := range changes {
		switch i % 4 {
		case 0:
			wr.must(t, 200, "POST", "/v1/licenses/"+lic.ID+"/suspend", apiKey, nil)
			cur.status = "suspended"
		case 1:
			wr.must(t, 200, "POST", "/v1/licenses/"+lic.ID+"/resume", apiKey, nil)
			cur.status = "valid"
		case 2:
			exp := renewBase.Add(time.Duration(i) * time.Hour)
			wr.must(t, 200, "POST", "/v1/licenses/"+lic.ID+"/renew", apiKey, map[string]any{"expires_at": exp})
			cur.expires = exp.Format(time.RFC3339)
		case 3:
			wr.must(t, 201, "POST", "/v1/public/conv/activations", "", map[string]any{
				"license_key": key, "product": "pro", "instance": fmt.Sprintf("site-%d.example.com", i)})
			cur.seats++
		}
		committed := time.Now()
		deadline := committed.Add(time.Second)
		pending := []*edge{e1, e2}
		last := map[string]string{}
		for len(pending) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("change %d (%+v) not visible within 1s on %d edge(s); last answers: %v", i, cur, len(pending), last)
			}
			pending = slices.DeleteFunc(pending, func(e *edge) bool {
				s, err := e.status("conv", key, "")
				if err != nil {
					last[e.cfg.NodeID] = err.Error()
					return false
				}
				if s.HTTP != 200 || len(s.Licenses) != 1 {
					last[e.cfg.NodeID] = string(s.Raw)
					return false
				}
				l := s.Licenses[0]
				exp := ""
				if l.ExpiresAt != nil {
					exp = l.ExpiresAt.UTC().Format(time.RFC3339)
				}
				got := want{status: l.Status, expires: exp, seats: l.SeatsUsed}
				if got != cur {
					last[e.cfg.NodeID] = fmt.Sprintf("%+v (v%d, %s)", got, s.Version, s.Tier)
					return false
				}
				lat = append(lat, time.Since(committed))
				return true
			})
		}
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	t.Logf("convergence over %d changes x 2 edges: p50 %v, p99 %v, max %v", changes, p(.50), p(.99), lat[len(lat)-1])
	for _, e := range []*edge{e1, e2} {
		if n := e.metric(t, "license_edge_invalidations_applied_total"); n < changes {
			t.Errorf("%s applied %v invalidations, want >= %d", e.cfg.NodeID, n, changes)
		}
	}
}
