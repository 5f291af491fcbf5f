package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/dbtest"
	"github.com/redis/go-redis/v9"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// uniqueKey keeps runs apart in the shared test Redis.
var seq atomic.Int64

func uniqueKey(t *testing.T) string {
	return t.Name() + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(seq.Add(1), 10)
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy("notfound", "30/10m:30")
	if err != nil || p.Rate != 30 || p.Period != 10*time.Minute || p.Burst != 30 {
		t.Fatalf("got %+v, %v", p, err)
	}
	if got := p.PolicyHeader(); got != `"notfound";q=30;w=600` {
		t.Fatalf("policy header %s", got)
	}
	if p, _ := ParsePolicy("brand", "50/1s:100"); p.PolicyHeader() != `"brand";q=100;w=2` {
		t.Fatalf("brand header %s", p.PolicyHeader())
	}
	for _, bad := range []string{"", "50", "50/1s", "x/1s:1", "0/1s:1", "5/0s:1", "5/1s:0", "5/soon:1", "5/1s:-1"} {
		if _, err := ParsePolicy("p", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func newRedis(t *testing.T) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: dbtest.Env(t, dbtest.EnvRedis)})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestSharedBudget: two instances on one Redis share a budget; the burst is served, the
// next request is refused with a Retry-After about one emission interval away.
func TestSharedBudget(t *testing.T) {
	rdb := newRedis(t)
	a, b := New(rdb, Config{}, quiet, nil), New(rdb, Config{}, quiet, nil)
	p := Policy{Name: "writes", Rate: 2, Period: time.Second, Burst: 20}
	key := uniqueKey(t)
	ctx := context.Background()
	for i := range 20 {
		l := a
		if i%2 == 1 {
			l = b
		}
		d := l.Take(ctx, p, key, 1)
		if !d.Allowed || d.Local {
			t.Fatalf("request %d: %+v", i, d)
		}
		if d.Remaining > 20-i-1 || d.Remaining < 20-i-2 { // a refill may land meanwhile
			t.Fatalf("request %d: remaining %d", i, d.Remaining)
		}
	}
	for _, l := range []*Limiter{a, b} {
		d := l.Take(ctx, p, key, 1)
		if d.Allowed {
			t.Fatalf("past the burst: %+v", d)
		}
		if d.RetryAfter <= 0 || d.RetryAfter > 500*time.Millisecond || d.RetryAfterSeconds() != 1 {
			t.Fatalf("retry after %v", d.RetryAfter)
		}
		if d.Header() != `"writes";r=0;t=10` && d.Header() != `"writes";r=0;t=9` {
			t.Fatalf("header %s", d.Header())
		}
	}
	// another key has its own budget
	if d := a.Take(ctx, p, key+"-other", 1); !d.Allowed {
		t.Fatalf("other key: %+v", d)
	}
}

// TestPeekGatesOnRemaining: a zero-cost look is refused once the budget is spent (the 404
// and 401 rows are charged after the answer and looked at before the next request).
func TestPeekGatesOnRemaining(t *testing.T) {
	rdb := newRedis(t)
	l := New(rdb, Config{}, quiet, nil)
	p := Policy{Name: "notfound", Rate: 3, Period: 10 * time.Minute, Burst: 3}
	key := uniqueKey(t)
	ctx := context.Background()
	for i := range 3 {
		if d := l.Take(ctx, p, key, 0); !d.Allowed {
			t.Fatalf("look %d before charge: %+v", i, d)
		}
		if d := l.Take(ctx, p, key, 1); !d.Allowed {
			t.Fatalf("charge %d: %+v", i, d)
		}
	}
	d := l.Take(ctx, p, key, 0)
	if d.Allowed || d.Remaining != 0 {
		t.Fatalf("look on a spent budget: %+v", d)
	}
	// one event frees after one emission interval (200 s)
	if d.RetryAfter < 190*time.Second || d.RetryAfter > 200*time.Second {
		t.Fatalf("retry after %v", d.RetryAfter)
	}
	// a second instance sees the same (its local bucket is full: Redis decides)
	if d := New(rdb, Config{}, quiet, nil).Take(ctx, p, key, 0); d.Allowed || d.Local {
		t.Fatalf("second instance: %+v", d)
	}
}

// deadRedis is a Redis client whose server accepts connections and never answers (a hung
// Redis: the worst case for a stall).
func deadRedis(t *testing.T) *redis.Client {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestFallbackLimitsWithoutStalling: with Redis hung, every decision still comes within
// the timeout, the local bucket enforces the same numbers, and after a few failures Redis
// is skipped altogether (decisions in microseconds).
func TestFallbackLimitsWithoutStalling(t *testing.T) {
	var opened atomic.Bool
	l := New(deadRedis(t), Config{Timeout: 50 * time.Millisecond, ProbeEvery: time.Minute},
		quiet, func(open bool) { opened.Store(open) })
	p := Policy{Name: "status", Rate: 20, Period: time.Second, Burst: 100}
	key := uniqueKey(t)
	ctx := context.Background()
	allowed := 0
	for i := range 150 {
		start := time.Now()
		d := l.Take(ctx, p, key, 1)
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Fatalf("request %d took %v", i, took)
		}
		if !d.Local {
			t.Fatalf("request %d decided by a dead Redis: %+v", i, d)
		}
		if d.Allowed {
			allowed++
		}
	}
	// 100 of burst plus what refilled at 20/s while the three timed-out calls waited
	if allowed < 100 || allowed > 106 {
		t.Fatalf("allowed %d of 150 with the local fallback", allowed)
	}
	if !opened.Load() || !l.RedisSkipped() {
		t.Fatal("the breaker did not open")
	}
}

// TestLocalBudgetIsBoundedAndRetuned: the local buckets are bounded (the oldest go, not
// all at once) and a changed policy applies to an existing bucket.
func TestLocalBudgetIsBoundedAndRetuned(t *testing.T) {
	l := New(nil, Config{LocalKeys: 100}, quiet, nil)
	p := Policy{Name: "brand", Rate: 1, Period: time.Hour, Burst: 1}
	ctx := context.Background()
	if d := l.Take(ctx, p, "k0", 1); !d.Allowed {
		t.Fatal(d)
	}
	for i := 1; i < 99; i++ {
		l.Take(ctx, p, "k"+strconv.Itoa(i), 1)
	}
	if d := l.Take(ctx, p, "k0", 1); d.Allowed {
		t.Fatalf("k0 forgotten while the table had room: %+v", d)
	}
	for i := 100; i < 1000; i++ {
		l.Take(ctx, p, "k"+strconv.Itoa(i), 1)
	}
	if n := l.local.Len(); n > 100 {
		t.Fatalf("%d local buckets, bound 100", n)
	}
	if d := l.Take(ctx, p, "k999", 1); d.Allowed {
		t.Fatalf("recent key forgotten: %+v", d)
	}
	// the operator raises the brand's limit: the same bucket refills at the new rate
	// (a tenth of a second per event, not an hour)
	bigger := Policy{Name: "brand", Rate: 10, Period: time.Second, Burst: 5}
	if d := l.Take(ctx, bigger, "k999", 1); d.Remaining > 5 || (!d.Allowed && d.RetryAfter > 100*time.Millisecond) {
		t.Fatalf("retuned: %+v", d)
	}
}

func TestNilLimiterAllows(t *testing.T) {
	var l *Limiter
	if d := l.Take(context.Background(), Policy{Name: "x", Rate: 1, Period: time.Second, Burst: 1}, "k", 1); !d.Allowed {
		t.Fatal(d)
	}
}
