package relay

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// fakeWriter answers every request with its name; down makes its dials fail.
type fakeWriter struct {
	name  string
	ln    *fasthttputil.InmemoryListener
	down  atomic.Bool
	dials atomic.Int64
	seen  atomic.Int64
}

func startWriter(t *testing.T, name string) *fakeWriter {
	w := &fakeWriter{name: name, ln: fasthttputil.NewInmemoryListener()}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		w.seen.Add(1)
		ctx.SetStatusCode(201)
		ctx.SetBodyString(name)
	}}
	go srv.Serve(w.ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown(); w.ln.Close() })
	return w
}

func relayed(t *testing.T, c *Client) (string, error) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/public/acme/activations")
	ctx.Request.SetBodyString(`{}`)
	ctx.Init(&ctx.Request, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7)}, nil)
	if err := c.Forward(&ctx, "rid", "192.0.2.7"); err != nil {
		return "", err
	}
	if ctx.Response.StatusCode() != 201 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	return string(ctx.Response.Body()), nil
}

// TestFailover: writes go round robin to both writers; while one is down they all go to
// the other at once, the dead one being dialled once per probe interval rather than once
// per request; when it is back, the next probe returns writes to it. With both down the
// error is ErrNoWriter.
func TestFailover(t *testing.T) {
	a, b := startWriter(t, "a"), startWriter(t, "b")
	const probeEvery = 50 * time.Millisecond
	c, err := New(Config{WriterURLs: []string{"http://a.internal:8080", " http://b.internal:8080"}, Timeout: time.Second, ProbeEvery: probeEvery},
		slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	SetDialer(c, func(addr string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		w := map[string]*fakeWriter{"a.internal:8080": a, "b.internal:8080": b}[addr]
		w.dials.Add(1)
		if w.down.Load() {
			return nil, errors.New("connection refused")
		}
		return w.ln.Dial()
	})
	seen := map[string]int{}
	for range 4 {
		got, err := relayed(t, c)
		if err != nil {
			t.Fatal(err)
		}
		seen[got]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Fatalf("both up: answers %v, want round robin", seen)
	}

	a.down.Store(true)
	// close a's open connections so that the next request must dial
	c.writers[0].hc.CloseIdleConnections()
	dialsBefore := a.dials.Load()
	start := time.Now()
	n := 0
	for time.Since(start) < 500*time.Millisecond {
		if got, err := relayed(t, c); err != nil || got != "b" {
			t.Fatalf("a down, request %d: %q %v", n, got, err)
		}
		n++
	}
	elapsed := time.Since(start)
	if d, limit := a.dials.Load()-dialsBefore, int64(elapsed/probeEvery)+2; d > limit {
		t.Fatalf("writer a dialled %d times in %v for %d requests (probe every %v): retried per request", d, elapsed, n, probeEvery)
	}

	a.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := relayed(t, c)
		if err != nil {
			t.Fatal(err)
		}
		if got == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writer a back, writes still go to b")
		}
		time.Sleep(5 * time.Millisecond)
	}

	a.down.Store(true)
	b.down.Store(true)
	c.writers[0].hc.CloseIdleConnections()
	c.writers[1].hc.CloseIdleConnections()
	if _, err := relayed(t, c); !errors.Is(err, ErrNoWriter) {
		t.Fatalf("both down: %v, want ErrNoWriter", err)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, urls := range [][]string{nil, {"writer:8080"}, {"http://a", "ftp://b"}, {""}} {
		if _, err := New(Config{WriterURLs: urls}, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry())); err == nil {
			t.Errorf("%q accepted", urls)
		}
	}
}
