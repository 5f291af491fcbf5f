// Package outbox relays the transactional outbox to NATS JetStream. Every committed change
// wrote an outbox row in its own transaction; the relay publishes unsent rows in id order
// with the row id as JetStream message id (so a re-publish after a crash is deduplicated),
// then marks them sent. One relay is active at a time across writer replicas (a Postgres
// advisory lock), which keeps per-key order. It wakes on LISTEN/NOTIFY and also polls, and
// resumes without loss after the writer or NATS restarts: a row is marked sent only after
// JetStream acknowledged it.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/retry"
	"github.com/nats-io/nats.go/jetstream"
)

// advisoryLockID identifies the relay's leader lock.
const advisoryLockID = 0x6c6963656e7365 // "license"

// Config tunes the relay.
type Config struct {
	BatchSize    int           // rows per round, default 500
	PollInterval time.Duration // fallback when no notification arrives, default 1s
	Retention    time.Duration // sent rows are deleted after this, default 1h
	AckTimeout   time.Duration // wait for JetStream acks, default 5s
}

// Metrics receives the relay's observations; any field may be nil.
type Metrics struct {
	Published func(n int)
	Failed    func()
	Lag       func(d time.Duration) // commit of the row to its acknowledgement
}

// Relay publishes the outbox.
type Relay struct {
	pool *pgxpool.Pool
	js   jetstream.JetStream
	cfg  Config
	log  *slog.Logger
	m    Metrics
	// published counts rows acknowledged, across leadership sessions
	published atomic.Int64
}

// New returns a relay.
func New(pool *pgxpool.Pool, js jetstream.JetStream, cfg Config, log *slog.Logger, m Metrics) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	return &Relay{pool: pool, js: js, cfg: cfg, log: log, m: m}
}

// StreamConfig is the JetStream stream the events go to, with replicas copies (3 on a
// NATS cluster, 1 on a single server).
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       event.Stream,
		Subjects:   []string{event.SubjectAll},
		Storage:    jetstream.FileStorage,
		MaxAge:     24 * time.Hour,
		Duplicates: 10 * time.Minute,
		Replicas:   max(replicas, 1),
	}
}

// EnsureStream creates or updates the stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if _, err := js.CreateOrUpdateStream(ctx, StreamConfig(replicas)); err != nil {
		return fmt.Errorf("ensure stream %s: %w", event.Stream, err)
	}
	return nil
}

// Run relays until ctx ends. Errors (Postgres or NATS unavailable) are logged and retried
// with the project's backoff policy, which starts afresh after a session that published;
// Run returns only when ctx is done.
func (r *Relay) Run(ctx context.Context) error {
	b := retry.Default.Backoff()
	for ctx.Err() == nil {
		published := r.published.Load()
		err := r.lead(ctx)
		if ctx.Err() != nil {
			break
		}
		if r.published.Load() != published {
			b.Reset()
		}
		wait := b.NextBackOff()
		r.log.Warn("outbox relay restarting", "err", err, "backoff", wait)
		retry.Sleep(ctx, wait)
	}
	return nil
}

// lead holds a dedicated connection with the leader lock and LISTEN, and relays.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	c := conn.Conn()
	if _, err := c.Exec(ctx, "SELECT set_config('app.brand_id', 'all', false)"); err != nil {
		conn.Conn().Close(ctx) //nolint:errcheck
		return err
	}
	for {
		var got bool
		if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", advisoryLockID).Scan(&got); err != nil {
			c.Close(ctx) //nolint:errcheck
			return err
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.PollInterval):
		}
	}
	// the session holds the lock: never return this connection to the pool
	defer c.Close(context.Background()) //nolint:errcheck
	if _, err := c.Exec(ctx, "LISTEN outbox"); err != nil {
		return err
	}
	r.log.Info("outbox relay leading")
	lastCleanup := time.Time{}
	for {
		n, err := r.round(ctx, c)
		if err != nil {
			return err
		}
		if time.Since(lastCleanup) > time.Minute {
			if _, err := c.Exec(ctx, "DELETE FROM outbox WHERE sent_at < now() - $1::interval", r.cfg.Retention.String()); err != nil {
				return err
			}
			lastCleanup = time.Now()
		}
		if n == r.cfg.BatchSize {
			continue // more waiting
		}
		wctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
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

type row struct {
	id      int64
	subject string
	payload []byte
	created time.Time
}

// round publishes one batch and returns how many rows it read.
func (r *Relay) round(ctx context.Context, c *pgx.Conn) (int, error) {
	rows, err := c.Query(ctx, `SELECT id, subject, payload || jsonb_build_object('id', id), created_at FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1`, r.cfg.BatchSize)
	if err != nil {
		return 0, err
	}
	var batch []row
	for rows.Next() {
		var x row
		if err := rows.Scan(&x.id, &x.subject, &x.payload, &x.created); err != nil {
			rows.Close()
			return 0, err
		}
		batch = append(batch, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}
	acked, perr := r.publish(ctx, batch)
	if len(acked) > 0 {
		if _, err := c.Exec(ctx, `UPDATE outbox SET sent_at = clock_timestamp() WHERE id = ANY($1)`, acked); err != nil {
			return 0, err
		}
		r.published.Add(int64(len(acked)))
		if r.m.Published != nil {
			r.m.Published(len(acked))
		}
	}
	if perr != nil {
		if r.m.Failed != nil {
			r.m.Failed()
		}
		return 0, perr
	}
	return len(batch), nil
}

// publish sends the batch asynchronously and returns the ids of the longest prefix that
// JetStream acknowledged (the rest is retried, in order, next round).
func (r *Relay) publish(ctx context.Context, batch []row) ([]int64, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	var sendErr error
	for _, x := range batch {
		f, err := r.js.PublishAsync(x.subject, x.payload, jetstream.WithMsgID(event.MsgID(x.id)),
			jetstream.WithExpectStream(event.Stream))
		if err != nil {
			sendErr = fmt.Errorf("publish outbox %d: %w", x.id, err)
			break
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(r.cfg.AckTimeout)
	defer timeout.Stop()
	acked := make([]int64, 0, len(futures))
	for i, f := range futures {
		select {
		case <-f.Ok():
			acked = append(acked, batch[i].id)
			if r.m.Lag != nil {
				r.m.Lag(time.Since(batch[i].created))
			}
		case err := <-f.Err():
			return acked, fmt.Errorf("publish outbox %d: %w", batch[i].id, err)
		case <-timeout.C:
			return acked, fmt.Errorf("publish outbox %d: ack timeout", batch[i].id)
		case <-ctx.Done():
			return acked, ctx.Err()
		}
	}
	return acked, sendErr
}
