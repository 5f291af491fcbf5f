// Package postgres implements the writer's licensing.Store on PostgreSQL with pgx. Every
// transaction sets app.brand_id first, so row-level security scopes it to one brand (or
// to all, for the operator and for look-ups by slug or credential). Driver errors become
// problem kinds here: no rows → not_found, unique violation (23505) → conflict.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/writer/licensing"
)

// Store is a licensing.Store over a pgx pool.
type Store struct {
	pool *pgxpool.Pool
}

var _ licensing.Store = (*Store)(nil)

// New returns a store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Connect opens a pool for url with settings suited to the writer.
func Connect(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "license-writer"
	// no statement or idle transaction may outlive the idempotency lock timeout (60 s):
	// a request that stalls is cut off before a retry may take its claim over
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "20s"
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "20s"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return pool, nil
}

// Tx implements licensing.Store.
func (s *Store) Tx(ctx context.Context, scope licensing.Scope, fn func(licensing.Tx) error) error {
	return s.run(ctx, scope, pgx.TxOptions{}, fn)
}

// ReadTx implements licensing.Store.
func (s *Store) ReadTx(ctx context.Context, scope licensing.Scope, fn func(licensing.Tx) error) error {
	return s.run(ctx, scope, pgx.TxOptions{AccessMode: pgx.ReadOnly}, fn)
}

func (s *Store) run(ctx context.Context, scope licensing.Scope, opts pgx.TxOptions, fn func(licensing.Tx) error) error {
	// The scope is spliced into the BEGIN statement so that beginning and scoping the
	// transaction cost one round trip; it is validated first (a UUID or "all").
	if scope != licensing.ScopeAll {
		if u, err := uuid.Parse(string(scope)); err != nil || u.String() != string(scope) {
			return fmt.Errorf("postgres: invalid scope %q", scope)
		}
	}
	mode := "READ WRITE"
	if opts.AccessMode == pgx.ReadOnly {
		// one snapshot for every statement: a key, its licenses and their activations
		// are read at the same version
		mode = "ISOLATION LEVEL REPEATABLE READ READ ONLY"
	}
	opts.BeginQuery = "BEGIN " + mode + "; SELECT set_config('app.brand_id', '" + string(scope) + "', true)"
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after commit it is a no-op
	t := &txn{tx: tx}
	if err := fn(t); err != nil {
		return err
	}
	if err := t.flush(ctx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	return nil
}

// txn is one transaction. Writes whose results the domain does not read (activation
// inserts, license updates, the change record) are queued and sent in one batch with the
// next read or at commit: an activation costs five round trips instead of ten.
type txn struct {
	tx      pgx.Tx
	pending *pgx.Batch
	checks  []func(pgconn.CommandTag) error
}

// queue defers a write; check (optional) validates its command tag at flush.
func (t *txn) queue(check func(pgconn.CommandTag) error, sql string, args ...any) {
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	t.pending.Queue(sql, args...)
	t.checks = append(t.checks, check)
}

// flush sends the queued writes.
func (t *txn) flush(ctx context.Context) error {
	if t.pending == nil {
		return nil
	}
	b, checks := t.pending, t.checks
	t.pending, t.checks = nil, nil
	res := t.tx.SendBatch(ctx, b)
	for _, check := range checks {
		tag, err := res.Exec()
		if err == nil && check != nil {
			err = check(tag)
		}
		if err != nil {
			res.Close()
			return mapErr(err)
		}
	}
	return mapErr(res.Close())
}

func oneRow(tag pgconn.CommandTag) error {
	if tag.RowsAffected() != 1 {
		return pgx.ErrNoRows
	}
	return nil
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// row, query and exec flush pending writes first, so reads see them.
func (t *txn) row(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(ctx, sql, args...)
}

func (t *txn) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.Query(ctx, sql, args...)
}

func (t *txn) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.tx.Exec(ctx, sql, args...)
}

// mapErr turns driver errors into problem kinds.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return &problem.Error{Kind: problem.NotFound, Detail: "not found"}
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			return &problem.Error{Kind: problem.Conflict, Detail: "already exists"}
		case "40001", "40P01":
			return fmt.Errorf("serialization failure: %w", err)
		}
	}
	return err
}

