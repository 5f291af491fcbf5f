package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/writer/licensing"
)

// Pgx returns the transaction's pgx.Tx after sending the queued writes, for the
// collaborators that write through their own driver in the same transaction (River
// jobs of writer/webhook).
func (t *txn) Pgx(ctx context.Context) (pgx.Tx, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx, nil
}

// ---------------------------------------------------------------- webhook endpoints

const endpointCols = `id, brand_id, url, events, description, status, coalesce(disabled_reason, ''), secret,
	previous_secret, previous_until, failing_since, created_at, updated_at`

func scanEndpoint(r pgx.Row) (licensing.EndpointRow, error) {
	var e licensing.EndpointRow
	err := r.Scan(&e.ID, &e.BrandID, &e.URL, &e.Events, &e.Description, &e.Status, &e.DisabledReason, &e.Secret,
		&e.PreviousSecret, &e.PreviousUntil, &e.FailingSince, &e.CreatedAt, &e.UpdatedAt)
	return e, err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (t *txn) InsertEndpoint(ctx context.Context, e licensing.EndpointRow) error {
	_, err := t.exec(ctx, `INSERT INTO webhook_endpoints (id, brand_id, url, events, description, status, disabled_reason,
		secret, previous_secret, previous_until, failing_since, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		e.ID, e.BrandID, e.URL, e.Events, e.Description, e.Status, nullString(e.DisabledReason), e.Secret,
		e.PreviousSecret, e.PreviousUntil, e.FailingSince, e.CreatedAt, e.UpdatedAt)
	return mapErr("insert webhook endpoint", err)
}

func (t *txn) EndpointByID(ctx context.Context, brandID, id string) (licensing.EndpointRow, error) {
	e, err := scanEndpoint(t.row(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE brand_id = $1 AND id = $2`, brandID, id))
	return e, mapErr("webhook endpoint by id", err)
}

