package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/postgres"
)

// TestIdempotencyClaimIsFenced: once a retry took over a stale claim, the original
// request can no longer complete it (its transaction would roll back), and a record past
// the retention is claimed afresh instead of replayed.
func TestIdempotencyClaimIsFenced(t *testing.T) {
	db := dbtest.New(t)
	ctx := context.Background()
	pool, err := postgres.Connect(ctx, db.AppURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.New(pool)
	var brandID string
	if err := store.Tx(ctx, licensing.ScopeAll, func(tx licensing.Tx) error {
		brandID = "01900000-0000-7000-8000-0000000000b1"
		return tx.InsertBrand(ctx, licensing.BrandRow{ID: brandID, Slug: "fence", Name: "F", CreatedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	scope := licensing.BrandScope(brandID)
	fp := []byte("fingerprint")
	tokA, tokB := "01900000-0000-7000-8000-00000000000a", "01900000-0000-7000-8000-00000000000b"
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Microsecond)
	t1 := time.Now().Truncate(time.Microsecond)
	run := func(fn func(tx licensing.Tx) error) error { return store.Tx(ctx, scope, fn) }

	if err := run(func(tx licensing.Tx) error {
		_, ok, err := tx.ClaimIdempotency(ctx, licensing.IdemRow{BrandID: brandID, Key: "k", Fingerprint: fp, CreatedAt: t0, Token: tokA, RenewedAt: t0}, t0.Add(-24*time.Hour))
		if !ok {
			t.Fatal("first claim not taken")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := run(func(tx licensing.Tx) error {
		held, err := tx.RenewIdempotency(ctx, brandID, "k", tokA, t0.Add(time.Second))
		if !held {
			t.Fatal("renewal of the held claim failed")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := run(func(tx licensing.Tx) error {
		taken, err := tx.TakeOverIdempotency(ctx, brandID, "k", fp, t1.Add(-time.Minute), t1, tokB)
		if !taken {
			t.Fatal("stale claim not taken over")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err = run(func(tx licensing.Tx) error {
		return tx.CompleteIdempotency(ctx, brandID, "k", tokA, licensing.StoredOutcome{Kind: licensing.OutcomeOK, Body: []byte(`{}`)})
	})
	if !problem.Is(err, problem.IdempotencyInProgress) {
		t.Fatalf("completing a claim that was taken over: %v, want idempotency_in_progress", err)
	}
	if err := run(func(tx licensing.Tx) error {
		held, err := tx.RenewIdempotency(ctx, brandID, "k", tokA, t1)
		if held {
			t.Fatal("the old holder renewed a claim that was taken over")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := run(func(tx licensing.Tx) error {
		return tx.CompleteIdempotency(ctx, brandID, "k", tokB, licensing.StoredOutcome{Kind: licensing.OutcomeOK, Body: []byte(`{"n":1}`)})
	}); err != nil {
		t.Fatalf("completing the current claim: %v", err)
	}
	// past the retention, the done record is claimed afresh (with another fingerprint)
	later := t1.Add(25 * time.Hour)
	if err := run(func(tx licensing.Tx) error {
		_, ok, err := tx.ClaimIdempotency(ctx, licensing.IdemRow{BrandID: brandID, Key: "k", Fingerprint: []byte("other"), CreatedAt: later, Token: tokA, RenewedAt: later}, later.Add(-24*time.Hour))
		if !ok {
			t.Fatal("expired record was not claimed afresh")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// within the retention it is not
	if err := run(func(tx licensing.Tx) error {
		ex, ok, err := tx.ClaimIdempotency(ctx, licensing.IdemRow{BrandID: brandID, Key: "k", Fingerprint: fp, CreatedAt: later, Token: tokA, RenewedAt: later}, later.Add(-24*time.Hour))
		if ok || string(ex.Fingerprint) != "other" {
			t.Fatalf("live record replaced: ok=%v fingerprint=%q", ok, ex.Fingerprint)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
