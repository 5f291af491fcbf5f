package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/shared/license"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// next is the tier below L1 (a mock at the tier boundary).
type next struct {
	calls atomic.Int64
	mu    sync.Mutex
	ver   int64
	found bool
	err   error
	gate  chan struct{} // when set, Get waits for it
	clock *clock
}

var _ source.Source = (*next)(nil)

func (n *next) Get(_ context.Context, brand, key string) (source.Result, error) {
	n.calls.Add(1)
	if n.gate != nil {
		<-n.gate
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return source.Result{}, n.err
	}
	r := source.Result{Found: n.found, Origin: n.clock.Now(), Tier: "l2"}
	if n.found {
		r.State = license.State{Brand: brand, Key: key, Version: n.ver,
			Licenses: []license.LicenseState{{ID: "L1", Product: "pro", Status: "valid"}}}
	}
	return r, nil
}

func (n *next) Instance(_ context.Context, brand, key, instance string) (source.InstanceResult, error) {
	n.calls.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return source.InstanceResult{}, n.err
	}
	r := source.InstanceResult{Found: n.found, Origin: n.clock.Now(), Tier: "l2"}
	if n.found {
		r.Instance = license.Instance{Instance: instance, AsOf: n.ver,
			Activations: []license.InstanceActivation{{LicenseID: "L1"}}}
	}
	return r, nil
}

func (n *next) set(ver int64, found bool, err error) {
	n.mu.Lock()
	n.ver, n.found, n.err = ver, found, err
	n.mu.Unlock()
}

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type fixture struct {
	c      *Cache
	next   *next
	known  *version.Known
	clock  *clock
	m      *metrics.Metrics
	stream *stream
}

// stream is the change stream's currency, set by the test.
type stream struct{ current atomic.Bool }

func (s *stream) Current() bool { return s.current.Load() }

