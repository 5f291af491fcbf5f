package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/retry"
	"github.com/licensing/licensing/writer/licensing"
)

// DispatchBatch is how many outbox rows one dispatch transaction takes.
const DispatchBatch = 500

// dispatch turns committed outbox rows into delivery rows and jobs until ctx ends, woken
// by the outbox's NOTIFY and polling besides.
func (w *Webhooks) dispatch(ctx context.Context) error {
	b := retry.Default.Backoff()
	for ctx.Err() == nil {
		err := w.listen(ctx)
		if ctx.Err() != nil {
			break
		}
		wait := b.NextBackOff()
		w.log.Warn("webhook dispatcher restarting", "err", err, "backoff", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

// listen dispatches on one connection that LISTENs for new outbox rows.
func (w *Webhooks) listen(ctx context.Context) error {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	c := conn.Conn()
	if _, err := c.Exec(ctx, "LISTEN outbox"); err != nil {
		return err
	}
	defer c.Exec(context.WithoutCancel(ctx), "UNLISTEN outbox") //nolint:errcheck // the connection goes back to the pool
	lastCleanup := time.Time{}
	for {
		n, err := w.DispatchOnce(ctx)
		if err != nil {
			return err
		}
		if time.Since(lastCleanup) > time.Hour {
			if err := w.cleanup(ctx); err != nil {
				return err
			}
			lastCleanup = time.Now()
		}
		if n == DispatchBatch {
			continue
		}
		// rows another transaction held (the relay marking them sent, another writer's
		// dispatcher) were skipped: come back for them at once rather than at the next
		// notification or poll
		var skipped bool
		if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox
			WHERE (sent_at IS NULL OR dispatched_at IS NULL) AND dispatched_at IS NULL)`).Scan(&skipped); err != nil {
			return err
		}
		if skipped {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, w.cfg.DispatchPoll)
		_, err = c.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

type outboxRow struct {
	id      int64
	brandID string
	created time.Time
	change  event.Change
}

type endpointRef struct {
	id     string
	events []string
}

// DispatchOnce dispatches one batch of committed, undispatched outbox rows in one
// transaction and returns how many rows it took.
func (w *Webhooks) DispatchOnce(ctx context.Context) (int, error) {
	n := 0
	var jobs int
	err := w.allBrands(ctx, func(tx pgx.Tx) error {
		// the predicate repeats outbox_pending's; SKIP LOCKED: writers share the rows
		rows, err := tx.Query(ctx, `SELECT id, brand_id, payload, created_at FROM outbox
			WHERE (sent_at IS NULL OR dispatched_at IS NULL) AND dispatched_at IS NULL
			ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, DispatchBatch)
		if err != nil {
			return err
		}
		var batch []outboxRow
		brands := map[string]bool{}
		for rows.Next() {
			var r outboxRow
			var payload []byte
			if err := rows.Scan(&r.id, &r.brandID, &payload, &r.created); err != nil {
				rows.Close()
				return err
			}
			if err := json.Unmarshal(payload, &r.change); err != nil {
				// never a poison row: it is marked dispatched with no delivery
				w.log.Error("webhook dispatcher: outbox row is not an event; skipped", "outbox_id", r.id, "err", err)
				r.change = event.Change{}
			}
			r.change.ID = r.id
			batch = append(batch, r)
			brands[r.brandID] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(batch)
		if n == 0 {
			return nil
		}
		ids := make([]int64, n)
		brandIDs := make([]string, 0, len(brands))
		for i, r := range batch {
			ids[i] = r.id
		}
		for b := range brands {
			brandIDs = append(brandIDs, b)
		}
		endpoints := map[string][]endpointRef{}
		erows, err := tx.Query(ctx, `SELECT id, brand_id, events FROM webhook_endpoints
			WHERE brand_id = ANY($1::uuid[]) AND status = 'enabled'`, brandIDs)
		if err != nil {
			return err
		}
		for erows.Next() {
			var e endpointRef
			var brand string
			if err := erows.Scan(&e.id, &brand, &e.events); err != nil {
				erows.Close()
				return err
			}
			endpoints[brand] = append(endpoints[brand], e)
		}
		erows.Close()
		if err := erows.Err(); err != nil {
			return err
		}
		now := w.now().UTC()
		var deliveries []licensing.DeliveryRow
		insert := &pgx.Batch{}
		for _, r := range batch {
			if !slices.Contains(licensing.WebhookEventTypes, r.change.Type) {
				continue // not a contract event type: nothing to deliver
			}
			var targets []string
			for _, e := range endpoints[r.brandID] {
				if licensing.Subscribed(e.events, r.change.Type) {
					targets = append(targets, e.id)
				}
			}
			if len(targets) == 0 {
				continue
			}
			body, err := licensing.WebhookBody(&r.change)
			if err != nil {
				w.log.Error("webhook dispatcher: event cannot be rendered; skipped", "outbox_id", r.id, "type", r.change.Type, "err", err)
				continue
			}
			eventID := uuid.Must(uuid.NewV7()).String()
			insert.Queue(`INSERT INTO webhook_events (id, brand_id, outbox_id, type, body, created_at)
				VALUES ($1, $2, $3, $4, $5, $6)`, eventID, r.brandID, r.id, r.change.Type, body, r.created)
			for _, ep := range targets {
				d := licensing.DeliveryRow{ID: uuid.Must(uuid.NewV7()).String(), BrandID: r.brandID, EventID: eventID,
					EndpointID: ep, Type: r.change.Type, Status: licensing.DeliveryPending, NextAttemptAt: &now,
					CreatedAt: now, UpdatedAt: now}
				insert.Queue(`INSERT INTO webhook_deliveries (id, brand_id, event_id, endpoint_id, type, status,
					next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6)`,
					d.ID, d.BrandID, d.EventID, d.EndpointID, d.Type, now)
				deliveries = append(deliveries, d)
			}
		}
		if insert.Len() > 0 {
			if err := tx.SendBatch(ctx, insert).Close(); err != nil {
				return fmt.Errorf("insert deliveries: %w", err)
			}
			if err := w.enqueue(ctx, tx, deliveries); err != nil {
				return err
			}
		}
		jobs = len(deliveries)
		_, err = tx.Exec(ctx, `UPDATE outbox SET dispatched_at = $2 WHERE id = ANY($1)`, ids, now)
		if err != nil {
			return err
		}
		for _, r := range batch {
			w.m.dispatchLag.Observe(now.Sub(r.created).Seconds())
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dispatch: %w", err)
	}
	w.m.dispatched.Add(float64(n))
	w.m.queued.Add(float64(jobs))
	return n, nil
}

// cleanup deletes events (and their deliveries) past the retention.
func (w *Webhooks) cleanup(ctx context.Context) error {
	return w.allBrands(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM webhook_events WHERE created_at < $1`, w.now().Add(-w.cfg.Retention))
		return err
	})
}
