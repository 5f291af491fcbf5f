package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/app"
)

// TestDependencyLoss takes the edge's dependencies away one at a time and then all
// together (invariant 9): status checks for known keys keep being answered (marked stale
// when nothing could revalidate them), and a change made while NATS is down becomes
// visible within the revalidation ceiling.
func TestDependencyLoss(t *testing.T) {
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "deps", "pro")

	const ceiling = 2 * time.Second
	cfg := w.edgeConfig("edge-deps", "")
	cfg.Ceiling, cfg.NegativeTTL = ceiling, time.Second
	var redisP, replicaP, primaryP, writerP *proxy
	cfg.RedisAddr = newProxyFor(t, &redisP, w.redis)
	cfg.ReplicaURL, replicaP = viaProxy(t, w.db.ReplicaEdgeURL)
	cfg.PrimaryURL, primaryP = viaProxy(t, w.db.EdgeURL)
	cfg.WriterURL, writerP = viaProxy(t, wr.base)
	e := w.edge(t, cfg)

	k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro"})
	lic := k.Licenses[0]
	answered := func(t *testing.T, what string, wantStatus string) statusOf {
		t.Helper()
		var s statusOf
		eventually(t, ceiling+time.Second, what, func() (bool, string) {
			s = e.mustStatus(t, "deps", k.Key, "")
			return s.HTTP == 200 && s.Code == wantStatus, fmt.Sprintf("%d %s (tier %s)", s.HTTP, s.Raw, s.Tier)
		})
		return s
	}
	// revalidated waits until the answer comes from below L1 again (the ceiling passed).
	revalidated := func(t *testing.T, what string) statusOf {
		t.Helper()
		var s statusOf
		eventually(t, ceiling+time.Second, what, func() (bool, string) {
			s = e.mustStatus(t, "deps", k.Key, "")
			return s.HTTP == 200 && s.Tier != "l1", fmt.Sprintf("%d tier %s stale %v", s.HTTP, s.Tier, s.Stale)
		})
		return s
	}
	change := func(t *testing.T, op, want string) {
		t.Helper()
		wr.must(t, 200, "POST", "/v1/licenses/"+lic.ID+"/"+op, apiKey, nil)
		answered(t, "after "+op, want)
	}
	answered(t, "warm-up", "valid")

	t.Run("redis-down", func(t *testing.T) {
		redisP.Stop()
		defer redisP.Start(t)
		if s := revalidated(t, "revalidate without redis"); s.Stale || s.Code != "valid" {
			t.Fatalf("without redis: stale %v code %s tier %s", s.Stale, s.Code, s.Tier)
		}
		change(t, "suspend", "suspended")
		change(t, "resume", "valid")
	})
	t.Run("replica-down", func(t *testing.T) {
		replicaP.Stop()
		defer replicaP.Start(t)
		change(t, "suspend", "suspended")
		if s := revalidated(t, "revalidate without replica"); s.Stale || s.Tier != "primary" && s.Tier != "l2" {
			t.Fatalf("without replica: stale %v tier %s", s.Stale, s.Tier)
		}
		change(t, "resume", "valid")
	})
	t.Run("nats-down", func(t *testing.T) {
		w.nats.Stop()
		// the writer commits; its event waits in the outbox: the ceiling makes it visible
		wr.must(t, 200, "POST", "/v1/licenses/"+lic.ID+"/suspend", apiKey, nil)
		start := time.Now()
		answered(t, "change while nats is down", "suspended")
		t.Logf("change visible %v after commit without NATS (ceiling %v)", time.Since(start).Round(time.Millisecond), ceiling)
		w.nats.Restart(t)
		eventually(t, 10*time.Second, "edge follows events again", func() (bool, string) {
			return e.node.Events.Connected(), "not subscribed"
		})
		// events flow again: the next change shows up well within the ceiling
		wr.must(t, 200, "POST", "/v1/licenses/"+lic.ID+"/resume", apiKey, nil)
		start = time.Now()
		eventually(t, ceiling, "change after nats is back", func() (bool, string) {
			s := e.mustStatus(t, "deps", k.Key, "")
			return s.Code == "valid", string(s.Raw)
		})
		t.Logf("change visible %v after commit with NATS back", time.Since(start).Round(time.Millisecond))
	})
	t.Run("writer-down", func(t *testing.T) {
		writerP.Stop()
		defer writerP.Start(t)
		if s := e.mustStatus(t, "deps", k.Key, ""); s.HTTP != 200 || s.Code != "valid" {
			t.Fatalf("status without writer: %d %s", s.HTTP, s.Raw)
		}
		r := e.call(t, "POST", "/v1/public/deps/activations", "", map[string]any{
			"license_key": k.Key, "product": "pro", "instance": "a.example.com"})
		if r.Status != 503 || r.Code() != "unavailable" || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("activation without writer: %d %s", r.Status, r.Body)
		}
	})
	t.Run("all-down", func(t *testing.T) {
		redisP.Stop()
		replicaP.Stop()
		primaryP.Stop()
		writerP.Stop()
		w.nats.Stop()
		defer func() {
			redisP.Start(t)
			replicaP.Start(t)
			primaryP.Start(t)
			writerP.Start(t)
			w.nats.Restart(t)
		}()
		var s statusOf
		eventually(t, ceiling+time.Second, "stale answer", func() (bool, string) {
			s = e.mustStatus(t, "deps", k.Key, "")
			return s.HTTP == 200 && s.Stale, fmt.Sprintf("%d stale %v tier %s", s.HTTP, s.Stale, s.Tier)
		})
		if s.Code != "valid" || s.Tier != "l1" {
			t.Fatalf("stale answer: %s tier %s", s.Raw, s.Tier)
		}
		if r := e.call(t, "GET", "/v1/public/deps/licenses/"+k.Key+"/status", "", nil); r.Header.Get("Cache-Control") != "max-age=0" {
			t.Errorf("stale answer Cache-Control %q, want max-age=0", r.Header.Get("Cache-Control"))
		}
		if n := e.metric(t, "license_edge_stale_answers_total"); n == 0 {
			t.Error("license_edge_stale_answers_total not counted")
		}
		// an unknown key cannot be answered from anything
		if u := e.mustStatus(t, "deps", "ABCDE-FGHJK-MNPQR-STUVW-XYZ23", ""); u.HTTP != 503 {
			t.Errorf("unknown key with every backend down: %d %s", u.HTTP, u.Raw)
		}
		if r := e.call(t, "GET", "/healthz", "", nil); r.Status != 200 {
			t.Errorf("/healthz %d", r.Status)
		}
		// the node stays in rotation (it still answers from L1) but says it is degraded
		if r := e.call(t, "GET", "/readyz", "", nil); r.Status != 200 || !strings.Contains(string(r.Body), `"degraded"`) {
			t.Errorf("/readyz with every backend down: %d %s", r.Status, r.Body)
		}
	})
	t.Run("back-to-fresh", func(t *testing.T) {
		// fresh again once a tier answers and the event stream is back (an edge that has
		// applied no relay heartbeat for EDGE_STALE_WITHOUT_STREAM marks every answer stale;
		// the consumer resubscribes on its own backoff)
		var s statusOf
		eventually(t, 20*time.Second, "fresh again", func() (bool, string) {
			s = e.mustStatus(t, "deps", k.Key, "")
			return s.HTTP == 200 && s.Tier != "l1" && !s.Stale, fmt.Sprintf("%d tier %s stale %v", s.HTTP, s.Tier, s.Stale)
		})
		if s.Code != "valid" {
			t.Fatalf("after recovery: %s", s.Raw)
		}
		if r := e.call(t, "GET", "/readyz", "", nil); r.Status != 200 || !strings.Contains(string(r.Body), `"ready"`) {
			t.Errorf("/readyz after recovery: %d %s", r.Status, r.Body)
		}
	})
}

