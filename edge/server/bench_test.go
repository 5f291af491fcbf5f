package server

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/cache"
	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/shared/lease"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// BenchmarkStatusFromL1 measures the handler answering a status check from the memory
// tier (no network): routing, lookup, evaluation at serve time, JSON, headers, metrics.
func BenchmarkStatusFromL1(b *testing.B) {
	benchStatus(b, nil, "", "application/json")
}

// BenchmarkSignedStatusFromL1 is the same question asked with Accept: application/jose:
// one key, so after the first request of each second the token is reused (the signing
// cost itself is lease's BenchmarkSign).
func BenchmarkSignedStatusFromL1(b *testing.B) {
	priv, err := lease.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	signer, err := lease.NewSigner(priv, "urn:bench", time.Hour, lease.JWKS{})
	if err != nil {
		b.Fatal(err)
	}
	benchStatus(b, signer, "application/jose", "application/jose")
}

func benchStatus(b *testing.B, signer *lease.Signer, accept, want string) {
	m := metrics.New(prometheus.NewRegistry())
	known := version.New()
	res := snapshot(nil)
	res.Origin = time.Now()
	l1, err := cache.New(&fakeSource{res: res}, known, cache.Config{MaxBytes: 1 << 20, Ceiling: time.Hour,
		NegativeTTL: time.Second}, time.Now, slog.New(slog.DiscardHandler), m)
	if err != nil {
		b.Fatal(err)
	}
	defer l1.Close()
	src := version.NewGuard(l1, known, time.Now, m)
	s := New(src, nil, nil, nil, Config{StatusMaxAge: time.Minute, Signer: signer}, time.Now, slog.New(slog.DiscardHandler), m)
	for range 10 {
		_, _ = src.Get(context.Background(), "acme", key)
		_, _ = src.Instance(context.Background(), "acme", key, activated)
		l1.Wait()
	}
	var req fasthttp.Request
	req.SetRequestURI("/v1/public/acme/licenses/" + key + "/status?product=pro&instance=example.com")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Init(&req, addr, nil)
			s.Handler(&ctx)
			if ctx.Response.StatusCode() != 200 || string(ctx.Response.Header.Peek("X-Cache")) != "l1" ||
				string(ctx.Response.Header.ContentType()) != want {
				b.Fatalf("%d %s %s", ctx.Response.StatusCode(), ctx.Response.Header.Peek("X-Cache"), ctx.Response.Header.ContentType())
			}
		}
	})
}