func jsonOrNil(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

func nullUUID(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---------------------------------------------------------------- brands and keys

func (t *txn) InsertBrand(ctx context.Context, b licensing.BrandRow) error {
	_, err := t.exec(ctx, `INSERT INTO brands (id, slug, name, created_at) VALUES ($1, $2, $3, $4)`,
		b.ID, b.Slug, b.Name, b.CreatedAt)
	return mapErr(err)
}

func scanBrand(row pgx.Row) (licensing.BrandRow, error) {
	var b licensing.BrandRow
	err := row.Scan(&b.ID, &b.Slug, &b.Name, &b.CreatedAt)
	return b, mapErr(err)
}

func (t *txn) BrandBySlug(ctx context.Context, slug string) (licensing.BrandRow, error) {
	return scanBrand(t.row(ctx, `SELECT id, slug, name, created_at FROM brands WHERE slug = $1`, slug))
}

func (t *txn) BrandByID(ctx context.Context, id string) (licensing.BrandRow, error) {
	return scanBrand(t.row(ctx, `SELECT id, slug, name, created_at FROM brands WHERE id = $1`, id))
}

func (t *txn) ListBrands(ctx context.Context, after string, limit int) ([]licensing.BrandRow, error) {
	rows, err := t.query(ctx, `SELECT id, slug, name, created_at FROM brands
		WHERE ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2`, nullUUID(after), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, func(r pgx.Rows) (licensing.BrandRow, error) { return scanBrand(r) })
}

func collect[T any](rows pgx.Rows, scan func(pgx.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err())
}

func (t *txn) InsertAPIKey(ctx context.Context, k licensing.APIKeyRow) error {
	_, err := t.exec(ctx, `INSERT INTO api_keys (id, brand_id, prefix, secret_hash, scopes, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, k.ID, k.BrandID, k.Prefix, k.SecretHash, k.Scopes, k.CreatedAt)
	return mapErr(err)
}

func (t *txn) APIKeyByPrefix(ctx context.Context, prefix string) (licensing.APIKeyRow, error) {
	var k licensing.APIKeyRow
	err := t.row(ctx, `SELECT k.id, k.brand_id, k.prefix, k.secret_hash, k.scopes, k.created_at, k.revoked_at, b.slug
		FROM api_keys k JOIN brands b ON b.id = k.brand_id WHERE k.prefix = $1`, prefix).
		Scan(&k.ID, &k.BrandID, &k.Prefix, &k.SecretHash, &k.Scopes, &k.CreatedAt, &k.RevokedAt, &k.BrandSlug)
	return k, mapErr(err)
}

func (t *txn) RevokeAPIKey(ctx context.Context, brandID, id string, at time.Time) error {
	tag, err := t.exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE brand_id = $1 AND id = $2`, brandID, id, at)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return mapErr(pgx.ErrNoRows)
	}
	return nil
}

// ---------------------------------------------------------------- products

func scanProduct(r pgx.Row) (licensing.ProductRow, error) {
	var p licensing.ProductRow
	err := r.Scan(&p.ID, &p.BrandID, &p.Code, &p.Name, &p.CreatedAt)
	return p, mapErr(err)
}

func (t *txn) InsertProduct(ctx context.Context, p licensing.ProductRow) error {
	_, err := t.exec(ctx, `INSERT INTO products (id, brand_id, code, name, created_at) VALUES ($1, $2, $3, $4, $5)`,
		p.ID, p.BrandID, p.Code, p.Name, p.CreatedAt)
	return mapErr(err)
}

func (t *txn) ListProducts(ctx context.Context, brandID, after string, limit int) ([]licensing.ProductRow, error) {
	rows, err := t.query(ctx, `SELECT id, brand_id, code, name, created_at FROM products
		WHERE brand_id = $1 AND ($2::uuid IS NULL OR id > $2::uuid) ORDER BY id LIMIT $3`, brandID, nullUUID(after), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, func(r pgx.Rows) (licensing.ProductRow, error) { return scanProduct(r) })
}

func (t *txn) ProductsByCode(ctx context.Context, brandID string, codes []string) (map[string]licensing.ProductRow, error) {
	rows, err := t.query(ctx, `SELECT id, brand_id, code, name, created_at FROM products
		WHERE brand_id = $1 AND code = ANY($2)`, brandID, codes)
	if err != nil {
		return nil, mapErr(err)
	}
	list, err := collect(rows, func(r pgx.Rows) (licensing.ProductRow, error) { return scanProduct(r) })
	if err != nil {
		return nil, err
	}
	out := make(map[string]licensing.ProductRow, len(list))
	for _, p := range list {
		out[p.Code] = p
	}
	return out, nil
}

// ---------------------------------------------------------------- license keys

const keyCols = `k.id, k.brand_id, k.key, k.customer_email, k.version, k.created_at, k.updated_at, b.slug`

func scanKey(r pgx.Row) (licensing.KeyRow, error) {
	var k licensing.KeyRow
	err := r.Scan(&k.ID, &k.BrandID, &k.Key, &k.CustomerEmail, &k.Version, &k.CreatedAt, &k.UpdatedAt, &k.BrandSlug)
	return k, mapErr(err)
}

func (t *txn) InsertLicenseKey(ctx context.Context, k licensing.KeyRow) error {
	_, err := t.exec(ctx, `INSERT INTO license_keys (id, brand_id, key, customer_email, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, k.BrandID, k.Key, k.CustomerEmail, k.Version, k.CreatedAt, k.UpdatedAt)
	return mapErr(err)
}

func (t *txn) KeyByString(ctx context.Context, brandID, key string) (licensing.KeyRow, error) {
	return scanKey(t.row(ctx, `SELECT `+keyCols+` FROM license_keys k JOIN brands b ON b.id = k.brand_id
		WHERE k.brand_id = $1 AND k.key = $2`, brandID, key))
}

func (t *txn) LockKeyByString(ctx context.Context, brandID, key string) (licensing.KeyRow, error) {
	return scanKey(t.row(ctx, `SELECT `+keyCols+` FROM license_keys k JOIN brands b ON b.id = k.brand_id
		WHERE k.brand_id = $1 AND k.key = $2 FOR UPDATE OF k`, brandID, key))
}

func (t *txn) LockKeyByID(ctx context.Context, brandID, id string) (licensing.KeyRow, error) {
	return scanKey(t.row(ctx, `SELECT `+keyCols+` FROM license_keys k JOIN brands b ON b.id = k.brand_id
		WHERE k.brand_id = $1 AND k.id = $2 FOR UPDATE OF k`, brandID, id))
}

func (t *txn) LockKeyAndLicenses(ctx context.Context, brandID, key string) (licensing.KeyRow, []licensing.LicenseRow, error) {
	if err := t.flush(ctx); err != nil {
		return licensing.KeyRow{}, nil, err
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT `+keyCols+` FROM license_keys k JOIN brands b ON b.id = k.brand_id
		WHERE k.brand_id = $1 AND k.key = $2 FOR UPDATE OF k`, brandID, key)
	b.Queue(`SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND k.key = $2 ORDER BY l.id`, brandID, key)
	res := t.tx.SendBatch(ctx, b)
	defer res.Close()
	k, err := scanKey(res.QueryRow())
	if err != nil {
		return k, nil, err
	}
	rows, err := res.Query()
	if err != nil {
		return k, nil, mapErr(err)
	}
	ls, err := collect(rows, func(r pgx.Rows) (licensing.LicenseRow, error) { return scanLicense(r) })
	if err != nil {
		return k, nil, err
	}
	return k, ls, mapErr(res.Close())
}

// ---------------------------------------------------------------- licenses

const licCols = `l.id, l.brand_id, l.license_key_id, l.product_id, l.status, l.expires_at, l.seat_limit, l.seats_used,
	l.created_at, l.updated_at, k.key, p.code, b.slug`

const licFrom = ` FROM licenses l JOIN license_keys k ON k.id = l.license_key_id
	JOIN products p ON p.id = l.product_id JOIN brands b ON b.id = l.brand_id `

func scanLicense(r pgx.Row) (licensing.LicenseRow, error) {
	var l licensing.LicenseRow
	err := r.Scan(&l.ID, &l.BrandID, &l.KeyID, &l.ProductID, &l.Status, &l.ExpiresAt, &l.SeatLimit, &l.SeatsUsed,
		&l.CreatedAt, &l.UpdatedAt, &l.Key, &l.ProductCode, &l.BrandSlug)
	return l, mapErr(err)
}

func (t *txn) InsertLicense(ctx context.Context, l licensing.LicenseRow) error {
	_, err := t.exec(ctx, `INSERT INTO licenses (id, brand_id, license_key_id, product_id, status, expires_at,
		seat_limit, seats_used, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		l.ID, l.BrandID, l.KeyID, l.ProductID, l.Status, l.ExpiresAt, l.SeatLimit, l.SeatsUsed, l.CreatedAt, l.UpdatedAt)
	return mapErr(err)
}

func (t *txn) LicenseByID(ctx context.Context, brandID, id string) (licensing.LicenseRow, error) {
	return scanLicense(t.row(ctx, `SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND l.id = $2`, brandID, id))
}

func (t *txn) LockLicense(ctx context.Context, brandID, id string) (licensing.LicenseRow, error) {
	return scanLicense(t.row(ctx, `SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND l.id = $2 FOR UPDATE OF l`, brandID, id))
}

func (t *txn) LockLicenseAndActivation(ctx context.Context, brandID, id, instance string) (licensing.LicenseRow, licensing.ActivationRow, bool, error) {
	if err := t.flush(ctx); err != nil {
		return licensing.LicenseRow{}, licensing.ActivationRow{}, false, err
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND l.id = $2 FOR UPDATE OF l`, brandID, id)
	b.Queue(`SELECT `+actCols+` FROM activations WHERE license_id = $2 AND instance = $3 AND brand_id = $1`, brandID, id, instance)
	res := t.tx.SendBatch(ctx, b)
	defer res.Close()
	l, err := scanLicense(res.QueryRow())
	if err != nil {
		return l, licensing.ActivationRow{}, false, err
	}
	a, err := scanActivation(res.QueryRow())
	if problem.Is(err, problem.NotFound) {
		return l, a, false, mapErr(res.Close())
	}
	if err != nil {
		return l, a, false, err
	}
	return l, a, true, mapErr(res.Close())
}

func (t *txn) LicensesOfKeys(ctx context.Context, brandID string, keyIDs []string) ([]licensing.LicenseRow, error) {
	rows, err := t.query(ctx, `SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND l.license_key_id = ANY($2::uuid[])
		ORDER BY l.id`, brandID, keyIDs)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, func(r pgx.Rows) (licensing.LicenseRow, error) { return scanLicense(r) })
}