func newFixture(t *testing.T, maxBytes int64) *fixture {
	t.Helper()
	clk := &clock{}
	clk.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	n := &next{ver: 1, found: true, clock: clk}
	known := version.New()
	m := metrics.New(prometheus.NewRegistry())
	st := &stream{}
	st.current.Store(true)
	c, err := New(n, known, Config{MaxBytes: maxBytes, Ceiling: 30 * time.Second, NegativeTTL: 5 * time.Second,
		StaleFor: time.Minute, Stream: st}, clk.Now, slog.New(slog.DiscardHandler), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &fixture{c: c, next: n, known: known, clock: clk, m: m, stream: st}
}

const key = "ABCDE-FGHJK-MNPQR-STUVW-XYZ23"

// get reads through the cache; a fill is applied (Wait) before returning, so the next
// get can hit — unless ristretto dropped the Set, which the callers tolerate by retrying.
func (f *fixture) get(t *testing.T) source.Result {
	t.Helper()
	r, err := f.c.Get(context.Background(), "acme", key)
	if err != nil {
		t.Fatal(err)
	}
	f.c.Wait()
	return r
}

// warm fills the entry and retries until a read is a hit (a dropped Set is not an error).
func (f *fixture) warm(t *testing.T) {
	t.Helper()
	for range 20 {
		if f.get(t).Tier == "l1" {
			return
		}
	}
	t.Fatal("the entry never landed in L1")
}

func TestFreshEntryIsServedFromMemory(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.warm(t)
	calls := f.next.calls.Load()
	for range 10 {
		if r := f.get(t); r.Tier != "l1" || r.Version() != 1 {
			t.Fatalf("got tier %s v%d", r.Tier, r.Version())
		}
	}
	if f.next.calls.Load() != calls {
		t.Fatal("a fresh entry went to the next tier")
	}
}

func TestNewerKnownVersionIsAMiss(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.warm(t)
	f.known.Observe(source.CacheKey("acme", key), 2, f.clock.Now()) // an event
	f.next.set(2, true, nil)
	if r := f.get(t); r.Version() != 2 || r.Tier == "l1" {
		t.Fatalf("after the event: tier %s v%d, want v2 from below", r.Tier, r.Version())
	}
}

func TestOlderFillIsNotCached(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.known.Observe(source.CacheKey("acme", key), 5, f.clock.Now())
	f.next.set(3, true, nil) // a lagging tier
	for range 3 {
		f.get(t)
	}
	if n := f.next.calls.Load(); n != 3 {
		t.Fatalf("%d calls below: an older fill was cached", n)
	}
	if v := testutil.ToFloat64(f.m.FillsRefused.WithLabelValues("l1")); v != 3 {
		t.Fatalf("fills refused %v, want 3", v)
	}
}

func TestCeilingForcesRevalidation(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.warm(t)
	f.clock.Advance(29 * time.Second)
	if r := f.get(t); r.Tier != "l1" {
		t.Fatalf("before the ceiling: tier %s", r.Tier)
	}
	f.clock.Advance(2 * time.Second)
	calls := f.next.calls.Load()
	if r := f.get(t); r.Tier == "l1" || f.next.calls.Load() != calls+1 {
		t.Fatalf("past the ceiling: tier %s, calls %d -> %d", r.Tier, calls, f.next.calls.Load())
	}
}

func TestStaleIfError(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.warm(t)
	f.next.set(0, false, fmt.Errorf("redis and postgres: %w", source.ErrUnavailable))
	f.clock.Advance(31 * time.Second)
	r := f.get(t)
	if !r.Stale || r.Version() != 1 {
		t.Fatalf("within the stale window: stale %v v%d", r.Stale, r.Version())
	}
	if v := testutil.ToFloat64(f.m.StaleServed); v != 1 {
		t.Fatalf("stale answers counted %v", v)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.c.Get(context.Background(), "acme", key); !errors.Is(err, source.ErrUnavailable) {
		t.Fatalf("past the stale window: err %v, want unavailable", err)
	}
}

func TestUnknownKeyIsCachedBriefly(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.next.set(0, false, nil)
	for range 20 {
		if f.get(t).Tier == "l1" {
			break
		}
	}
	calls := f.next.calls.Load()
	if r := f.get(t); r.Found || r.Tier != "l1" {
		t.Fatalf("negative entry: found %v tier %s", r.Found, r.Tier)
	}
	f.clock.Advance(6 * time.Second)
	f.get(t)
	if f.next.calls.Load() != calls+1 {
		t.Fatal("negative entry outlived its TTL")
	}
	// the key's creation (an event at version 1) ends the negative entry at once
	f.get(t)
	f.known.Observe(source.CacheKey("acme", key), 1, f.clock.Now())
	f.next.set(1, true, nil)
	if r := f.get(t); !r.Found {
		t.Fatal("negative entry served after the key's creation event")
	}
}

func TestConcurrentMissesAreCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 1<<20)
		f.next.gate = make(chan struct{})
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if _, err := f.c.Get(context.Background(), "acme", key); err != nil {
					t.Error(err)
				}
			})
		}
		// every request has piled up: the first miss waits at the gate, the others for it
		synctest.Wait()
		close(f.next.gate)
		wg.Wait()
		if n := f.next.calls.Load(); n != 1 {
			t.Fatalf("%d reads below L1 for 50 concurrent misses of one key", n)
		}
	})
}