// TestEdgeStartsWithEverythingDown: a node comes up with no Redis, Postgres, NATS or
// writer reachable, reports not ready, and becomes ready and serves once they appear.
func TestEdgeStartsWithEverythingDown(t *testing.T) {
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "late", "pro")
	k := wr.licenseKey(t, apiKey, map[string]any{"product": "pro"})

	cfg := w.edgeConfig("edge-late", "")
	var redisP, replicaP, primaryP *proxy
	cfg.RedisAddr = newProxyFor(t, &redisP, w.redis)
	cfg.ReplicaURL, replicaP = viaProxy(t, w.db.ReplicaEdgeURL)
	cfg.PrimaryURL, primaryP = viaProxy(t, w.db.EdgeURL)
	cfg.WriterURL = "http://" + closedAddr(t)
	cfg.NATSURL = "nats://" + closedAddr(t)
	redisP.Stop()
	replicaP.Stop()
	primaryP.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	rctx, stop := context.WithCancel(context.Background())
	go func() { done <- app.Run(rctx, withRegistry(cfg), slog.New(slog.DiscardHandler), ready) }()
	t.Cleanup(func() { stop(); <-done })
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("edge did not start with its dependencies down: %v", err)
	case <-ctx.Done():
		t.Fatal("edge did not start in time with its dependencies down")
	}
	e := newClient("http://" + addr)
	if r := e.call(t, "GET", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("/healthz: %d", r.Status)
	}
	if r := e.call(t, "GET", "/readyz", "", nil); r.Status != 503 || r.Code() != "unavailable" {
		t.Fatalf("/readyz with nothing up: %d %s", r.Status, r.Body)
	}
	if s := e.mustStatus(t, "late", k.Key, ""); s.HTTP != 503 {
		t.Fatalf("status with nothing up: %d %s", s.HTTP, s.Raw)
	}
	replicaP.Start(t)
	primaryP.Start(t)
	redisP.Start(t)
	eventually(t, 5*time.Second, "ready", func() (bool, string) {
		r := e.call(t, "GET", "/readyz", "", nil)
		return r.Status == 200, string(r.Body)
	})
	eventually(t, 5*time.Second, "serving", func() (bool, string) {
		s := e.mustStatus(t, "late", k.Key, "")
		return s.HTTP == 200 && s.Code == "valid", string(s.Raw)
	})
}

// newProxyFor puts a proxy in front of a host:port and returns the proxy's address.
func newProxyFor(t *testing.T, p **proxy, target string) string {
	*p = newProxy(t, target)
	return (*p).addr
}