func (t *txn) LockEndpoint(ctx context.Context, brandID, id string) (licensing.EndpointRow, error) {
	e, err := scanEndpoint(t.row(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE brand_id = $1 AND id = $2
		FOR UPDATE`, brandID, id))
	return e, mapErr("lock webhook endpoint", err)
}

func (t *txn) ListEndpoints(ctx context.Context, brandID, after string, limit int) ([]licensing.EndpointRow, error) {
	rows, err := t.query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE brand_id = $1
		AND ($2::uuid IS NULL OR id > $2::uuid) ORDER BY id LIMIT $3`, brandID, nullUUID(after), limit)
	return collect("list webhook endpoints", rows, err, func(r pgx.Rows) (licensing.EndpointRow, error) { return scanEndpoint(r) })
}

func (t *txn) UpdateEndpoint(ctx context.Context, e licensing.EndpointRow) error {
	tag, err := t.exec(ctx, `UPDATE webhook_endpoints SET url = $3, events = $4, description = $5, status = $6,
		disabled_reason = $7, secret = $8, previous_secret = $9, previous_until = $10, failing_since = $11, updated_at = $12
		WHERE brand_id = $1 AND id = $2`, e.BrandID, e.ID, e.URL, e.Events, e.Description, e.Status,
		nullString(e.DisabledReason), e.Secret, e.PreviousSecret, e.PreviousUntil, e.FailingSince, e.UpdatedAt)
	if err == nil {
		err = oneRow(tag)
	}
	return mapErr("update webhook endpoint", err)
}

func (t *txn) DeleteEndpoint(ctx context.Context, brandID, id string) error {
	tag, err := t.exec(ctx, `DELETE FROM webhook_endpoints WHERE brand_id = $1 AND id = $2`, brandID, id)
	if err == nil {
		err = oneRow(tag)
	}
	return mapErr("delete webhook endpoint", err)
}

func (t *txn) InsertWebhookEvent(ctx context.Context, e licensing.WebhookEventRow) error {
	var outboxID any
	if e.OutboxID != 0 {
		outboxID = e.OutboxID
	}
	_, err := t.exec(ctx, `INSERT INTO webhook_events (id, brand_id, outbox_id, type, body, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, e.ID, e.BrandID, outboxID, e.Type, e.Body, e.CreatedAt)
	return mapErr("insert webhook event", err)
}

func (t *txn) InsertDelivery(ctx context.Context, d licensing.DeliveryRow) error {
	_, err := t.exec(ctx, `INSERT INTO webhook_deliveries (id, brand_id, event_id, endpoint_id, type, status, attempt,
		next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		d.ID, d.BrandID, d.EventID, d.EndpointID, d.Type, d.Status, d.Attempt, d.NextAttemptAt, d.CreatedAt, d.UpdatedAt)
	return mapErr("insert webhook delivery", err)
}

// deliveryCols are the columns scanDelivery reads.
const deliveryCols = `d.id, d.brand_id, d.event_id, d.endpoint_id, d.type, d.status, d.attempt, d.response_status, d.error,
	d.next_attempt_at, d.job_id, d.created_at, d.updated_at`

// scanDelivery reads deliveryCols.
func scanDelivery(r pgx.Row) (licensing.DeliveryRow, error) {
	var d licensing.DeliveryRow
	err := r.Scan(&d.ID, &d.BrandID, &d.EventID, &d.EndpointID, &d.Type, &d.Status, &d.Attempt, &d.ResponseStatus,
		&d.Error, &d.NextAttemptAt, &d.JobID, &d.CreatedAt, &d.UpdatedAt)
	return d, err
}

func (t *txn) LockDelivery(ctx context.Context, brandID, id string) (licensing.DeliveryRow, error) {
	d, err := scanDelivery(t.row(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries d WHERE d.brand_id = $1 AND d.id = $2
		FOR UPDATE`, brandID, id))
	return d, mapErr("lock webhook delivery", err)
}

func (t *txn) RequeueDelivery(ctx context.Context, brandID, id string, at time.Time) error {
	tag, err := t.exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, updated_at = $3
		WHERE brand_id = $1 AND id = $2`, brandID, id, at)
	if err == nil {
		err = oneRow(tag)
	}
	return mapErr("requeue webhook delivery", err)
}

func (t *txn) ListDeliveries(ctx context.Context, brandID, endpointID, before string, limit int) ([]licensing.DeliveryRow, error) {
	rows, err := t.query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries d WHERE d.brand_id = $1 AND d.endpoint_id = $2
		AND ($3::uuid IS NULL OR d.id < $3::uuid) ORDER BY d.id DESC LIMIT $4`, brandID, endpointID, nullUUID(before), limit)
	return collect("list webhook deliveries", rows, err, func(r pgx.Rows) (licensing.DeliveryRow, error) { return scanDelivery(r) })
}

// ---------------------------------------------------------------- expiries

func (t *txn) DueExpiries(ctx context.Context, now time.Time, limit int) ([]licensing.LicenseRow, error) {
	// the predicate repeats licenses_expiry_due's, so the scan is that partial index's
	rows, err := t.query(ctx, `SELECT `+licCols+licFrom+`WHERE l.status = 'valid' AND l.expires_at IS NOT NULL
		AND l.expiry_recorded_at IS DISTINCT FROM l.expires_at AND l.expires_at <= $1
		ORDER BY l.expires_at LIMIT $2`, now, limit)
	return collect("due expiries", rows, err, func(r pgx.Rows) (licensing.LicenseRow, error) { return scanLicense(r) })
}

func (t *txn) RecordExpiry(ctx context.Context, brandID, licenseID string, expiresAt time.Time) (bool, error) {
	tag, err := t.exec(ctx, `UPDATE licenses SET expiry_recorded_at = expires_at WHERE brand_id = $1 AND id = $2
		AND expires_at = $3 AND expiry_recorded_at IS DISTINCT FROM expires_at`, brandID, licenseID, expiresAt)
	if err != nil {
		return false, mapErr("record expiry", err)
	}
	return tag.RowsAffected() == 1, nil
}
