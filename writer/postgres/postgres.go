// Package postgres implements the writer's licensing.Store on PostgreSQL with pgx. Every
// transaction sets app.brand_id first, so row-level security scopes it to one brand (or
// to all, for the operator and for look-ups by slug or credential). Driver errors become
// problem kinds here: no rows → not_found, unique violation (23505) → conflict; every
// other error is wrapped with the name of the operation that failed.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/internal/pgfault"
	"github.com/licensing/licensing/internal/statusread"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/licensing"
)

// Store is a licensing.Store over a pgx pool.
type Store struct {
	pool *pgxpool.Pool
	// OnUnavailable, when set, is called for every operation that failed because
	// Postgres could not be reached or refused to serve (metrics).
	OnUnavailable func()
	// OnAvailable, when set, is called once by the first operation that succeeds after
	// one failed that way: Postgres is back (the outbox relay resumes at once).
	OnAvailable func()
	// OnRefused, when set, is called for every operation Postgres refused because of a
	// value (mapped to invalid_request): a check the API lacks.
	OnRefused func()

	down atomic.Bool
}

var (
	_ licensing.Store = (*Store)(nil)
	_ licensing.Tx    = (*txn)(nil)
)

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
	return s.run(ctx, scope, false, fn)
}

// ReadTx implements licensing.Store.
func (s *Store) ReadTx(ctx context.Context, scope licensing.Scope, fn func(licensing.Tx) error) error {
	return s.run(ctx, scope, true, fn)
}

func (s *Store) run(ctx context.Context, scope licensing.Scope, readOnly bool, fn func(licensing.Tx) error) error {
	// The scope is spliced into the BEGIN statement so that beginning and scoping the
	// transaction cost one round trip; it is validated first (a UUID or "all").
	if scope != licensing.ScopeAll {
		if u, err := uuid.Parse(string(scope)); err != nil || u.String() != string(scope) {
			return fmt.Errorf("postgres: invalid scope %q", scope)
		}
	}
	mode := "READ WRITE"
	if readOnly {
		// one snapshot for every statement: a key, its licenses and their activations
		// are read at the same version
		mode = "ISOLATION LEVEL REPEATABLE READ READ ONLY"
	}
	opts := pgx.TxOptions{BeginQuery: "BEGIN " + mode + "; SELECT set_config('app.brand_id', '" + string(scope) + "', true)"}
	err := s.tx(ctx, opts, fn)
	s.count(err)
	return err
}

func (s *Store) count(err error) {
	switch {
	case problem.Is(err, problem.Unavailable):
		s.down.Store(true)
		if s.OnUnavailable != nil {
			s.OnUnavailable()
		}
	case problem.Is(err, problem.InvalidRequest) && errors.As(err, new(*pgconn.PgError)):
		if s.OnRefused != nil {
			s.OnRefused()
		}
	case err == nil || !problem.Is(err, problem.Internal):
		// an answer from Postgres: it is reachable
		if s.down.Swap(false) && s.OnAvailable != nil {
			s.OnAvailable()
		}
	}
}

func (s *Store) tx(ctx context.Context, opts pgx.TxOptions, fn func(licensing.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return mapErr("begin", err)
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
		return mapErr("commit", err)
	}
	return nil
}

// txn is one transaction. Writes whose results the domain does not read (license
// updates, change records) are queued and sent in one batch with the next read or at
// commit; their errors name the queued operation.
type txn struct {
	tx      pgx.Tx
	pending *pgx.Batch
	queued  []queued
	// failed is the first error met while queueing (returned by the next flush)
	failed error
}

type queued struct {
	op    string
	check func(pgconn.CommandTag) error
}

// queue defers a write; check (optional) validates its command tag at flush.
func (t *txn) queue(op string, check func(pgconn.CommandTag) error, sql string, args ...any) {
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	t.pending.Queue(sql, args...)
	t.queued = append(t.queued, queued{op, check})
}