// UpdateLicense is queued: its error (a unique violation, a CHECK) surfaces at the next
// read or at commit.
func (t *txn) UpdateLicense(ctx context.Context, l licensing.LicenseRow) error {
	t.queue(oneRow, `UPDATE licenses SET status = $3, expires_at = $4, seat_limit = $5, seats_used = $6,
		updated_at = $7 WHERE brand_id = $1 AND id = $2`, l.BrandID, l.ID, l.Status, l.ExpiresAt, l.SeatLimit, l.SeatsUsed, l.UpdatedAt)
	return nil
}

func (t *txn) TakeSeat(ctx context.Context, brandID, id string, at time.Time) (licensing.LicenseRow, bool, error) {
	l, err := scanLicense(t.row(ctx, `WITH l AS (
		UPDATE licenses SET seats_used = seats_used + 1, updated_at = $3
		WHERE brand_id = $1 AND id = $2 AND (seat_limit IS NULL OR seats_used < seat_limit) RETURNING *)
		SELECT `+licCols+` FROM l JOIN license_keys k ON k.id = l.license_key_id
		JOIN products p ON p.id = l.product_id JOIN brands b ON b.id = l.brand_id`, brandID, id, at))
	if problem.Is(err, problem.NotFound) {
		return l, false, nil
	}
	return l, err == nil, err
}

