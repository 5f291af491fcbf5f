package redis

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/shared/license"
	"github.com/prometheus/client_golang/prometheus"
)

type below struct {
	calls int
	res   source.Result
}

func (b *below) Get(context.Context, string, string) (source.Result, error) {
	b.calls++
	return b.res, nil
}

func (b *below) Instance(_ context.Context, _, _, instance string) (source.InstanceResult, error) {
	b.calls++
	return source.InstanceResult{Found: b.res.Found, Origin: b.res.Origin, Tier: b.res.Tier,
		Instance: license.Instance{Instance: instance, AsOf: b.res.Version(), Activations: []license.InstanceActivation{{LicenseID: "L1"}}}}, nil
}

func at(v int64, now time.Time) source.Result {
	return source.Result{Found: true, Origin: now, Tier: "replica", State: license.State{Brand: "acme", Version: v,
		Licenses: []license.LicenseState{{ID: "L1", Product: "pro", Status: "valid"}}}}
}

func instanceAt(v int64, now time.Time) source.InstanceResult {
	return source.InstanceResult{Found: true, Origin: now, Tier: "replica",
		Instance: license.Instance{Instance: "site.example", AsOf: v, Activations: []license.InstanceActivation{{LicenseID: "L1"}}}}
}

// TestVersionCompareAndSet: Redis never replaces a newer version with an older one, and a
// change's tombstone refuses fills older than the change (invariant 7), whichever edge
// writes them.
func TestVersionCompareAndSet(t *testing.T) {
	addr := dbtest.Env(t, dbtest.EnvRedis)
	rdb := Client(addr, "")
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	now := time.Now()
	key := license.NewKey()
	ck := source.CacheKey("acme", key)
	ik := source.InstanceKey("acme", key, "site.example")
	t.Cleanup(func() { rdb.Del(context.Background(), statePrefix+ck, instancePrefix+ik) })
	m := metrics.New(prometheus.NewRegistry())
	// two edges sharing one Redis, each with its own known versions
	b := &below{}
	edgeA := New(rdb, b, version.New(), Config{TTL: time.Minute}, time.Now, slog.New(slog.DiscardHandler), m)
	edgeB := New(rdb, b, version.New(), Config{TTL: time.Minute}, time.Now, slog.New(slog.DiscardHandler), m)

	stored := func() (int64, bool) {
		t.Helper()
		r, ok, err := lookup(edgeA, ctx, ck, statePrefix+ck, stateCodec)
		if err != nil {
			t.Fatal(err)
		}
		return r.Version(), ok
	}
	storedInstance := func() (int64, bool) {
		t.Helper()
		r, ok, err := lookup(edgeA, ctx, ik, instancePrefix+ik, instanceCodec("site.example"))
		if err != nil {
			t.Fatal(err)
		}
		return r.Version(), ok
	}
	store(edgeA, ctx, ik, instancePrefix+ik, instanceAt(2, now), instanceCodec("site.example"), 0)
	store(edgeA, ctx, ck, statePrefix+ck, at(2, now), stateCodec, 0)
	if v, ok := stored(); !ok || v != 2 {
		t.Fatalf("after fill v2: %d %v", v, ok)
	}
	store(edgeB, ctx, ck, statePrefix+ck, at(1, now), stateCodec, 0) // a lagging fill from an edge that knows nothing newer
	if v, _ := stored(); v != 2 {
		t.Fatalf("older fill replaced v2: now v%d", v)
	}
	store(edgeB, ctx, ck, statePrefix+ck, source.Result{Found: false, Origin: now}, stateCodec, 0) // and a stale "unknown"
	if v, _ := stored(); v != 2 {
		t.Fatalf("negative fill replaced v2: now v%d", v)
	}
	// an event that names another instance leaves this instance's entry alone
	if err := edgeA.Invalidate(ctx, "acme", key, "other.example", 3); err != nil {
		t.Fatal(err)
	}
	if _, ok := stored(); ok {
		t.Fatal("a tombstone was served as data")
	}
	if v, ok := storedInstance(); !ok || v != 2 {
		t.Fatalf("another instance's event removed this instance's entry: %d %v", v, ok)
	}
	if err := edgeA.Invalidate(ctx, "acme", key, "site.example", 4); err != nil {
		t.Fatal(err)
	}
	if _, ok := storedInstance(); ok {
		t.Fatal("the instance's own event left its older entry")
	}
	store(edgeB, ctx, ik, instancePrefix+ik, instanceAt(3, now), instanceCodec("site.example"), 0)
	if _, ok := storedInstance(); ok {
		t.Fatal("an instance fill older than its tombstone landed")
	}
	store(edgeB, ctx, ck, statePrefix+ck, at(2, now), stateCodec, 0)
	if _, ok := stored(); ok {
		t.Fatal("a fill older than the tombstone landed")
	}
	store(edgeB, ctx, ck, statePrefix+ck, at(4, now), stateCodec, 0)
	if v, ok := stored(); !ok || v != 4 {
		t.Fatalf("the fill of the tombstone's version: %d %v", v, ok)
	}
	if err := edgeA.Invalidate(ctx, "acme", key, "", 4); err != nil {
		t.Fatal(err)
	}
	if v, ok := stored(); !ok || v != 4 {
		t.Fatalf("a replayed event removed its own version's data: %d %v", v, ok)
	}
}

func TestGetFillsAndServes(t *testing.T) {
	addr := dbtest.Env(t, dbtest.EnvRedis)
	rdb := Client(addr, "")
	t.Cleanup(func() { rdb.Close() })
	key := license.NewKey()
	t.Cleanup(func() { rdb.Del(context.Background(), statePrefix+source.CacheKey("acme", key)) })
	now := time.Now()
	clock := func() time.Time { return now }
	b := &below{res: at(4, now)}
	known := version.New()
	s := New(rdb, b, known, Config{TTL: 30 * time.Second}, clock, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	for i := range 3 {
		r, err := s.Get(context.Background(), "acme", key)
		if err != nil || r.Version() != 4 {
			t.Fatalf("get %d: v%d %v", i, r.Version(), err)
		}
	}
	if b.calls != 1 {
		t.Fatalf("%d reads below Redis, want 1", b.calls)
	}
	known.Observe(source.CacheKey("acme", key), 5, now) // an event this edge applied
	b.res = at(5, now)
	if r, _ := s.Get(context.Background(), "acme", key); r.Version() != 5 || b.calls != 2 {
		t.Fatalf("after the event: v%d, %d reads below", r.Version(), b.calls)
	}
	now = now.Add(31 * time.Second) // past the ceiling: revalidate
	if s.Get(context.Background(), "acme", key); b.calls != 3 {
		t.Fatalf("past the ceiling: %d reads below, want 3", b.calls)
	}
}
