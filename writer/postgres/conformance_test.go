package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/postgres"
	"github.com/licensing/licensing/writer/storetest"
)

type inspector struct{ admin *pgx.Conn }

func (i inspector) Events(t testing.TB, keyID string) []event.Change {
	rows, err := i.admin.Query(context.Background(), `SELECT payload FROM outbox WHERE license_key_id = $1 ORDER BY id`, keyID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []event.Change
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		var ch event.Change
		if err := json.Unmarshal(b, &ch); err != nil {
			t.Fatalf("outbox payload %s: %v", b, err)
		}
		out = append(out, ch)
	}
	return out
}

func (i inspector) KeyID(t testing.TB, key string) string {
	var id string
	if err := i.admin.QueryRow(context.Background(), `SELECT id FROM license_keys WHERE key = $1`, key).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSeatConformance runs the seat statements' conformance table against the SQL
// functions (writer/memstore runs the same table against the fake).
func TestSeatConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Postgres (make test); -short runs the table against writer/memstore")
	}
	storetest.Run(t, func(t *testing.T) (licensing.Store, storetest.Inspector) {
		db := dbtest.New(t)
		ctx := context.Background()
		pool, err := postgres.Connect(ctx, db.AppURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		admin, err := pgx.Connect(ctx, db.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Close(context.Background()) })
		return postgres.New(pool), inspector{admin}
	})
}
