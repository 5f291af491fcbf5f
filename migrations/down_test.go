package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
)

// TestEdgeRoleMigrationGoesDownAndUp: 00004's Down takes every privilege and policy of
// license_edge away (the role, cluster-wide, stays) and gives the seat functions back to
// PUBLIC; Up again restores them. (internal/dbtest cannot be used here: it imports this
// package.)
func TestEdgeRoleMigrationGoesDownAndUp(t *testing.T) {
	base := os.Getenv("LICENSE_TEST_PG_URL")
	if base == "" {
		if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
			t.Fatal("LICENSE_TEST_PG_URL is not set")
		}
		t.Skip("LICENSE_TEST_PG_URL is not set: this test needs the services of `make test`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	name := fmt.Sprintf("t_%d_migrations_down", os.Getpid())
	if _, err := server.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	defer server.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") //nolint:errcheck
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	if err := Up(ctx, u.String()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	state := func() (edgeSelects, policies int, publicActivate bool) {
		t.Helper()
		err := db.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM information_schema.column_privileges WHERE grantee = 'license_edge'),
			(SELECT count(*) FROM pg_policies WHERE policyname = 'edge_one_brand'),
			-- the function's signature changed in 00007: whichever one exists
			has_function_privilege('public', (SELECT oid FROM pg_proc WHERE proname = 'license_activate'), 'EXECUTE')`).
			Scan(&edgeSelects, &policies, &publicActivate)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	// 20 columns since 00004, activations.development since 00007
	if cols, pols, pub := state(); cols != 21 || pols != 4 || pub {
		t.Fatalf("after Up: license_edge may select %d columns (want 21), %d edge policies (want 4), PUBLIC executes license_activate: %v", cols, pols, pub)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if cols, pols, pub := state(); cols != 0 || pols != 0 || !pub {
		t.Fatalf("after Down: license_edge may select %d columns, %d edge policies, PUBLIC executes license_activate: %v", cols, pols, pub)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if cols, pols, pub := state(); cols != 21 || pols != 4 || pub {
		t.Fatalf("after Up again: %d columns, %d policies, PUBLIC executes license_activate: %v", cols, pols, pub)
	}
}