// flush sends the queued writes.
func (t *txn) flush(ctx context.Context) error {
	if t.failed != nil {
		return t.failed
	}
	if t.pending == nil {
		return nil
	}
	b, qs := t.pending, t.queued
	t.pending, t.queued = nil, nil
	res := t.tx.SendBatch(ctx, b)
	for _, q := range qs {
		tag, err := res.Exec()
		if err == nil && q.check != nil {
			err = q.check(tag)
		}
		if err != nil {
			res.Close()
			return mapErr("queued "+q.op, err)
		}
	}
	return mapErr("queued writes", res.Close())
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

// mapErr turns driver errors into problem kinds, and wraps any other error with op. An
// error that already carries a kind passes unchanged. Postgres being unreachable or
// refusing to serve is unavailable (503, retry), never internal (500, a bug).
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *problem.Error
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return &problem.Error{Kind: problem.NotFound, Detail: "not found"}
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		return &problem.Error{Kind: problem.Conflict, Detail: "already exists"}
	}
	if errors.As(err, &pg) && refusedValue(pg.Code) {
		// the last wall: input the API's checks let through but Postgres refuses is the
		// client's error, never a 5xx (counted: each one is a check the API lacks)
		return &problem.Error{Kind: problem.InvalidRequest, Reason: problem.BadValue,
			Detail: "a value was refused by the database", Cause: fmt.Errorf("%s: %w", op, err)}
	}
	if pgfault.Unavailable(err) {
		return &problem.Error{Kind: problem.Unavailable, Detail: "the database is temporarily unavailable; retry later",
			Cause: fmt.Errorf("%s: %w", op, err)}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// refusedValue reports whether a SQLSTATE says a value was refused: a data exception
// (class 22: invalid encoding, out-of-range date, over-long string …), a check constraint
// (23514) or a value over a Postgres limit (54000).
func refusedValue(code string) bool {
	return strings.HasPrefix(code, "22") || code == "23514" || code == "54000"
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

func collect[T any](op string, rows pgx.Rows, err error, scan func(pgx.Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, mapErr(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, mapErr(op, err)
		}
		out = append(out, v)
	}
	return out, mapErr(op, rows.Err())
}

// ---------------------------------------------------------------- brands and keys

func (t *txn) InsertBrand(ctx context.Context, b licensing.BrandRow) error {
	_, err := t.exec(ctx, `INSERT INTO brands (id, slug, name, created_at) VALUES ($1, $2, $3, $4)`,
		b.ID, b.Slug, b.Name, b.CreatedAt)
	return mapErr("insert brand", err)
}

const brandCols = `id, slug, name, created_at, rate_per_second, rate_burst`

func scanBrand(row pgx.Row) (licensing.BrandRow, error) {
	var b licensing.BrandRow
	var perSecond, burst *int
	err := row.Scan(&b.ID, &b.Slug, &b.Name, &b.CreatedAt, &perSecond, &burst)
	b.RateLimit = rateLimit(perSecond, burst)
	return b, err
}

func (t *txn) BrandBySlug(ctx context.Context, slug string) (licensing.BrandRow, error) {
	b, err := scanBrand(t.row(ctx, `SELECT `+brandCols+` FROM brands WHERE slug = $1`, slug))
	return b, mapErr("brand by slug", err)
}

func (t *txn) ListBrands(ctx context.Context, after string, limit int) ([]licensing.BrandRow, error) {
	rows, err := t.query(ctx, `SELECT `+brandCols+` FROM brands
		WHERE ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2`, nullUUID(after), limit)
	return collect("list brands", rows, err, func(r pgx.Rows) (licensing.BrandRow, error) { return scanBrand(r) })
}

func rateLimit(perSecond, burst *int) *resource.RateLimit {
	if perSecond == nil || burst == nil {
		return nil
	}
	return &resource.RateLimit{PerSecond: *perSecond, Burst: *burst}
}

func (t *txn) SetBrandRateLimit(ctx context.Context, id string, l *resource.RateLimit) error {
	var perSecond, burst *int
	if l != nil {
		perSecond, burst = &l.PerSecond, &l.Burst
	}
	tag, err := t.exec(ctx, `UPDATE brands SET rate_per_second = $2, rate_burst = $3 WHERE id = $1`, id, perSecond, burst)
	if err == nil {
		err = oneRow(tag)
	}
	return mapErr("set brand rate limit", err)
}

func (t *txn) CursorKey(ctx context.Context) ([]byte, error) {
	var key []byte
	err := t.row(ctx, `SELECT key FROM cursor_key WHERE id = 1`).Scan(&key)
	return key, mapErr("cursor key", err)
}

func (t *txn) InsertAPIKey(ctx context.Context, k licensing.APIKeyRow) error {
	_, err := t.exec(ctx, `INSERT INTO api_keys (id, brand_id, prefix, secret_hash, scopes, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, k.ID, k.BrandID, k.Prefix, k.SecretHash, k.Scopes, k.CreatedAt)
	return mapErr("insert api key", err)
}

func (t *txn) APIKeyByPrefix(ctx context.Context, prefix string) (licensing.APIKeyRow, error) {
	var k licensing.APIKeyRow
	var perSecond, burst *int
	err := t.row(ctx, `SELECT k.id, k.brand_id, k.prefix, k.secret_hash, k.scopes, k.created_at, k.revoked_at, b.slug,
			b.rate_per_second, b.rate_burst
		FROM api_keys k JOIN brands b ON b.id = k.brand_id WHERE k.prefix = $1`, prefix).
		Scan(&k.ID, &k.BrandID, &k.Prefix, &k.SecretHash, &k.Scopes, &k.CreatedAt, &k.RevokedAt, &k.BrandSlug, &perSecond, &burst)
	k.BrandRateLimit = rateLimit(perSecond, burst)
	return k, mapErr("api key by prefix", err)
}

func (t *txn) RevokeAPIKey(ctx context.Context, brandID, id string, at time.Time) error {
	tag, err := t.exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE brand_id = $1 AND id = $2`, brandID, id, at)
	if err == nil {
		err = oneRow(tag)
	}
	return mapErr("revoke api key", err)
}

// ---------------------------------------------------------------- products

const productCols = `id, brand_id, code, name, dev_instances, dev_instance_suffixes, created_at`

func scanProduct(r pgx.Row) (licensing.ProductRow, error) {
	var p licensing.ProductRow
	err := r.Scan(&p.ID, &p.BrandID, &p.Code, &p.Name, &p.DevInstances, &p.DevInstanceSuffixes, &p.CreatedAt)
	return p, err
}

// suffixes is never NULL in the table.
func suffixes(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (t *txn) InsertProduct(ctx context.Context, p licensing.ProductRow) error {
	_, err := t.exec(ctx, `INSERT INTO products (`+productCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.ID, p.BrandID, p.Code, p.Name, p.DevInstances, suffixes(p.DevInstanceSuffixes), p.CreatedAt)
	return mapErr("insert product", err)
}

func (t *txn) LockProduct(ctx context.Context, brandID, code string) (licensing.ProductRow, error) {
	if err := t.flush(ctx); err != nil {
		return licensing.ProductRow{}, err
	}
	p, err := scanProduct(t.tx.QueryRow(ctx, `SELECT `+productCols+` FROM products WHERE brand_id = $1 AND code = $2 FOR UPDATE`,
		brandID, code))
	return p, mapErr("lock product", err)
}

func (t *txn) UpdateProduct(ctx context.Context, p licensing.ProductRow) error {
	_, err := t.exec(ctx, `UPDATE products SET name = $3, dev_instances = $4, dev_instance_suffixes = $5
		WHERE brand_id = $1 AND id = $2`, p.BrandID, p.ID, p.Name, p.DevInstances, suffixes(p.DevInstanceSuffixes))
	return mapErr("update product", err)
}

func (t *txn) ListProducts(ctx context.Context, brandID, after string, limit int) ([]licensing.ProductRow, error) {
	rows, err := t.query(ctx, `SELECT `+productCols+` FROM products
		WHERE brand_id = $1 AND ($2::uuid IS NULL OR id > $2::uuid) ORDER BY id LIMIT $3`, brandID, nullUUID(after), limit)
	return collect("list products", rows, err, func(r pgx.Rows) (licensing.ProductRow, error) { return scanProduct(r) })
}

func (t *txn) ProductsByCode(ctx context.Context, brandID string, codes []string) (map[string]licensing.ProductRow, error) {
	rows, err := t.query(ctx, `SELECT `+productCols+` FROM products
		WHERE brand_id = $1 AND code = ANY($2)`, brandID, codes)
	list, err := collect("products by code", rows, err, func(r pgx.Rows) (licensing.ProductRow, error) { return scanProduct(r) })
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
	return k, err
}

func (t *txn) InsertLicenseKey(ctx context.Context, k licensing.KeyRow) error {
	_, err := t.exec(ctx, `INSERT INTO license_keys (id, brand_id, key, customer_email, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, k.BrandID, k.Key, k.CustomerEmail, k.Version, k.CreatedAt, k.UpdatedAt)
	return mapErr("insert license key", err)
}

func (t *txn) KeyByString(ctx context.Context, brandID, key string) (licensing.KeyRow, error) {
	k, err := scanKey(t.row(ctx, `SELECT `+keyCols+` FROM license_keys k JOIN brands b ON b.id = k.brand_id
		WHERE k.brand_id = $1 AND k.key = $2`, brandID, key))
	return k, mapErr("key by string", err)
}

func (t *txn) LockKeyByString(ctx context.Context, brandID, key string) (licensing.KeyRow, error) {
	k, err := scanKey(t.row(ctx, `SELECT `+keyCols+` FROM license_keys k JOIN brands b ON b.id = k.brand_id
		WHERE k.brand_id = $1 AND k.key = $2 FOR UPDATE OF k`, brandID, key))
	return k, mapErr("lock key", err)
}

func (t *txn) LockLicense(ctx context.Context, brandID, licenseID string) (licensing.KeyRow, licensing.LicenseRow, error) {
	if err := t.flush(ctx); err != nil {
		return licensing.KeyRow{}, licensing.LicenseRow{}, err
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT `+keyCols+` FROM license_keys k JOIN brands b ON b.id = k.brand_id
		WHERE k.brand_id = $1 AND k.id = (SELECT license_key_id FROM licenses WHERE brand_id = $1 AND id = $2)
		FOR UPDATE OF k`, brandID, licenseID)
	b.Queue(`SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND l.id = $2`, brandID, licenseID)
	res := t.tx.SendBatch(ctx, b)
	defer res.Close()
	k, err := scanKey(res.QueryRow())
	if err != nil {
		return k, licensing.LicenseRow{}, mapErr("lock license key", err)
	}
	l, err := scanLicense(res.QueryRow())
	if err != nil {
		return k, l, mapErr("read locked license", err)
	}
	return k, l, mapErr("lock license", res.Close())
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
	return l, err
}

func (t *txn) InsertLicense(ctx context.Context, l licensing.LicenseRow) error {
	_, err := t.exec(ctx, `INSERT INTO licenses (id, brand_id, license_key_id, product_id, status, expires_at,
		seat_limit, seats_used, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		l.ID, l.BrandID, l.KeyID, l.ProductID, l.Status, l.ExpiresAt, l.SeatLimit, l.SeatsUsed, l.CreatedAt, l.UpdatedAt)
	return mapErr("insert license", err)
}

func (t *txn) LicenseByID(ctx context.Context, brandID, id string) (licensing.LicenseRow, error) {
	l, err := scanLicense(t.row(ctx, `SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND l.id = $2`, brandID, id))
	return l, mapErr("license by id", err)
}

func (t *txn) LicensesOfKeys(ctx context.Context, brandID string, keyIDs []string) ([]licensing.LicenseRow, error) {
	rows, err := t.query(ctx, `SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND l.license_key_id = ANY($2::uuid[])
		ORDER BY l.id`, brandID, keyIDs)
	return collect("licenses of keys", rows, err, func(r pgx.Rows) (licensing.LicenseRow, error) { return scanLicense(r) })
}

func (t *txn) QueueLicenseUpdate(l licensing.LicenseRow) {
	t.queue("license update", oneRow, `UPDATE licenses SET status = $3, expires_at = $4, seat_limit = $5, seats_used = $6,
		updated_at = $7 WHERE brand_id = $1 AND id = $2`, l.BrandID, l.ID, l.Status, l.ExpiresAt, l.SeatLimit, l.SeatsUsed, l.UpdatedAt)
}

func (t *txn) LicensesByEmail(ctx context.Context, brandID, email, after string, limit int) ([]licensing.LicenseRow, error) {
	rows, err := t.query(ctx, `SELECT `+licCols+licFrom+`WHERE l.brand_id = $1 AND k.brand_id = $1
		AND k.customer_email = $2 AND ($3::uuid IS NULL OR l.id > $3::uuid) ORDER BY l.id LIMIT $4`,
		brandID, email, nullUUID(after), limit)
	return collect("licenses by email", rows, err, func(r pgx.Rows) (licensing.LicenseRow, error) { return scanLicense(r) })
}

func (t *txn) CustomerLicenses(ctx context.Context, email, after string, limit int) ([]licensing.LicenseRow, error) {
	rows, err := t.query(ctx, `SELECT `+licCols+licFrom+`WHERE k.customer_email = $1
		AND ($2::uuid IS NULL OR l.id > $2::uuid) ORDER BY l.id LIMIT $3`, email, nullUUID(after), limit)
	return collect("customer licenses", rows, err, func(r pgx.Rows) (licensing.LicenseRow, error) { return scanLicense(r) })
}

// ---------------------------------------------------------------- activations

func scanActivation(r pgx.Row) (licensing.ActivationRow, error) {
	var a licensing.ActivationRow
	err := r.Scan(&a.ID, &a.BrandID, &a.LicenseID, &a.Instance, &a.ActivatedAt, &a.Version, &a.Development)
	return a, err
}

const actCols = `a.id, a.brand_id, a.license_id, a.instance, a.activated_at, a.version, a.development`

func (t *txn) RecentActivations(ctx context.Context, brandID string, licenseIDs []string, perLicense int) ([]licensing.ActivationRow, error) {
	if len(licenseIDs) == 0 {
		return nil, nil
	}
	// per license, the newest perLicense rows by (license_id, id) — the primary key, read
	// backwards — then oldest first
	rows, err := t.query(ctx, `SELECT a.* FROM unnest($2::uuid[]) AS ids(license_id),
		LATERAL (SELECT `+actCols+` FROM activations a WHERE a.license_id = ids.license_id AND a.brand_id = $1
			ORDER BY a.id DESC LIMIT $3) a
		ORDER BY a.license_id, a.id`, brandID, licenseIDs, perLicense)
	return collect("recent activations", rows, err, func(r pgx.Rows) (licensing.ActivationRow, error) { return scanActivation(r) })
}

func (t *txn) ListActivations(ctx context.Context, brandID, licenseID, after string, limit int) ([]licensing.ActivationRow, error) {
	rows, err := t.query(ctx, `SELECT `+actCols+` FROM activations a WHERE a.license_id = $2 AND a.brand_id = $1
		AND ($3::uuid IS NULL OR a.id > $3::uuid) ORDER BY a.id LIMIT $4`, brandID, licenseID, nullUUID(after), limit)
	return collect("list activations", rows, err, func(r pgx.Rows) (licensing.ActivationRow, error) { return scanActivation(r) })
}

// ---------------------------------------------------------------- seats

const seatCols = `outcome, key_id, license_key, version, license_id, product, status, expires_at, seat_limit,
	seats_used, license_created_at, license_updated_at, activation_id, instance, activated_at, development`

// queryRower is a pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func scanSeat(row pgx.Row, brandID, brand string) (licensing.SeatResult, error) {
	var (
		r                                  licensing.SeatResult
		outcome                            string
		keyID, key, licID, product, status *string
		version                            *int64
		expires, lCreated, lUpdated, actAt *time.Time
		seatLimit, seatsUsed               *int32
		actID, instance                    *string
		development                        *bool
	)
	if err := row.Scan(&outcome, &keyID, &key, &version, &licID, &product, &status, &expires, &seatLimit,
		&seatsUsed, &lCreated, &lUpdated, &actID, &instance, &actAt, &development); err != nil {
		return r, err
	}
	r.Outcome = licensing.SeatOutcome(outcome)
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	if version != nil {
		r.Version = *version
	}
	if licID != nil {
		r.License = licensing.LicenseRow{ID: *licID, BrandID: brandID, KeyID: str(keyID), Status: str(status),
			ExpiresAt: expires, Key: str(key), ProductCode: str(product), BrandSlug: brand}
		if seatLimit != nil {
			n := int(*seatLimit)
			r.License.SeatLimit = &n
		}
		if seatsUsed != nil {
			r.License.SeatsUsed = int(*seatsUsed)
		}
		if lCreated != nil {
			r.License.CreatedAt = *lCreated
		}
		if lUpdated != nil {
			r.License.UpdatedAt = *lUpdated
		}
	}
	if actID != nil {
		r.Activation = licensing.ActivationRow{ID: *actID, BrandID: brandID, LicenseID: str(licID), Instance: str(instance)}
		if actAt != nil {
			r.Activation.ActivatedAt = *actAt
		}
		r.Activation.Development = development != nil && *development
	}
	return r, nil
}

func activate(ctx context.Context, q queryRower, c licensing.ActivateCmd) (licensing.SeatResult, error) {
	r, err := scanSeat(q.QueryRow(ctx, `SELECT `+seatCols+` FROM license_activate($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		c.BrandID, c.Brand, c.Key, c.Product, c.Instance, c.DevBuiltin, nullString(c.DevHost), c.ActivationID, c.AuditID, c.Now, c.Actor, c.RequestID), c.BrandID, c.Brand)
	return r, mapErr("activate", err)
}

func deactivate(ctx context.Context, q queryRower, c licensing.DeactivateCmd) (licensing.SeatResult, error) {
	r, err := scanSeat(q.QueryRow(ctx, `SELECT `+seatCols+` FROM license_deactivate($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		c.BrandID, c.Brand, c.Key, c.Product, c.Instance, nullUUID(c.LicenseID), nullUUID(c.ActivationID), c.AuditID, c.Now,
		c.Actor, c.RequestID), c.BrandID, c.Brand)
	return r, mapErr("deactivate", err)
}

// Activate runs the activation statement on its own: one round trip, one transaction.
func (s *Store) Activate(ctx context.Context, c licensing.ActivateCmd) (licensing.SeatResult, error) {
	r, err := activate(ctx, s.pool, c)
	s.count(err)
	return r, err
}

// Deactivate runs the deactivation statement on its own.
func (s *Store) Deactivate(ctx context.Context, c licensing.DeactivateCmd) (licensing.SeatResult, error) {
	r, err := deactivate(ctx, s.pool, c)
	s.count(err)
	return r, err
}

func (t *txn) Activate(ctx context.Context, c licensing.ActivateCmd) (licensing.SeatResult, error) {
	if err := t.flush(ctx); err != nil {
		return licensing.SeatResult{}, err
	}
	return activate(ctx, t.tx, c)
}

func (t *txn) Deactivate(ctx context.Context, c licensing.DeactivateCmd) (licensing.SeatResult, error) {
	if err := t.flush(ctx); err != nil {
		return licensing.SeatResult{}, err
	}
	return deactivate(ctx, t.tx, c)
}

// ---------------------------------------------------------------- status reads

func (t *txn) KeyState(ctx context.Context, brand, key string) (license.State, error) {
	rows, err := t.query(ctx, statusread.StateQuery, brand, key)
	if err != nil {
		return license.State{}, mapErr("key state", err)
	}
	st, found, err := statusread.ScanState(rows)
	if err != nil {
		return st, mapErr("key state", err)
	}
	if !found {
		return st, mapErr("key state", pgx.ErrNoRows)
	}
	return st, nil
}

func (t *txn) InstanceState(ctx context.Context, brand, key, instance string) (license.Instance, error) {
	if err := t.flush(ctx); err != nil {
		return license.Instance{}, err
	}
	in, found, err := statusread.ScanInstance(t.tx.QueryRow(ctx, statusread.InstanceQuery, brand, key, instance), instance)
	if err == nil && !found {
		err = pgx.ErrNoRows
	}
	return in, mapErr("instance state", err)
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
		return fmt.Errorf("insert audit: %w", err)
	}
	_, err = t.exec(ctx, insertAudit, args...)
	return mapErr("insert audit", err)
}

func (t *txn) QueueChange(c licensing.ChangeRecord) {
	t.queue("key version", oneRow, `UPDATE license_keys SET version = $2, updated_at = now() WHERE id = $1`, c.KeyID, c.NewVersion)
	if c.Audit != nil {
		args, err := auditArgs(*c.Audit)
		if err != nil {
			if t.failed == nil {
				t.failed = fmt.Errorf("queued audit event: %w", err)
			}
			return
		}
		t.queue("audit event", nil, insertAudit, args...)
	}
	t.queue("outbox event", oneRow, `INSERT INTO outbox (brand_id, license_key_id, version, subject, payload)
		SELECT brand_id, id, $2, $3, $4 FROM license_keys WHERE id = $1`, c.KeyID, c.NewVersion, c.Subject, c.Payload)
}

func (t *txn) ListEvents(ctx context.Context, brandID, licenseID, after string, limit int) ([]licensing.AuditRow, error) {
	rows, err := t.query(ctx, `SELECT id, brand_id, coalesce(license_key_id::text, ''), coalesce(license_id::text, ''),
		action, actor, request_id, at, before, after FROM audit_events
		WHERE brand_id = $1 AND license_id = $2 AND ($3::uuid IS NULL OR id > $3::uuid) ORDER BY id LIMIT $4`,
		brandID, licenseID, nullUUID(after), limit)
	return collect("list events", rows, err, func(r pgx.Rows) (licensing.AuditRow, error) {
		var a licensing.AuditRow
		var before, after []byte
		if err := r.Scan(&a.ID, &a.BrandID, &a.KeyID, &a.LicenseID, &a.Action, &a.Actor, &a.Request, &a.At, &before, &after); err != nil {
			return a, err
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
	tag, err := t.exec(ctx, `INSERT INTO idempotency_keys (brand_id, key, fingerprint, state, created_at, locked_at, claim_token, renewed_at)
		VALUES ($1, $2, $3, 'running', $4, $4, $5, $6)
		ON CONFLICT (brand_id, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'running',
			outcome_kind = NULL, outcome = NULL, created_at = EXCLUDED.created_at, locked_at = EXCLUDED.locked_at,
			claim_token = EXCLUDED.claim_token, renewed_at = EXCLUDED.renewed_at
		WHERE idempotency_keys.created_at < $7`, r.BrandID, r.Key, r.Fingerprint, r.CreatedAt, r.Token, r.RenewedAt, expiredBefore)
	if err != nil {
		return licensing.IdemRow{}, false, mapErr("claim idempotency key", err)
	}
	if tag.RowsAffected() == 1 {
		return r, true, nil
	}
	var ex licensing.IdemRow
	var kind *string
	err = t.row(ctx, `SELECT brand_id, key, fingerprint, state, outcome_kind, outcome, created_at, claim_token, renewed_at
		FROM idempotency_keys WHERE brand_id = $1 AND key = $2`, r.BrandID, r.Key).
		Scan(&ex.BrandID, &ex.Key, &ex.Fingerprint, &ex.State, &kind, &ex.Outcome.Body, &ex.CreatedAt, &ex.Token, &ex.RenewedAt)
	if kind != nil {
		ex.Outcome.Kind = *kind
	}
	return ex, false, mapErr("read idempotency key", err)
}

func (t *txn) TakeOverIdempotency(ctx context.Context, brandID, key string, fp []byte, staleBefore, now time.Time, token string) (bool, error) {
	tag, err := t.exec(ctx, `UPDATE idempotency_keys SET claim_token = $6, renewed_at = $5, locked_at = $5
		WHERE brand_id = $1 AND key = $2 AND fingerprint = $3 AND state = 'running' AND renewed_at < $4`,
		brandID, key, fp, staleBefore, now, token)
	if err != nil {
		return false, mapErr("take over idempotency key", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *txn) RenewIdempotency(ctx context.Context, brandID, key, token string, now time.Time) (bool, error) {
	tag, err := t.exec(ctx, `UPDATE idempotency_keys SET renewed_at = $4
		WHERE brand_id = $1 AND key = $2 AND state = 'running' AND claim_token = $3`, brandID, key, token, now)
	if err != nil {
		return false, mapErr("renew idempotency key", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *txn) CompleteIdempotency(ctx context.Context, brandID, key, token string, o licensing.StoredOutcome) error {
	tag, err := t.exec(ctx, `UPDATE idempotency_keys SET state = 'done', outcome_kind = $4, outcome = $5
		WHERE brand_id = $1 AND key = $2 AND state = 'running' AND claim_token = $3`, brandID, key, token, o.Kind, o.Body)
	if err != nil {
		return mapErr("complete idempotency key", err)
	}
	if tag.RowsAffected() != 1 {
		return problem.New(problem.IdempotencyInProgress, "this request's Idempotency-Key was taken over by a retry")
	}
	return nil
}

func (t *txn) ReleaseIdempotency(ctx context.Context, brandID, key, token string) error {
	_, err := t.exec(ctx, `DELETE FROM idempotency_keys WHERE brand_id = $1 AND key = $2 AND state = 'running'
		AND claim_token = $3`, brandID, key, token)
	return mapErr("release idempotency key", err)
}

func (t *txn) DeleteIdempotencyBefore(ctx context.Context, before time.Time) (int64, error) {
	tag, err := t.exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, before)
	if err != nil {
		return 0, mapErr("delete idempotency keys", err)
	}
	return tag.RowsAffected(), nil
}
