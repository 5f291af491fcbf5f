package seed

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/postgres"
)

// TestLoadProducesWhatTheWriterReads seeds a fresh database and then drives the writer's
// own domain code over it: the seeded API keys authenticate, seats_used matches the
// activation rows, a near-full license refuses a seat too many, a seeded instance reads as
// activated and re-activating it costs no seat.
func TestLoadProducesWhatTheWriterReads(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Postgres")
	}
	db := dbtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg := DefaultConfig()
	cfg.Activations, cfg.Workers, cfg.Sample, cfg.Prefix = 5000, 2, 50, "it"
	plan, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Load(ctx, db.AdminURL, plan, LoadOptions{ChunkActivations: 1000, Analyze: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts.Activations < cfg.Activations {
		t.Fatalf("wrote %d activations, want %d", res.Counts.Activations, cfg.Activations)
	}
	if _, err := Load(ctx, db.AdminURL, plan, LoadOptions{}); err == nil {
		t.Fatal("a second run with the same prefix should be refused")
	}

	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var acts, bad, fkMissing int64
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM activations").Scan(&acts); err != nil {
		t.Fatal(err)
	}
	if acts != res.Counts.Activations {
		t.Fatalf("%d activation rows, the run reported %d", acts, res.Counts.Activations)
	}
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM licenses l
		WHERE seats_used <> (SELECT count(*) FROM activations a WHERE a.license_id = l.id AND NOT a.development)
		   OR dev_instances_used <> (SELECT count(*) FROM activations a WHERE a.license_id = l.id AND a.development)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d licenses whose seats_used or dev_instances_used differs from their activations", bad)
	}
	// the foreign keys the load skipped checking hold
	if err := admin.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM licenses l LEFT JOIN license_keys k ON k.id = l.license_key_id WHERE k.id IS NULL) +
		(SELECT count(*) FROM licenses l LEFT JOIN products p ON p.id = l.product_id AND p.brand_id = l.brand_id WHERE p.id IS NULL) +
		(SELECT count(*) FROM activations a LEFT JOIN licenses l ON l.id = a.license_id AND l.brand_id = a.brand_id WHERE l.id IS NULL) +
		(SELECT count(*) FROM license_keys k LEFT JOIN brands b ON b.id = k.brand_id WHERE b.id IS NULL)`).Scan(&fkMissing); err != nil {
		t.Fatal(err)
	}
	if fkMissing != 0 {
		t.Fatalf("%d dangling references", fkMissing)
	}

	pool, err := postgres.Connect(ctx, db.AppURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	svc := licensing.New(postgres.New(pool), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m := res.Manifest
	for _, b := range m.Brands {
		p, err := svc.Authenticate(ctx, b.APIKey, "")
		if err != nil || p.BrandSlug != b.Slug {
			t.Fatalf("seeded API key of %s: principal %+v, %v", b.Slug, p, err)
		}
	}
	meta := licensing.Meta{Actor: "public", RequestID: "it"}

	// a seeded activation: status says activated, re-activating costs no seat
	a := m.Active[0]
	st, err := svc.Status(ctx, a.Brand, a.Key, a.Product, a.Raw)
	if err != nil || !st.Valid || st.Instance == nil || !st.Instance.Activated {
		t.Fatalf("status of seeded activation %+v: %+v, %v", a, st, err)
	}
	again, err := svc.Activate(ctx, meta, a.Brand, a.Key, a.Product, a.Raw)
	if err != nil || again.Created || again.License.SeatsUsed != a.SeatsUsed {
		t.Fatalf("re-activation of %+v: created %v seats %d, %v", a, again.Created, again.License.SeatsUsed, err)
	}

	// a near-full license: fill it, then one more is refused
	nf := m.NearFull[0]
	var version0 int64
	if err := admin.QueryRow(ctx, "SELECT version FROM license_keys WHERE key = $1", nf.Key).Scan(&version0); err != nil {
		t.Fatal(err)
	}
	free := *nf.SeatLimit - nf.SeatsUsed
	for i := 0; i < free; i++ {
		r, err := svc.Activate(ctx, meta, nf.Brand, nf.Key, nf.Product, "https://fill"+string(rune('a'+i))+".example.com")
		if err != nil || !r.Created || r.License.SeatsUsed != nf.SeatsUsed+i+1 {
			t.Fatalf("fill %+v: %+v, %v", nf, r.License, err)
		}
	}
	if _, err := svc.Activate(ctx, meta, nf.Brand, nf.Key, nf.Product, "https://one-too-many.example.com"); !problem.Is(err, problem.SeatLimitReached) {
		t.Fatalf("activation beyond the seat limit: %v, want seat_limit_reached", err)
	}
	var version1 int64
	if err := admin.QueryRow(ctx, "SELECT version FROM license_keys WHERE key = $1", nf.Key).Scan(&version1); err != nil {
		t.Fatal(err)
	}
	if version1 != version0+int64(free) {
		t.Fatalf("version went from %d to %d after %d activations", version0, version1, free)
	}

	// every lifecycle state answers as the seeder said
	for _, s := range m.Status {
		st, err := svc.Status(ctx, s.Brand, s.Key, s.Product, "")
		if err != nil {
			t.Fatalf("status %+v: %v", s, err)
		}
		if len(st.Licenses) == 0 || st.Licenses[0].Status != s.Status {
			t.Fatalf("status of %+v reads %+v", s, st.Licenses)
		}
	}
}