func (t *txn) LicensesByEmail(ctx context.Context, brandID, email, after string, limit int) ([]licensing.LicenseRow, error) {
	rows, err := t.query(ctx, `SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND k.brand_id = $1
		AND k.customer_email = $2 AND ($3::uuid IS NULL OR l.id > $3::uuid) ORDER BY l.id LIMIT $4`,
		brandID, email, nullUUID(after), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, func(r pgx.Rows) (licensing.LicenseRow, error) { return scanLicense(r) })
}

func (t *txn) CustomerLicenses(ctx context.Context, email, after string, limit int) ([]licensing.LicenseRow, error) {
	rows, err := t.query(ctx, `SELECT `+licCols+licFrom+`WHERE k.customer_email = $1
		AND ($2::uuid IS NULL OR l.id > $2::uuid) ORDER BY l.id LIMIT $3`, email, nullUUID(after), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, func(r pgx.Rows) (licensing.LicenseRow, error) { return scanLicense(r) })
}

// ---------------------------------------------------------------- activations

func scanActivation(r pgx.Row) (licensing.ActivationRow, error) {
	var a licensing.ActivationRow
	err := r.Scan(&a.ID, &a.BrandID, &a.LicenseID, &a.Instance, &a.ActivatedAt)
	return a, mapErr(err)
}

