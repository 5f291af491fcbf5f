package replica

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/shared/license"
	"github.com/prometheus/client_golang/prometheus"
)

type seeded struct {
	keyA, keyB string
}

// seed writes two brands with one key each, as the superuser.
func seed(t *testing.T, adminURL string) seeded {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	s := seeded{keyA: license.NewKey(), keyB: license.NewKey()}
	for _, b := range []struct{ slug, key string }{{"brand-a", s.keyA}, {"brand-b", s.keyB}} {
		bid, pid, kid, lid := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
		exp := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO brands (id, slug, name) VALUES ($1, $2, $2)`, []any{bid, b.slug}},
			{`INSERT INTO products (id, brand_id, code, name) VALUES ($1, $2, 'pro', 'Pro')`, []any{pid, bid}},
			{`INSERT INTO license_keys (id, brand_id, key, customer_email, version) VALUES ($1, $2, $3, 'a@example.com', 7)`, []any{kid, bid, b.key}},
			{`INSERT INTO licenses (id, brand_id, license_key_id, product_id, status, expires_at, seat_limit, seats_used)
			  VALUES ($1, $2, $3, $4, 'valid', $5, 3, 2)`, []any{lid, bid, kid, pid, exp}},
			{`INSERT INTO activations (id, brand_id, license_id, instance, version) VALUES ($1, $2, $3, 'one.example', 5), ($4, $2, $3, 'two.example', 6)`,
				[]any{uuid.NewString(), bid, lid, uuid.NewString()}},
		} {
			if _, err := c.Exec(ctx, q.sql, q.args...); err != nil {
				t.Fatalf("%s: %v", q.sql, err)
			}
		}
	}
	return s
}

func newStore(t *testing.T, replicaURL, primaryURL string, cfg Config) *Store {
	t.Helper()
	var pools [2]*pgxpool.Pool
	for i, u := range []string{replicaURL, primaryURL} {
		p, err := Connect(u, 4, time.Second, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if p != nil {
			t.Cleanup(p.Close)
		}
		pools[i] = p
	}
	return New(pools[0], pools[1], version.New(), cfg, time.Now, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
}

// TestStateIsBrandScoped reads as license_edge through row-level security: the brand
// scope set in the batch holds for the query, a key is only found under its own brand,
// the state carries the key's version and licenses, and an instance entry the licenses
// the instance is activated on.
func TestStateIsBrandScoped(t *testing.T) {
	db := dbtest.New(t)
	s := seed(t, db.AdminURL)
	st := newStore(t, "", db.EdgeURL, Config{})
	ctx := context.Background()
	for i := range 2 { // the second read uses the cached brand id
		r, err := st.Get(ctx, "brand-a", s.keyA)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Found || r.State.Version != 7 || r.State.Brand != "brand-a" || len(r.State.Licenses) != 1 {
			t.Fatalf("read %d: %+v", i, r)
		}
		l := r.State.Licenses[0]
		if l.Product != "pro" || l.Status != "valid" || *l.SeatLimit != 3 || l.SeatsUsed != 2 || l.ExpiresAt == nil || l.ID == "" {
			t.Fatalf("license %+v", l)
		}
		in, err := st.Instance(ctx, "brand-a", s.keyA, "two.example")
		if err != nil || !in.Found || in.Instance.AsOf != 7 || in.Instance.Changed != 6 || !in.Instance.On(l.ID) {
			t.Fatalf("instance entry %+v %v", in, err)
		}
		in, err = st.Instance(ctx, "brand-a", s.keyA, "three.example")
		if err != nil || !in.Found || in.Instance.AsOf != 7 || in.Instance.Changed != 0 || len(in.Instance.Activations) != 0 {
			t.Fatalf("entry of an instance without activation %+v %v", in, err)
		}
	}
	for _, c := range []struct{ brand, key string }{{"brand-b", s.keyA}, {"brand-a", s.keyB}, {"nobody", s.keyA}} {
		if r, err := st.Get(ctx, c.brand, c.key); err != nil || r.Found {
			t.Fatalf("%s with a key of another brand: found %v err %v", c.brand, r.Found, err)
		}
		if r, err := st.Instance(ctx, c.brand, c.key, "one.example"); err != nil || r.Found {
			t.Fatalf("%s: instance of a key of another brand: found %v err %v", c.brand, r.Found, err)
		}
	}
	if st.Reads() != 12 {
		t.Fatalf("%d reads, want 12", st.Reads())
	}
}

// TestReplicaBehindKnownVersionReadsPrimary: a replica answer older than a version the
// edge knows is refused and the primary is read instead.
func TestReplicaBehindKnownVersionReadsPrimary(t *testing.T) {
	db := dbtest.New(t)
	s := seed(t, db.AdminURL)
	// "replica" and "primary" are the same database here; the known version makes the
	// first answer too old, so the refusal path is what is tested
	st := newStore(t, db.EdgeURL, db.EdgeURL, Config{})
	st.known.Observe(source.CacheKey("brand-a", s.keyA), 8, time.Now())
	_, err := st.Get(context.Background(), "brand-a", s.keyA)
	if !errors.Is(err, source.ErrUnavailable) || st.Reads() != 2 {
		t.Fatalf("both behind the known version: err %v after %d reads, want unavailable after 2", err, st.Reads())
	}
	st.known = version.New()
	st.known.Observe(source.CacheKey("brand-a", s.keyA), 7, time.Now())
	if r, err := st.Get(context.Background(), "brand-a", s.keyA); err != nil || r.Tier != "replica" {
		t.Fatalf("replica up to date: %v %s", err, r.Tier)
	}
}

func TestReadLimit(t *testing.T) {
	db := dbtest.New(t)
	seed(t, db.AdminURL)
	st := newStore(t, db.EdgeURL, "", Config{Rate: 1, Burst: 3})
	limited := 0
	for range 10 {
		if _, err := st.Get(context.Background(), "brand-a", license.NewKey()); errors.Is(err, ErrLimited) {
			limited++
		}
	}
	if st.Reads() != 3 || limited != 7 {
		t.Fatalf("%d reads, %d limited; want 3 and 7", st.Reads(), limited)
	}
}
