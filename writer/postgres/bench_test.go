package postgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/postgres"
)

// BenchmarkActivate measures activations through the domain on the real store (one
// statement each: license_activate), on distinct licenses and on one hot license.
//
//	make bench-writer   (or: go test -run '^$' -bench Activate ./writer/postgres/)
func BenchmarkActivate(b *testing.B) {
	db := dbtest.New(b)
	ctx := context.Background()
	pool, err := postgres.Connect(ctx, db.AppURL, 16)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := licensing.New(postgres.New(pool), time.Now, log)
	m := licensing.Meta{Actor: "bench", RequestID: "bench"}
	created, err := svc.CreateBrand(ctx, m, "bench", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	p := licensing.Principal{BrandID: created.Brand.ID, BrandSlug: "bench"}
	if _, err := svc.CreateProduct(ctx, m, p, licensing.ProductSpec{Code: "plugin", Name: "Plugin"}); err != nil {
		b.Fatal(err)
	}
	keys := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			k, err := svc.Provision(ctx, m, p, "bench@example.com", []licensing.LicenseSpec{{Product: "plugin"}})
			if err != nil {
				b.Fatal(err)
			}
			out[i] = k.Key
		}
		return out
	}
	distinct, hot := keys(256), keys(1)
	var seq atomic.Int64
	{
		for _, set := range []struct {
			name string
			keys []string
		}{{"distinct-licenses", distinct}, {"hot-license", hot}} {
			b.Run(set.name, func(b *testing.B) {
				b.SetParallelism(4)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := seq.Add(1)
						k := set.keys[int(i)%len(set.keys)]
						res, err := svc.Activate(ctx, m, "bench", k, "plugin", fmt.Sprintf("site-%d.example", i))
						if err != nil || !res.Created {
							b.Errorf("activate: %v", err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "activations/s")
			})
		}
	}
}
