package redis

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/internal/redislog"
	"github.com/licensing/licensing/shared/license"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"
)

// answering is a next tier that answers at once (safe for concurrent use).
type answering struct{ calls atomic.Int64 }

func (a *answering) Get(context.Context, string, string) (source.Result, error) {
	a.calls.Add(1)
	return at(1, time.Now()), nil
}

func (a *answering) Instance(_ context.Context, _, _, instance string) (source.InstanceResult, error) {
	a.calls.Add(1)
	return source.InstanceResult{Found: true, Origin: time.Now(), Instance: license.Instance{Instance: instance, AsOf: 1}}, nil
}

// TestDeadRedisDoesNotStallMisses: with Redis refusing connections or swallowing them
// (a black hole), misses keep being answered by the next tier at once; Redis is tried
// once per probe interval (plus the calls in flight when it died), never once per miss,
// and only a probe waits for Redis' call deadline.
func TestDeadRedisDoesNotStallMisses(t *testing.T) {
	for _, mode := range []string{"refused", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			var held sync.WaitGroup
			if mode == "refused" {
				ln.Close()
			} else {
				t.Cleanup(func() { ln.Close(); held.Wait() })
				held.Add(1)
				go func() { // accept and never answer
					defer held.Done()
					var conns []net.Conn
					defer func() {
						for _, c := range conns {
							c.Close()
						}
					}()
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						conns = append(conns, c)
					}
				}()
			}
			opt := Options(addr, "")
			var dials atomic.Int64
			d := &net.Dialer{Timeout: opt.DialTimeout}
			opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return d.DialContext(ctx, network, addr)
			}
			redislog.To(slog.New(slog.DiscardHandler))
			rdb := goredis.NewClient(opt)
			t.Cleanup(func() { rdb.Close() })
			var cmds atomic.Int64
			rdb.AddHook(countHook{&cmds})
			next := &answering{}
			m := metrics.New(prometheus.NewRegistry())
			const probeEvery = 100 * time.Millisecond
			s := New(rdb, next, version.New(), Config{Backoff: probeEvery}, time.Now, slog.New(slog.DiscardHandler), m)

			// the first miss finds out that Redis is dead
			if r, err := s.Get(context.Background(), "acme", license.NewKey()); err != nil || r.Version() != 1 {
				t.Fatalf("first miss: %v %v", r, err)
			}
			if testutil.ToFloat64(m.TierOpen.WithLabelValues("l2")) != 1 {
				t.Fatal("the l2 breaker did not open after a failed call")
			}
			cmds.Store(0)
			dials.Store(0)
			// then 8 callers miss continuously for a second
			// a call that took this long waited for Redis' deadline (scheduling alone on a
			// busy machine stays well below it)
			const waited = CallTimeout * 3 / 4
			const callers, run = 8, time.Second
			var calls, slow atomic.Int64
			var worst atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Since(start) < run {
						t0 := time.Now()
						if _, err := s.Instance(context.Background(), "acme", license.NewKey(), "site.example"); err != nil {
							t.Error(err)
							return
						}
						d := time.Since(t0)
						calls.Add(1)
						if d > waited {
							slow.Add(1)
						}
						time.Sleep(100 * time.Microsecond) // pace the callers: 8 busy loops would starve 2 cores
						if int64(d) > worst.Load() {
							worst.Store(int64(d))
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			probes := int64(elapsed/probeEvery) + 2
			t.Logf("%s: %d misses by %d callers in %v, %d dials, %d Redis commands, %d waited, worst %v",
				mode, calls.Load(), callers, elapsed.Round(time.Millisecond), dials.Load(), cmds.Load(), slow.Load(), time.Duration(worst.Load()))
			if calls.Load() < 100 {
				t.Fatalf("only %d misses answered in %v: misses stall behind the dead Redis", calls.Load(), elapsed)
			}
			// a fill after each answered miss also goes through the breaker, so at most one
			// call per probe interval reaches Redis (each a new dial, the failed connection
			// being discarded), plus the first miss
			if n := dials.Load(); n > probes+1 {
				t.Fatalf("%d dials in %v with a probe every %v: Redis is retried per miss or per call", n, elapsed, probeEvery)
			}
			if n := cmds.Load(); n > probes {
				t.Fatalf("%d Redis commands in %v with a probe every %v: the tier is not skipped", n, elapsed, probeEvery)
			}
			if mode == "blackhole" && slow.Load() > probes {
				t.Fatalf("%d misses waited for Redis (>%v), at most %d probes expected", slow.Load(), waited, probes)
			}
			if w := time.Duration(worst.Load()); w > 2*CallTimeout {
				t.Fatalf("worst miss %v: a call waited longer than Redis' call deadline %v (hidden retries)", w, CallTimeout)
			}
		})
	}
}

// countHook counts commands (and scripts) sent through a client.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h countHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h countHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}
