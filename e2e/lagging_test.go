package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/dbtest"
)

// envLaggingReplica is the superuser URL of a second streaming replica of the test
// primary that applies WAL 300 ms late (deploy/local/services.sh, test profile).
const envLaggingReplica = "LICENSE_TEST_LAGGING_REPLICA_URL"

// TestLaggingReplicaNeverGoesBack: edges reading from a replica 300 ms behind never answer
// an older version of a key after a newer one, across a loop of changes and reads
// (invariant 7): a fill older than a version the edge knows is not cached or served.
func TestLaggingReplicaNeverGoesBack(t *testing.T) {
	dbtest.Env(t, envLaggingReplica)
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "lag", "pro")

	full := w.edgeConfig("edge-full", wr.base)
	full.ReplicaURL = w.db.LaggingEdgeURL
	noL1 := full
	noL1.NodeID, noL1.L1Bytes = "edge-no-l1", 0
	noL1.Registry = nil
	edges := []*edge{w.edge(t, full), w.edge(t, withRegistry(noL1))}

	k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro"})
	lic := k.Licenses[0]
	seen := map[string]int64{}
	check := func(what string) {
		for _, e := range edges {
			s, err := e.status("lag", k.Key, "")
			if err != nil {
				t.Fatalf("%s: %s: %v", what, e.cfg.NodeID, err)
			}
			if s.HTTP == 404 {
				if seen[e.cfg.NodeID] > 0 {
					t.Fatalf("%s: %s answered 404 after version %d", what, e.cfg.NodeID, seen[e.cfg.NodeID])
				}
				continue
			}
			if s.HTTP != 200 {
				t.Fatalf("%s: %s: %d %s", what, e.cfg.NodeID, s.HTTP, s.Raw)
			}
			if s.Version < seen[e.cfg.NodeID] {
				t.Fatalf("%s: %s went back from version %d to %d (tier %s)", what, e.cfg.NodeID, seen[e.cfg.NodeID], s.Version, s.Tier)
			}
			seen[e.cfg.NodeID] = s.Version
		}
	}
	const changes = 40
	for i := range changes {
		op := "suspend"
		if i%2 == 1 {
			op = "resume"
		}
		wr.must(t, 200, "POST", "/v1/licenses/"+lic.ID+"/"+op, apiKey, nil)
		// read continuously for a while after each change: the replica is 300 ms behind
		until := time.Now().Add(150 * time.Millisecond)
		for n := 0; time.Now().Before(until); n++ {
			check(fmt.Sprintf("change %d read %d", i, n))
		}
	}
	// the final state is the writer's
	want := int64(1 + changes) // created at 1, one version per change
	for _, e := range edges {
		eventually(t, time.Second, "final version on "+e.cfg.NodeID, func() (bool, string) {
			s := e.mustStatus(t, "lag", k.Key, "")
			return s.Version == want, fmt.Sprintf("version %d", s.Version)
		})
		check("final")
		refused := e.metric(t, "license_edge_fills_refused_stale_total")
		advanced := e.metric(t, "license_edge_states_advanced_total")
		t.Logf("%s: fills refused as stale %v, states advanced by events %v, replica reads %v, primary reads %v", e.cfg.NodeID,
			refused, advanced, e.metric(t, "license_edge_cache_lookups_total", "tier", "replica"), e.metric(t, "license_edge_cache_lookups_total", "tier", "primary"))
		switch {
		case e.node.L1 == nil && refused == 0:
			// without L1 every read goes below: the lagging replica must have been refused
			t.Errorf("%s never refused a lagging fill: the test did not exercise the lag", e.cfg.NodeID)
		case e.node.L1 != nil && refused == 0 && advanced == 0:
			// with L1 each change's event moves the cached state forward without a read
			t.Errorf("%s neither refused a lagging fill nor advanced its state from events", e.cfg.NodeID)
		}
	}
}
