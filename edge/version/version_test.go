package version

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/shared/license"
	"github.com/prometheus/client_golang/prometheus"
)

func TestObserveOnlyMovesForward(t *testing.T) {
	k := New()
	now := time.Now()
	if !k.Observe("a", 3, now) || k.Observe("a", 2, now) || k.Observe("a", 3, now) || k.Get("a") != 3 {
		t.Fatalf("known %d", k.Get("a"))
	}
	if k.Observe("b", 0, now) || k.Len() != 1 {
		t.Fatal("a negative answer (version 0) was recorded")
	}
	var forgot []string
	k.Prune(now.Add(time.Second), func(key string) { forgot = append(forgot, key) })
	if k.Get("a") != 0 || len(forgot) != 1 || forgot[0] != "a" {
		t.Fatalf("prune: known %d, forgot %v", k.Get("a"), forgot)
	}
}

type fixed struct {
	calls int
	res   source.Result
}

func (f *fixed) Get(context.Context, string, string) (source.Result, error) {
	f.calls++
	return f.res, nil
}

func (f *fixed) Instance(_ context.Context, _, _, instance string) (source.InstanceResult, error) {
	f.calls++
	return source.InstanceResult{Found: f.res.Found, Stale: f.res.Stale,
		Instance: license.Instance{Instance: instance, AsOf: f.res.Version()}}, nil
}

func TestGuardNeverLetsAnOlderVersionOut(t *testing.T) {
	k := New()
	ck := source.CacheKey("acme", "K")
	k.Observe(ck, 5, time.Now())
	older := &fixed{res: source.Result{Found: true, State: license.State{Version: 4}}}
	g := NewGuard(older, k, time.Now, metrics.New(prometheus.NewRegistry()))
	if _, err := g.Get(context.Background(), "acme", "K"); !errors.Is(err, source.ErrUnavailable) || older.calls != 3 {
		t.Fatalf("older answer: err %v after %d tries", err, older.calls)
	}
	older.res.Stale = true
	if r, err := g.Get(context.Background(), "acme", "K"); err != nil || !r.Stale {
		t.Fatalf("a stale answer (marked) must pass: %v", err)
	}
	newer := &fixed{res: source.Result{Found: true, State: license.State{Version: 6}}}
	if _, err := NewGuard(newer, k, time.Now, metrics.New(prometheus.NewRegistry())).Get(context.Background(), "acme", "K"); err != nil || k.Get(ck) != 6 {
		t.Fatalf("newer answer: err %v, known %d", err, k.Get(ck))
	}
}

// An instance entry is checked against its instance's known version, not the key's.
func TestGuardChecksInstancesAgainstTheirOwnVersion(t *testing.T) {
	k := New()
	now := time.Now()
	k.Observe(source.CacheKey("acme", "K"), 9, now)                 // the key moved on
	k.Observe(source.InstanceKey("acme", "K", "a.example"), 5, now) // this instance changed at 5
	src := &fixed{res: source.Result{Found: true, State: license.State{Version: 6}}}
	g := NewGuard(src, k, time.Now, metrics.New(prometheus.NewRegistry()))
	if r, err := g.Instance(context.Background(), "acme", "K", "a.example"); err != nil || r.Version() != 6 {
		t.Fatalf("entry as of 6 for an instance last changed at 5: %v %v", r, err)
	}
	k.Observe(source.InstanceKey("acme", "K", "a.example"), 7, now)
	if _, err := g.Instance(context.Background(), "acme", "K", "a.example"); !errors.Is(err, source.ErrUnavailable) {
		t.Fatalf("entry as of 6 for an instance changed at 7: err %v", err)
	}
}

// An instance entry of a key the edge knows exists must be at least as new as the key's
// creation: "no such key" from before it is refused.
func TestInstanceFloorOnceTheKeyIsKnown(t *testing.T) {
	k := New()
	ik := source.InstanceKey("acme", "K", "a.example")
	if k.Get(ik) != 0 {
		t.Fatal("floor before the key is known")
	}
	k.Observe(source.CacheKey("acme", "K"), 3, time.Now())
	if k.Get(ik) != 1 {
		t.Fatalf("floor %d once the key is known, want 1", k.Get(ik))
	}
	k.Observe(ik, 2, time.Now())
	if k.Get(ik) != 2 {
		t.Fatalf("known %d, want the instance's own 2", k.Get(ik))
	}
}

// racing answers the version current when it was asked while a newer one arrives
// during the read (a key activated faster than a read completes).
type racing struct {
	k   *Known
	ck  string
	cur int64
}

func (r *racing) Get(context.Context, string, string) (source.Result, error) {
	v := r.cur
	r.cur++
	r.k.Observe(r.ck, r.cur, time.Now()) // the next change's event, during the read
	return source.Result{Found: true, State: license.State{Version: v}}, nil
}

func (r *racing) Instance(context.Context, string, string, string) (source.InstanceResult, error) {
	return source.InstanceResult{}, nil
}

func TestGuardAnswersAKeyChangingFasterThanAReadButNeverGoesBack(t *testing.T) {
	k := New()
	ck := source.CacheKey("acme", "K")
	k.Observe(ck, 5, time.Now())
	src := &racing{k: k, ck: ck, cur: 5}
	g := NewGuard(src, k, time.Now, metrics.New(prometheus.NewRegistry()))
	for want := int64(5); want < 10; want++ {
		r, err := g.Get(context.Background(), "acme", "K")
		if err != nil || r.Version() != want {
			t.Fatalf("read while v%d arrives: v%d %v", want+1, r.Version(), err)
		}
	}
	// an answer older than one already served is refused, whatever was known when asked
	k.MarkServed(ck, 20, time.Now())
	old := &fixed{res: source.Result{Found: true, State: license.State{Version: 19}}}
	if _, err := NewGuard(old, k, time.Now, metrics.New(prometheus.NewRegistry())).Get(context.Background(), "acme", "K"); !errors.Is(err, source.ErrUnavailable) {
		t.Fatalf("an answer older than the one served: %v", err)
	}
}
