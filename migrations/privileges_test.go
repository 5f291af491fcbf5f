package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/internal/statusread"
	"github.com/licensing/licensing/shared/license"
)

const insufficientPrivilege = "42501"

type brand struct{ id, slug, key, instance string }

func connect(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// seed writes two brands with a product, a key, a license and an activation each, plus
// an API key, an idempotency record, an audit event and an outbox row, as the superuser.
func seed(t *testing.T, ctx context.Context, admin *pgx.Conn) []brand {
	t.Helper()
	var out []brand
	for _, slug := range []string{"brand-a", "brand-b"} {
		b := brand{id: uuid.NewString(), slug: slug, key: license.NewKey(), instance: slug + ".example"}
		pid, kid, lid := uuid.NewString(), uuid.NewString(), uuid.NewString()
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO brands (id, slug, name) VALUES ($1, $2, $2)`, []any{b.id, slug}},
			{`INSERT INTO api_keys (id, brand_id, prefix, secret_hash) VALUES ($1, $2, $3, '\x00')`, []any{uuid.NewString(), b.id, "p" + slug}},
			{`INSERT INTO products (id, brand_id, code, name) VALUES ($1, $2, 'pro', 'Pro')`, []any{pid, b.id}},
			{`INSERT INTO license_keys (id, brand_id, key, customer_email, version) VALUES ($1, $2, $3, 'a@example.com', 3)`, []any{kid, b.id, b.key}},
			{`INSERT INTO licenses (id, brand_id, license_key_id, product_id, status, seat_limit, seats_used)
			  VALUES ($1, $2, $3, $4, 'valid', 3, 1)`, []any{lid, b.id, kid, pid}},
			{`INSERT INTO activations (id, brand_id, license_id, instance, version) VALUES ($1, $2, $3, $4, 2)`,
				[]any{uuid.NewString(), b.id, lid, b.instance}},
			{`INSERT INTO idempotency_keys (brand_id, key, fingerprint, state, claim_token, renewed_at)
			  VALUES ($1, 'idem', '\x00', 'running', gen_random_uuid(), now())`, []any{b.id}},
			{`INSERT INTO audit_events (id, brand_id, action, actor) VALUES ($1, $2, 'test', 'test')`, []any{uuid.NewString(), b.id}},
			{`INSERT INTO outbox (brand_id, license_key_id, version, subject, payload) VALUES ($1, $2, 3, 'x', '{}')`, []any{b.id, kid}},
		} {
			if _, err := admin.Exec(ctx, q.sql, q.args...); err != nil {
				t.Fatalf("%s: %v", q.sql, err)
			}
		}
		out = append(out, b)
	}
	return out
}

// refused runs sql as the connection's role in a transaction scoped to brandID (so
// row-level security would let a permitted statement through) and wants it refused for
// lack of privilege.
func refused(t *testing.T, ctx context.Context, c *pgx.Conn, brandID, sql string) {
	t.Helper()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT set_config('app.brand_id', $1, true)`, brandID); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, sql)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != insufficientPrivilege {
		t.Errorf("as license_edge, %s: %v, want insufficient_privilege (%s)", sql, err, insufficientPrivilege)
	}
}