func TestMemoryBudgetIsBytes(t *testing.T) {
	const budget = 64 << 10
	f := newFixture(t, budget)
	keys := 2000
	for i := range keys {
		if _, err := f.c.Get(context.Background(), "acme", fmt.Sprintf("K%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	f.c.Wait()
	per := cost("acme/K00000", source.Result{Found: true, State: license.State{Brand: "acme", Key: "K00000",
		Licenses: []license.LicenseState{{ID: "L1", Product: "pro", Status: "valid"}}}})
	held := 0
	for i := range keys {
		if e, ok := f.c.c.Get(fmt.Sprintf("acme/K%05d", i)); ok && e != nil {
			held++
		}
	}
	if max := int(budget / per); held > max || held == 0 {
		t.Fatalf("%d entries of %d bytes held in a %d-byte budget (max %d)", held, per, budget, max)
	}
}

// An instance entry stays in memory across changes under its key that name other
// instances, and is refetched when a change names it.
func TestInstanceEntryIsInvalidatedByItsOwnEventsOnly(t *testing.T) {
	f := newFixture(t, 1<<20)
	get := func() source.InstanceResult {
		t.Helper()
		r, err := f.c.Instance(context.Background(), "acme", key, "example.com")
		if err != nil {
			t.Fatal(err)
		}
		f.c.Wait()
		return r
	}
	for i := 0; get().Tier != "l1"; i++ {
		if i == 20 {
			t.Fatal("the instance entry never landed in L1")
		}
	}
	// activations of other sites: the key's version moves, this entry does not
	f.known.Observe(source.CacheKey("acme", key), 7, f.clock.Now())
	f.known.Observe(source.InstanceKey("acme", key, "other.example"), 7, f.clock.Now())
	calls := f.next.calls.Load()
	if r := get(); r.Tier != "l1" || r.Version() != 1 || f.next.calls.Load() != calls {
		t.Fatalf("after another instance's event: tier %s v%d", r.Tier, r.Version())
	}
	// a change of this instance
	f.known.Observe(source.InstanceKey("acme", key, "example.com"), 8, f.clock.Now())
	f.next.set(8, true, nil)
	if r := get(); r.Tier == "l1" || r.Version() != 8 {
		t.Fatalf("after its own event: tier %s v%d, want v8 from below", r.Tier, r.Version())
	}
	if per := cost("acme/"+key+"#example.com", source.InstanceResult{Found: true, Instance: license.Instance{Instance: "example.com",
		Activations: []license.InstanceActivation{{LicenseID: "L1"}}}}); per > 512 {
		t.Fatalf("an instance entry costs %d bytes", per)
	}
}

// A change event moves a cached state to its version without a read below, only from
// the version just before it.
func TestAdvanceAppliesTheNextVersionOnly(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.warm(t) // version 1 in L1
	ck := source.CacheKey("acme", key)
	change := func(v int64, used int) license.Changed {
		return license.Changed{Version: v, Licenses: []license.LicenseState{{ID: "L1", Product: "pro", Status: "valid", SeatsUsed: used}}}
	}
	f.known.Observe(ck, 2, f.clock.Now())
	if !f.c.Advance("acme", key, change(2, 1)) {
		t.Fatal("version 2 not applied over version 1")
	}
	f.c.Wait()
	calls := f.next.calls.Load()
	r := f.get(t)
	if r.Tier != "l1" || r.Version() != 2 || r.State.Licenses[0].SeatsUsed != 1 || f.next.calls.Load() != calls {
		t.Fatalf("after the event: tier %s v%d seats %d", r.Tier, r.Version(), r.State.Licenses[0].SeatsUsed)
	}
	f.known.Observe(ck, 4, f.clock.Now())
	if f.c.Advance("acme", key, change(4, 2)) {
		t.Fatal("version 4 applied over version 2 (version 3 missed)")
	}
	f.next.set(4, true, nil)
	if r := f.get(t); r.Tier == "l1" || r.Version() != 4 {
		t.Fatalf("after a gap: tier %s v%d, want a read of v4", r.Tier, r.Version())
	}
	if testutil.ToFloat64(f.m.Advanced) != 1 {
		t.Fatalf("advanced %v", testutil.ToFloat64(f.m.Advanced))
	}
}

// While the change stream is not current, a negative entry is neither served nor stored:
// every "unknown key" is asked below (where the primary decides), so a key created since
// is never answered 404 from memory.
func TestNegativeEntriesOnlyWhileTheStreamIsCurrent(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.next.set(0, false, nil)
	for range 20 {
		if f.get(t).Tier == "l1" {
			break
		}
	}
	if r := f.get(t); r.Found || r.Tier != "l1" {
		t.Fatalf("negative entry with a current stream: tier %s", r.Tier)
	}
	f.stream.current.Store(false)
	calls := f.next.calls.Load()
	for range 3 {
		if r := f.get(t); r.Tier == "l1" {
			t.Fatal("negative entry served while the stream is not current")
		}
	}
	if n := f.next.calls.Load() - calls; n != 3 {
		t.Fatalf("%d reads below for 3 requests: a negative answer was stored while the stream was not current", n)
	}
	// the key is created: a positive answer is cached whatever the stream
	f.next.set(1, true, nil)
	f.warm(t)
}
