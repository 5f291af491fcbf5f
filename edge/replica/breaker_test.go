package replica

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/dbtest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// gate is a TCP proxy to Postgres that can be shut: while shut it resets every connection
// it holds and every new one (a replica that went away).
type gate struct {
	ln    net.Listener
	to    string
	shut  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newGate(t *testing.T, to string) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, to: to}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if g.shut.Load() {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, up)
			g.mu.Unlock()
			g.wg.Add(2)
			go func() { defer g.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer g.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); g.close(); g.wg.Wait() })
	return g
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

func (g *gate) set(shut bool) {
	g.shut.Store(shut)
	if shut {
		g.close()
	}
}

// via returns the Postgres URL u with its address replaced by the gate's.
func (g *gate) via(t *testing.T, u string) string {
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.Host = g.ln.Addr().String()
	return p.String()
}

func hostOf(t *testing.T, u string) string {
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

// TestDeadReplicaIsProbedNotRetried: while the replica is gone, misses are answered by the
// primary and the replica is tried once per probe interval, not once per miss (each try
// counted in license_edge_backend_errors_total{tier="replica"}); when it is back, the first
// probe closes its breaker and reads go to the replica again.
func TestDeadReplicaIsProbedNotRetried(t *testing.T) {
	db := dbtest.New(t)
	s := seed(t, db.AdminURL)
	g := newGate(t, hostOf(t, db.EdgeURL))
	const probeEvery = 100 * time.Millisecond
	st := newStore(t, g.via(t, db.EdgeURL), db.EdgeURL, Config{Backoff: probeEvery})
	ctx := context.Background()
	if r, err := st.Get(ctx, "brand-a", s.keyA); err != nil || r.Tier != "replica" {
		t.Fatalf("replica up: %v %s", err, r.Tier)
	}

	g.set(true)
	start := time.Now()
	n := 0
	var worst time.Duration
	for time.Since(start) < time.Second {
		t0 := time.Now()
		r, err := st.Instance(ctx, "brand-a", s.keyA, fmt.Sprintf("site-%d.example", n))
		if err != nil || r.Tier != "primary" || !r.Found {
			t.Fatalf("miss %d with the replica gone: %v tier %q", n, err, r.Tier)
		}
		worst = max(worst, time.Since(t0))
		n++
	}
	elapsed := time.Since(start)
	tries := testutil.ToFloat64(st.m.BackendErrors.WithLabelValues("replica"))
	t.Logf("%d misses in %v answered by the primary, %v replica tries, worst %v", n, elapsed.Round(time.Millisecond), tries, worst)
	if n < 50 {
		t.Fatalf("only %d misses in %v", n, elapsed)
	}
	if limit := float64(elapsed/probeEvery) + Trips + 1; tries > limit {
		t.Fatalf("the dead replica was tried %v times in %v (probe every %v): retried per miss", tries, elapsed, probeEvery)
	}
	if testutil.ToFloat64(st.m.TierOpen.WithLabelValues("replica")) != 1 {
		t.Fatal("replica breaker not open")
	}

	g.set(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := st.Get(ctx, "brand-a", s.keyA)
		if err == nil && r.Tier == "replica" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica back, reads still go elsewhere: %v %s", err, r.Tier)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if testutil.ToFloat64(st.m.TierOpen.WithLabelValues("replica")) != 0 {
		t.Fatal("replica breaker still open after a successful read")
	}
}