// counts is the number of rows of every table, read as the superuser.
func counts(t *testing.T, ctx context.Context, admin *pgx.Conn, tables []string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tb := range tables {
		var n int64
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{tb}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}

// TestEdgeRoleCannotWrite: license_edge is refused INSERT, UPDATE, DELETE and TRUNCATE on
// every table of the schema (partitions and goose's own table included), every sequence,
// every function of the schema, CREATE, and SELECT of anything a status check does not
// read; nothing changes. It is an ordinary login role that owns nothing.
func TestEdgeRoleCannotWrite(t *testing.T) {
	db := dbtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := connect(t, ctx, db.AdminURL)
	edge := connect(t, ctx, db.EdgeURL)
	brands := seed(t, ctx, admin)

	var super, bypass, createRole, createDB, login bool
	var owned int
	if err := admin.QueryRow(ctx, `SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin,
		  (SELECT count(*) FROM pg_class WHERE relowner = r.oid) + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
		FROM pg_roles r WHERE rolname = 'license_edge'`).Scan(&super, &bypass, &createRole, &createDB, &login, &owned); err != nil {
		t.Fatal(err)
	}
	if super || bypass || createRole || createDB || !login || owned != 0 {
		t.Fatalf("license_edge: super %v bypassrls %v createrole %v createdb %v login %v, owns %d objects", super, bypass, createRole, createDB, login, owned)
	}
	var user string
	if err := edge.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil || user != "license_edge" {
		t.Fatalf("connected as %q (%v), want license_edge", user, err)
	}

	rows, err := admin.Query(ctx, `SELECT c.relname, a.attname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type table struct{ Name, Col string }
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[table])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	for _, want := range []string{"brands", "api_keys", "products", "license_keys", "licenses", "activations", "activations_p0",
		"activations_p15", "idempotency_keys", "audit_events", "outbox", "leases", "goose_db_version"} {
		if !slices.Contains(names, want) {
			t.Fatalf("table %s not among %v", want, names)
		}
	}
	before := counts(t, ctx, admin, names)
	for _, tb := range tables {
		name, col := pgx.Identifier{tb.Name}.Sanitize(), pgx.Identifier{tb.Col}.Sanitize()
		for _, sql := range []string{
			"INSERT INTO " + name + " DEFAULT VALUES",
			fmt.Sprintf("INSERT INTO %s SELECT * FROM %s", name, name),
			fmt.Sprintf("UPDATE %s SET %s = %s", name, col, col),
			"DELETE FROM " + name,
			"TRUNCATE " + name,
		} {
			refused(t, ctx, edge, brands[0].id, sql)
		}
	}
	seqs, err := admin.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'S'`)
	if err != nil {
		t.Fatal(err)
	}
	seqNames, err := pgx.CollectRows(seqs, pgx.RowTo[string])
	if err != nil || len(seqNames) == 0 {
		t.Fatalf("sequences %v %v", seqNames, err)
	}
	for _, s := range seqNames {
		refused(t, ctx, edge, brands[0].id, fmt.Sprintf("SELECT nextval('%s')", s))
		refused(t, ctx, edge, brands[0].id, fmt.Sprintf("SELECT setval('%s', 1000)", s))
	}
	// no function of the schema (the seat statements write as their caller)
	fns, err := admin.Query(ctx, `SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'public' AND has_function_privilege('license_edge', p.oid, 'EXECUTE')`)
	if err != nil {
		t.Fatal(err)
	}
	if callable, err := pgx.CollectRows(fns, pgx.RowTo[string]); err != nil || len(callable) > 0 {
		t.Fatalf("license_edge may execute %v (%v)", callable, err)
	}
	refused(t, ctx, edge, brands[0].id, `SELECT license_activate(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	refused(t, ctx, edge, brands[0].id, `SELECT license_deactivate(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	refused(t, ctx, edge, brands[0].id, `CREATE TABLE edge_scratch (id int)`)
	refused(t, ctx, edge, brands[0].id, `CREATE FUNCTION edge_scratch() RETURNS int LANGUAGE sql AS 'SELECT 1'`)
	// reads beyond what a status check names
	for _, sql := range []string{
		`SELECT customer_email FROM license_keys`, `SELECT * FROM license_keys`, `SELECT name FROM brands`,
		`SELECT created_at FROM licenses`, `SELECT id FROM activations`, `SELECT name FROM products`,
		`SELECT license_id FROM activations_p0`, `SELECT * FROM api_keys`, `SELECT * FROM idempotency_keys`,
		`SELECT * FROM audit_events`, `SELECT * FROM outbox`, `SELECT * FROM leases`, `SELECT * FROM goose_db_version`,
	} {
		refused(t, ctx, edge, brands[0].id, sql)
	}
	if after := counts(t, ctx, admin, names); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("rows changed: before %v after %v", before, after)
	}

	// the writer's role keeps its seat statements (00004 took them from PUBLIC only)
	app := connect(t, ctx, db.AppURL)
	var outcome string
	if err := app.QueryRow(ctx, `SELECT (license_activate($1, $2, $3, 'nope', 'x', false, NULL, gen_random_uuid(), gen_random_uuid(), now(), 'test', '')).outcome`,
		brands[0].id, brands[0].slug, brands[0].key).Scan(&outcome); err != nil || outcome != "license_not_found" {
		t.Fatalf("license_app calling license_activate: %q %v", outcome, err)
	}
}

// edgeRead runs a status read as the edge does (edge/replica): set_config of the brand
// resolved by slug, then the query, in one batch (one implicit transaction).
func edgeRead(ctx context.Context, c *pgx.Conn, slug, query string, args []any, scan func(pgx.BatchResults) error) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('app.brand_id', coalesce((SELECT id::text FROM brands WHERE slug = $1), ''), true)`, slug)
	b.Queue(query, args...)
	br := c.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		err = scan(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestEdgeRoleReadsStatusUnderRLS: as license_edge the two status reads work, scoped to
// the brand (a key is found only under its own brand's slug), on the primary and on the
// streaming replica; row-level security hides every row without a brand scope, and the
// operator's scope 'all' that license_app may use shows license_edge nothing.
func TestEdgeRoleReadsStatusUnderRLS(t *testing.T) {
	db := dbtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := connect(t, ctx, db.AdminURL)
	brands := seed(t, ctx, admin)
	urls := map[string]string{"primary": db.EdgeURL}
	if db.ReplicaEdgeURL != "" {
		urls["replica"] = db.ReplicaEdgeURL
	}
	var lsn string
	if err := admin.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for tier, u := range urls {
		edge := connect(t, ctx, u)
		if tier == "replica" { // wait until the replica has replayed the seed
			for replayed := false; !replayed; time.Sleep(20 * time.Millisecond) {
				if err := edge.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&replayed); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, b := range brands {
			var st license.State
			var found bool
			err := edgeRead(ctx, edge, b.slug, statusread.StateQuery, []any{b.slug, b.key}, func(br pgx.BatchResults) error {
				rows, err := br.Query()
				if err != nil {
					return err
				}
				st, found, err = statusread.ScanState(rows)
				return err
			})
			if err != nil {
				t.Fatalf("%s: state of %s: %v", tier, b.slug, err)
			}
			if !found || st.Brand != b.slug || st.BrandID != b.id || st.Version != 3 || len(st.Licenses) != 1 ||
				st.Licenses[0].Product != "pro" || st.Licenses[0].SeatsUsed != 1 || *st.Licenses[0].SeatLimit != 3 {
				t.Fatalf("%s: state of %s's key: found %v %+v", tier, b.slug, found, st)
			}
			var in license.Instance
			err = edgeRead(ctx, edge, b.slug, statusread.InstanceQuery, []any{b.slug, b.key, b.instance}, func(br pgx.BatchResults) error {
				var err error
				in, found, err = statusread.ScanInstance(br.QueryRow(), b.instance)
				return err
			})
			if err != nil || !found || in.AsOf != 3 || in.Changed != 2 || !in.On(st.Licenses[0].ID) {
				t.Fatalf("%s: instance of %s: found %v %+v %v", tier, b.slug, found, in, err)
			}
		}
		// a key under the other brand's slug: nothing, by the query's filter and by RLS
		for i, b := range brands {
			other := brands[1-i]
			err := edgeRead(ctx, edge, other.slug, statusread.StateQuery, []any{other.slug, b.key}, func(br pgx.BatchResults) error {
				rows, err := br.Query()
				if err != nil {
					return err
				}
				_, found, err := statusread.ScanState(rows)
				if found {
					return fmt.Errorf("%s's key found under %s", b.slug, other.slug)
				}
				return err
			})
			if err != nil {
				t.Fatalf("%s: %v", tier, err)
			}
		}
		// RLS alone: under brand A's scope only brand A's rows, without a scope or with
		// 'all' none
		for scope, want := range map[string]int{brands[0].id: 1, "": 0, "all": 0, "not-a-brand": 0} {
			tx, err := edge.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var keys, lics, acts, prods int
			if _, err = tx.Exec(ctx, `SELECT set_config('app.brand_id', $1, true)`, scope); err == nil {
				err = tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM license_keys), (SELECT count(id) FROM licenses),
					(SELECT count(license_id) FROM activations), (SELECT count(code) FROM products)`).Scan(&keys, &lics, &acts, &prods)
			}
			_ = tx.Rollback(ctx)
			if err != nil || keys != want || lics != want || acts != want || prods != want {
				t.Fatalf("%s: scope %q: %d keys, %d licenses, %d activations, %d products (%v), want %d of each",
					tier, scope, keys, lics, acts, prods, err, want)
			}
		}
	}
	// the writer's role still sees every brand under 'all' (operator look-ups)
	app := connect(t, ctx, db.AppURL)
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	var n int
	if _, err := tx.Exec(ctx, `SELECT set_config('app.brand_id', 'all', true)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM license_keys`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("license_app under 'all': %d keys (%v), want 2", n, err)
	}
}
