package sim

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/loadtest/chaos"
)

// TestShortSim is the shortened simulation of `make test`: three regions on loopback,
// every cross-region link through toxiproxy at 90 and 180 ms round trips, an 8 s
// partition of region A, region B's replica lagging 2 s, one of region B's edges killed,
// under load in both regions; every invariant checked. Its own Postgres (primary and two
// replicas streaming through the links), NATS hub and leaves, Redis, writer and edges on
// ports 31100–31138.
func TestShortSim(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three regions of real processes and runs load for about 40 s (-short)")
	}
	for _, tool := range []string{"redis-server", "nats-server"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, tool+" is not installed (deploy/local/deps.sh installs it)")
		}
	}
	if _, err := chaos.PGBinDir(); err != nil {
		missing(t, err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("+%5.1fs "+format, append([]any{time.Since(t0).Seconds()}, args...)...)
	}
	w, err := Start(ctx, Config{Dir: t.TempDir(), BasePort: 31100, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	o := ShortOptions()
	res, err := Run(ctx, w, o, logf)
	if err != nil {
		t.Fatal(err)
	}
	md := res.Markdown()
	t.Log("\n" + md)
	for _, c := range res.Checks {
		if !c.OK() {
			t.Errorf("check failed: %s: %s", c.Name, strings.Join(c.Failed, "; "))
		}
		if c.Checked == 0 {
			t.Errorf("check %q looked at nothing", c.Name)
		}
	}
	// the load ran in every region and scenario, at the edges and direct
	for _, rr := range res.Regions {
		for _, row := range res.Rows(rr) {
			if row.Checks == 0 || row.DirectChecks == 0 {
				t.Errorf("%s %s: %d status checks at the edges, %d direct: the load did not run", rr.Name, row.Scenario, row.Checks, row.DirectChecks)
			}
		}
		// the links' round trip is what a client calling the centre pays (at least the
		// RTT minus the jitter for one request: a connection reused)
		if base := res.Rows(rr)[0]; base.DirectP50 < rr.RTT-rr.Jitter {
			t.Errorf("%s: direct status p50 %v below the link's round trip %v: the proxy is not in the path", rr.Name, base.DirectP50, rr.RTT)
		}
	}
	// the partition acted: the partitioned region's activations were refused during it,
	// the other region's were not
	p := res.window("partition")
	for i, rr := range res.Regions {
		for _, row := range res.Rows(rr) {
			if row.Scenario != "partition" {
				continue
			}
			switch {
			case rr.Name == p.Region && (row.Act503 == 0 || row.Act2xx > row.Acts/2):
				t.Errorf("%s partitioned: %d activations answered 503, %d 2xx of %d", rr.Name, row.Act503, row.Act2xx, row.Acts)
			case rr.Name != p.Region && row.Act2xx == 0:
				t.Errorf("%s (not partitioned, region %d): no activation succeeded during the other's partition", rr.Name, i)
			}
		}
	}
	html := res.HTML()
	if !strings.Contains(html, "<svg") || !strings.Contains(html, "<polyline") {
		t.Error("the HTML report has no chart")
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "sim.html"), []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	if races := w.RaceReports(); len(races) > 0 {
		t.Errorf("data race in a process:\n%s", strings.Join(races, "\n"))
	}
}

// TestMonotonicCatchesRegression: the "no edge goes backwards" check fails on an edge that
// answered an older version after a newer one had been answered, and not on concurrent
// answers that overlap.
func TestMonotonicCatchesRegression(t *testing.T) {
	t0 := time.Now()
	e := func(target string, at, lat time.Duration, v int64) chaos.Entry {
		return chaos.Entry{Kind: "status", Target: target, Key: "K", Status: 200, Start: t0.Add(at), Latency: lat, Version: v}
	}
	ok := &RegionResult{Name: "r", Edge: []chaos.Entry{
		e("a", 0, 10*time.Millisecond, 3),
		e("a", 5*time.Millisecond, 20*time.Millisecond, 2), // overlaps the first: may be older
		e("a", 30*time.Millisecond, time.Millisecond, 3),
		e("b", 40*time.Millisecond, time.Millisecond, 1), // another edge: its own history
	}}
	if c := monotonic(ok); !c.OK() || c.Checked != 4 {
		t.Errorf("overlapping answers flagged: %+v", c)
	}
	bad := &RegionResult{Name: "r", Edge: append(ok.Edge, e("a", 50*time.Millisecond, time.Millisecond, 2))}
	if c := monotonic(bad); c.OK() {
		t.Error("an edge answering v2 after v3 was not flagged")
	}
}

func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}
