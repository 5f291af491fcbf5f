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

func TestGuardNeverLetsAnOlderVersionOut(t *testing.T) {
	k := New()
	ck := source.CacheKey("acme", "K")
	k.Observe(ck, 5, time.Now())
	older := &fixed{res: source.Result{Found: true, Snapshot: license.Snapshot{Version: 4}}}
	g := NewGuard(older, k, time.Now, metrics.New(prometheus.NewRegistry()))
	if _, err := g.Get(context.Background(), "acme", "K"); !errors.Is(err, source.ErrUnavailable) || older.calls != 3 {
		t.Fatalf("older answer: err %v after %d tries", err, older.calls)
	}
	older.res.Stale = true
	if r, err := g.Get(context.Background(), "acme", "K"); err != nil || !r.Stale {
		t.Fatalf("a stale answer (marked) must pass: %v", err)
	}
	newer := &fixed{res: source.Result{Found: true, Snapshot: license.Snapshot{Version: 6}}}
	if _, err := NewGuard(newer, k, time.Now, metrics.New(prometheus.NewRegistry())).Get(context.Background(), "acme", "K"); err != nil || k.Get(ck) != 6 {
		t.Fatalf("newer answer: err %v, known %d", err, k.Get(ck))
	}
}