const actCols = `id, brand_id, license_id, instance, activated_at`

func (t *txn) Activations(ctx context.Context, brandID string, licenseIDs []string) ([]licensing.ActivationRow, error) {
	if len(licenseIDs) == 0 {
		return nil, nil
	}
	rows, err := t.query(ctx, `SELECT `+actCols+` FROM activations WHERE license_id = ANY($2::uuid[]) AND brand_id = $1
		ORDER BY activated_at, id`, brandID, licenseIDs)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, func(r pgx.Rows) (licensing.ActivationRow, error) { return scanActivation(r) })
}

func (t *txn) ActivationByInstance(ctx context.Context, brandID, licenseID, instance string) (licensing.ActivationRow, error) {
	return scanActivation(t.row(ctx, `SELECT `+actCols+` FROM activations
		WHERE license_id = $2 AND instance = $3 AND brand_id = $1`, brandID, licenseID, instance))
}

func (t *txn) ActivationByID(ctx context.Context, brandID, licenseID, id string) (licensing.ActivationRow, error) {
	return scanActivation(t.row(ctx, `SELECT `+actCols+` FROM activations
		WHERE license_id = $2 AND id = $3 AND brand_id = $1`, brandID, licenseID, id))
}

// InsertActivation is queued (see UpdateLicense).
func (t *txn) InsertActivation(ctx context.Context, a licensing.ActivationRow) error {
	t.queue(nil, `INSERT INTO activations (id, brand_id, license_id, instance, activated_at)
		VALUES ($1, $2, $3, $4, $5)`, a.ID, a.BrandID, a.LicenseID, a.Instance, a.ActivatedAt)
	return nil
}

// DeleteActivation is queued (see UpdateLicense).
func (t *txn) DeleteActivation(ctx context.Context, brandID, licenseID, id string) error {
	t.queue(oneRow, `DELETE FROM activations WHERE license_id = $2 AND id = $3 AND brand_id = $1`, brandID, licenseID, id)
	return nil
}

// ---------------------------------------------------------------- audit and outbox

