package shield

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/shared/license"
)

// cert is a certifier the test moves by hand.
type cert struct {
	mu      sync.Mutex
	at      time.Time
	changed chan struct{}
	waiting chan struct{} // a lookup is waiting for a certification
}

func newCert(at time.Time) *cert {
	return &cert{at: at, changed: make(chan struct{}), waiting: make(chan struct{}, 16)}
}

func (c *cert) set(at time.Time) {
	c.mu.Lock()
	c.at = at
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *cert) Certified() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.at }
func (c *cert) Current() bool        { return true }
func (c *cert) WaitCertified(ctx context.Context, t time.Time) bool {
	for {
		c.mu.Lock()
		at, ch := c.at, c.changed
		c.mu.Unlock()
		if !at.Before(t) {
			return true
		}
		select {
		case c.waiting <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// next counts the lookups that reach the tiers below.
type next struct{ calls atomic.Int64 }

func (n *next) Get(context.Context, string, string) (source.Result, error) {
	n.calls.Add(1)
	return source.Result{Found: true, Tier: "replica"}, nil
}

func (n *next) Instance(context.Context, string, string, string) (source.InstanceResult, error) {
	n.calls.Add(1)
	return source.InstanceResult{Found: true, Tier: "replica"}, nil
}

func newShield(t *testing.T, c *cert, keys ...string) (*Shield, *next) {
	nx := &next{}
	s := New(nx, c, func(_ context.Context, add func(string)) (int, error) {
		for _, k := range keys {
			add(k)
		}
		return len(keys), nil
	}, Config{Skew: time.Millisecond, MaxWait: 400 * time.Millisecond, MaxLag: time.Second}, time.Now, slog.New(slog.DiscardHandler), Metrics{})
	return s, nx
}

// TestShield: a key the filter rules out is answered without a lookup below once the
// stream certifies the request's arrival; it waits for that certification, and goes down
// the tiers when it does not come in time or the stream lags; keys the stream creates
// and keys the filter may hold go down; before the first build and after a reset every
// lookup goes down.
func TestShield(t *testing.T) {
	ctx := context.Background()
	known := license.NewKey()
	c := newCert(time.Now())
	s, nx := newShield(t, c, known)

	if r, _ := s.Get(ctx, "b", license.NewKey()); !r.Found || nx.calls.Load() != 1 {
		t.Fatalf("before the build: %+v, %d calls", r, nx.calls.Load())
	}
	if err := s.Build(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(ctx, "b", known); !r.Found {
		t.Fatalf("known key: %+v", r)
	}

	// an unknown key: answered once a certification after its arrival comes
	unknown := license.NewKey()
	done := make(chan source.Result)
	go func() { r, _ := s.Get(ctx, "b", unknown); done <- r }()
	select {
	case r := <-done:
		t.Fatalf("answered %+v before the stream certified the request's arrival", r)
	case <-c.waiting: // it waits for the certification
	}
	c.set(time.Now().Add(time.Second))
	if r := <-done; r.Found || r.Tier != "filter" {
		t.Fatalf("unknown key after certification: %+v", r)
	}
	callsBefore := nx.calls.Load()

	// a key the stream created while the request waited is not answered absent
	created := license.NewKey()
	c.set(time.Now().Add(-100 * time.Millisecond)) // certified up to just before the request
	go func() { r, _ := s.Get(ctx, "b", created); done <- r }()
	<-c.waiting // the filter ruled the key out; the lookup waits
	s.Add(created)
	c.set(time.Now().Add(2 * time.Second))
	if r := <-done; !r.Found || nx.calls.Load() != callsBefore+1 {
		t.Fatalf("key created meanwhile: %+v", r)
	}

	// no certification in time: the lookup goes down
	start := time.Now()
	c.set(time.Now().Add(-400 * time.Millisecond)) // lagging less than MaxLag: worth waiting for
	if r, _ := s.Get(ctx, "b", license.NewKey()); !r.Found || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("without a certification: %+v after %v", r, time.Since(start))
	}
	// the stream lags more than MaxLag: no wait at all
	c.set(time.Now().Add(-5 * time.Second))
	start = time.Now()
	if r, _ := s.Instance(ctx, "b", license.NewKey(), "i"); !r.Found || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("lagging stream: %+v after %v", r, time.Since(start))
	}

	s.Reset()
	c.set(time.Now().Add(time.Hour))
	if r, _ := s.Get(ctx, "b", license.NewKey()); !r.Found || s.Ready() {
		t.Fatalf("after a reset: %+v", r)
	}
}

// BenchmarkFilter10M measures the filter at 10 million keys and the configured 0.1 %
// target: its memory (bytes/key and MiB in total) and its false-positive rate over a
// million keys it does not hold.
func BenchmarkFilter10M(b *testing.B) {
	const n = 10_000_000
	f := bloom.NewWithEstimates(n, 0.001)
	for range n {
		f.AddString(license.NewKey())
	}
	b.ResetTimer()
	var fp, tested int
	for range b.N {
		for range 1_000_000 / max(b.N, 1) {
			if f.TestString(license.NewKey()) {
				fp++
			}
			tested++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(f.Cap())/8/n, "bytes/key")
	b.ReportMetric(float64(f.Cap())/8/(1<<20), "MiB")
	b.ReportMetric(float64(fp)/float64(max(tested, 1))*100, "fp%")
}

// TestBuildKeepsRecentKeys: a key the stream created before a build, which the replica the
// build reads has not replayed yet, is in the new filter all the same.
func TestBuildKeepsRecentKeys(t *testing.T) {
	c := newCert(time.Now().Add(time.Hour))
	s, nx := newShield(t, c) // the loader returns no key: a replica behind
	lagging := license.NewKey()
	s.Add(lagging) // before any filter exists
	if err := s.Build(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(context.Background(), "b", lagging); !r.Found || nx.calls.Load() != 1 {
		t.Fatalf("a key created before the build, missing from the replica: %+v", r)
	}
	if r, _ := s.Get(context.Background(), "b", license.NewKey()); r.Found {
		t.Fatalf("an unknown key: %+v", r)
	}
}
