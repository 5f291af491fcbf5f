package shield

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/shared/license"
)

// TestLoaderWaitsForTheReplica: a key committed on the primary just before a load is in
// the load even though the replica it reads applies WAL 300 ms late (a key created before
// an edge's stream was live reaches the filter through the scan only).
func TestLoaderWaitsForTheReplica(t *testing.T) {
	dbtest.Env(t, "LICENSE_TEST_LAGGING_REPLICA_URL")
	db := dbtest.New(t)
	ctx := context.Background()
	pool := func(url string) *pgxpool.Pool {
		p, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	primary, lagging := pool(db.EdgeURL), pool(db.LaggingEdgeURL)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	load := PostgresLoader(lagging, primary, 10*time.Second)
	for i := range 3 {
		key := license.NewKey()
		if _, err := admin.Exec(ctx, `WITH b AS (INSERT INTO brands (id, slug, name) VALUES (gen_random_uuid(), $1, 'B') RETURNING id)
			INSERT INTO license_keys (id, brand_id, key, customer_email) SELECT gen_random_uuid(), id, $2, 'c@example.com' FROM b`,
			"lag-"+string(rune('a'+i))+"x", key); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		if _, err := load(ctx, func(k string) { seen[k] = true }); err != nil {
			t.Fatal(err)
		}
		if !seen[key] {
			t.Fatalf("key %d committed before the load is not in it (%d keys loaded)", i, len(seen))
		}
	}
}