const insertAudit = `INSERT INTO audit_events (id, brand_id, license_key_id, license_id, action, actor, request_id, at, before, after)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

func auditArgs(a licensing.AuditRow) ([]any, error) {
	before, err := jsonOrNil(a.Before)
	if err != nil {
		return nil, err
	}
	after, err := jsonOrNil(a.After)
	if err != nil {
		return nil, err
	}
	return []any{a.ID, a.BrandID, nullUUID(a.KeyID), nullUUID(a.LicenseID), a.Action, a.Actor, a.Request, a.At, before, after}, nil
}

func (t *txn) InsertAudit(ctx context.Context, a licensing.AuditRow) error {
	args, err := auditArgs(a)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, insertAudit, args...)
	return mapErr(err)
}

// Record queues the version bump, the audit event and the outbox event and sends them,
// with any other queued writes, in one round trip.
func (t *txn) Record(ctx context.Context, c licensing.ChangeRecord) error {
	payload, err := json.Marshal(c.Event)
	if err != nil {
		return err
	}
	t.queue(oneRow, `UPDATE license_keys SET version = $2, updated_at = now() WHERE id = $1`, c.KeyID, c.NewVersion)
	if c.Audit != nil {
		args, err := auditArgs(*c.Audit)
		if err != nil {
			return err
		}
		t.queue(nil, insertAudit, args...)
	}
	t.queue(oneRow, `INSERT INTO outbox (brand_id, license_key_id, version, subject, payload)
		SELECT brand_id, id, $2, $3, $4 FROM license_keys WHERE id = $1`, c.KeyID, c.NewVersion, c.Subject, payload)
	if err := t.flush(ctx); err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	return nil
}

func (t *txn) ListEvents(ctx context.Context, brandID, licenseID, after string, limit int) ([]licensing.AuditRow, error) {
	rows, err := t.query(ctx, `SELECT id, brand_id, coalesce(license_key_id::text, ''), coalesce(license_id::text, ''),
		action, actor, request_id, at, before, after FROM audit_events
		WHERE brand_id = $1 AND license_id = $2 AND ($3::uuid IS NULL OR id > $3::uuid) ORDER BY id LIMIT $4`,
		brandID, licenseID, nullUUID(after), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, func(r pgx.Rows) (licensing.AuditRow, error) {
		var a licensing.AuditRow
		var before, after []byte
		if err := r.Scan(&a.ID, &a.BrandID, &a.KeyID, &a.LicenseID, &a.Action, &a.Actor, &a.Request, &a.At, &before, &after); err != nil {
			return a, mapErr(err)
		}
		if before != nil {
			a.Before = json.RawMessage(before)
		}
		if after != nil {
			a.After = json.RawMessage(after)
		}
		return a, nil
	})
}

// ---------------------------------------------------------------- idempotency

func (t *txn) ClaimIdempotency(ctx context.Context, r licensing.IdemRow, expiredBefore time.Time) (licensing.IdemRow, bool, error) {
	tag, err := t.exec(ctx, `INSERT INTO idempotency_keys (brand_id, key, fingerprint, state, created_at, locked_at)
		VALUES ($1, $2, $3, 'running', $4, $4)
		ON CONFLICT (brand_id, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'running',
			response_status = NULL, response_body = NULL, created_at = EXCLUDED.created_at, locked_at = EXCLUDED.locked_at
		WHERE idempotency_keys.created_at < $5`, r.BrandID, r.Key, r.Fingerprint, r.CreatedAt, expiredBefore)
	if err != nil {
		return licensing.IdemRow{}, false, mapErr(err)
	}
	if tag.RowsAffected() == 1 {
		return r, true, nil
	}
	var ex licensing.IdemRow
	var status *int
	err = t.row(ctx, `SELECT brand_id, key, fingerprint, state, response_status, response_body, created_at, locked_at
		FROM idempotency_keys WHERE brand_id = $1 AND key = $2`, r.BrandID, r.Key).
		Scan(&ex.BrandID, &ex.Key, &ex.Fingerprint, &ex.State, &status, &ex.ResponseBody, &ex.CreatedAt, &ex.LockedAt)
	if status != nil {
		ex.ResponseStatus = *status
	}
	return ex, false, mapErr(err)
}

func (t *txn) TakeOverIdempotency(ctx context.Context, brandID, key string, fp []byte, staleBefore, now time.Time) (bool, error) {
	tag, err := t.exec(ctx, `UPDATE idempotency_keys SET locked_at = $5 WHERE brand_id = $1 AND key = $2
		AND fingerprint = $3 AND state = 'running' AND locked_at < $4`, brandID, key, fp, staleBefore, now)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *txn) CompleteIdempotency(ctx context.Context, brandID, key string, claimedAt time.Time, status int, body []byte) error {
	tag, err := t.exec(ctx, `UPDATE idempotency_keys SET state = 'done', response_status = $4, response_body = $5
		WHERE brand_id = $1 AND key = $2 AND state = 'running' AND locked_at = $3`, brandID, key, claimedAt, status, body)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() != 1 {
		return problem.New(problem.IdempotencyInProgress, "this request's Idempotency-Key was taken over by a retry")
	}
	return nil
}

func (t *txn) ReleaseIdempotency(ctx context.Context, brandID, key string, claimedAt time.Time) error {
	_, err := t.exec(ctx, `DELETE FROM idempotency_keys WHERE brand_id = $1 AND key = $2 AND state = 'running'
		AND locked_at = $3`, brandID, key, claimedAt)
	return mapErr(err)
}

func (t *txn) DeleteIdempotencyBefore(ctx context.Context, before time.Time) (int64, error) {
	tag, err := t.exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, before)
	if err != nil {
		return 0, mapErr(err)
	}
	return tag.RowsAffected(), nil
}
