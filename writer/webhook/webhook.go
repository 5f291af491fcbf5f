// Package webhook delivers change events to brand backends (API.md "Webhooks"), following
// the Standard Webhooks specification.
//
// The design, from commit to receiver:
//
//   - The event is the outbox row the change wrote in its own transaction (shared/event,
//     typed, already carrying the resource the payload needs). Nothing is added to the
//     change's transaction: no endpoint lookup, no delivery row.
//   - The Dispatcher, in every writer, reads committed outbox rows not yet dispatched
//     (FOR UPDATE SKIP LOCKED, so writers share the work and never take the same row), and
//     in one transaction writes for each row one webhook_events row (the body, rendered
//     once), one webhook_deliveries row per subscribed endpoint (UNIQUE (event, endpoint)),
//     one River job per delivery, and the row's dispatched_at. A crash before the commit
//     leaves the row undispatched and nothing written; after it, the row is never read
//     again: each change is in the delivery log exactly once per endpoint.
//   - Delivery workers are River jobs (github.com/riverqueue/river, Postgres-backed), in
//     every writer. Each attempt is signed anew with its own webhook-timestamp; webhook-id
//     is the event id on every attempt. Failures are retried on the contract's schedule
//     with jitter; a worker killed mid-attempt leaves a running job that River's rescuer
//     makes retryable after RescueAfter: at least once, never lost.
//   - Isolation: each writer runs at most PerEndpoint attempts at once to one endpoint;
//     further jobs for it are snoozed (not counted as attempts), so a hanging endpoint
//     holds at most PerEndpoint of the Workers slots and the others keep flowing.
//
// The workers run inside the writer rather than in a separate process: River spreads the
// jobs over every writer and rescues a dead writer's jobs, so a second deployable would
// add no guarantee, only a process to run, monitor and upgrade in step with the schema.
// The guard (Guard) is what keeps outbound requests away from internal addresses, at
// creation and on every connection.
package webhook

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/migrations"
	"github.com/licensing/licensing/shared/retry"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Queue is the River queue of deliveries.
const Queue = "webhooks"

// DefaultSchedule is API.md's retry schedule: the wait before each retry.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Config tunes delivery.
type Config struct {
	Workers     int           // concurrent attempts per writer, default 50
	PerEndpoint int           // concurrent attempts to one endpoint per writer, default 4
	Timeout     time.Duration // one attempt, default 15 s (API.md)
	// Schedule is the wait before each retry (default DefaultSchedule); after the last
	// retry the delivery is failed.
	Schedule []time.Duration
	// DisableAfter: an endpoint whose deliveries all failed for this long is disabled
	// (default 5 days).
	DisableAfter time.Duration
	// RescueAfter: a job still running after this (its writer died) is retried (default
	// 1 minute; more than Timeout).
	RescueAfter time.Duration
	// DispatchPoll is the dispatcher's fallback poll besides LISTEN (default 1 s).
	DispatchPoll time.Duration
	// Retention: events and their deliveries are deleted after this (default 30 days).
	Retention time.Duration
	// NoWorkers makes this writer insert jobs without working them.
	NoWorkers bool
	Guard     Guard
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 50
	}
	if c.PerEndpoint <= 0 {
		c.PerEndpoint = 4
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if len(c.Schedule) == 0 {
		c.Schedule = DefaultSchedule
	}
	if c.DisableAfter <= 0 {
		c.DisableAfter = 5 * 24 * time.Hour
	}
	if c.RescueAfter <= 0 {
		c.RescueAfter = time.Minute
	}
	if c.RescueAfter <= c.jobTimeout() {
		c.RescueAfter = c.jobTimeout() + time.Second
	}
	if c.DispatchPoll <= 0 {
		c.DispatchPoll = time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 30 * 24 * time.Hour
	}
}

// jobTimeout bounds a job: the attempt's own timeout plus the bookkeeping around it.
func (c *Config) jobTimeout() time.Duration { return c.Timeout + 2*time.Second }

// Webhooks runs the dispatcher and the delivery workers of one writer, and is the
// domain's licensing.DeliveryQueue.
type Webhooks struct {
	cfg    Config
	pool   *pgxpool.Pool
	sealer licensing.Sealer
	river  *river.Client[pgx.Tx]
	http   *http.Client
	log    *slog.Logger
	m      *metrics
	slots  *slots
	now    func() time.Time
}

// New builds the webhooks of a writer over a pool of their own, configured like appPool
// (same database and role) but whose sessions see every brand (app.brand_id = 'all'
// for the session, as the outbox relay's connection): the dispatcher, the workers and
// River act for no single brand, and each of their reads and writes is then one round
// trip instead of a transaction that sets the scope first. Only this package uses it.
// Run starts them; Close releases the pool.
func New(appPool *pgxpool.Pool, sealer licensing.Sealer, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Webhooks, error) {
	cfg.defaults()
	pcfg := appPool.Config().Copy()
	pcfg.MaxConns = int32(min(max(cfg.Workers/2, 4), 32))
	pcfg.MinConns = 0
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SELECT set_config('app.brand_id', 'all', false)")
		return err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("webhook pool: %w", err)
	}
	w := &Webhooks{cfg: cfg, pool: pool, sealer: sealer, log: log, slots: newSlots(cfg.PerEndpoint), now: time.Now}
	w.m = newMetrics(reg)
	w.http = &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			Proxy:                 nil, // never through an environment proxy: the guard must see the real peer
			DialContext:           cfg.Guard.Dialer(min(cfg.Timeout, 10*time.Second)).DialContext,
			TLSHandshakeTimeout:   min(cfg.Timeout, 10*time.Second),
			ResponseHeaderTimeout: cfg.Timeout,
			MaxIdleConnsPerHost:   cfg.PerEndpoint,
			IdleConnTimeout:       60 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		// redirects are not followed (API.md): a 3xx is a failed attempt
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &deliveryWorker{w: w}); err != nil {
		return nil, err
	}
	rcfg := &river.Config{
		Schema:               migrations.RiverSchema,
		Workers:              workers,
		RetryPolicy:          retryPolicy{w.cfg.Schedule},
		JobTimeout:           cfg.jobTimeout(),
		RescueStuckJobsAfter: cfg.RescueAfter,
		MaxAttempts:          len(cfg.Schedule) + 1,
		// River reports each failed attempt at info level: the delivery log and the
		// metrics carry those; its warnings and errors go to the writer's log
		Logger: slog.New(minLevel{log.Handler(), slog.LevelWarn}).With("component", "river"),
		// a succeeded delivery's job is kept a day, a failed one a week: a manual retry
		// within that time revives the job; later it inserts a new one
		CompletedJobRetentionPeriod: 24 * time.Hour,
		DiscardedJobRetentionPeriod: 7 * 24 * time.Hour,
	}
	if !cfg.NoWorkers {
		rcfg.Queues = map[string]river.QueueConfig{Queue: {MaxWorkers: cfg.Workers}}
		rcfg.FetchCooldown = 20 * time.Millisecond
		rcfg.FetchPollInterval = 500 * time.Millisecond
	}
	rc, err := river.NewClient(riverpgxv5.New(pool), rcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("river: %w", err)
	}
	w.river = rc
	return w, nil
}

// Close releases the webhooks' pool (after Run returned).
func (w *Webhooks) Close() { w.pool.Close() }

// Run dispatches and delivers until ctx ends.
func (w *Webhooks) Run(ctx context.Context) error {
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		w.sampleBacklog(ctx)
	}()
	defer func() { <-sampled }()
	if !w.cfg.NoWorkers {
		// Postgres may be unreachable at start: keep trying, the writer serves meanwhile
		err := retry.Until(ctx, retry.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second},
			func() error { return w.river.Start(ctx) },
			func(err error, wait time.Duration) {
				w.log.Warn("webhook workers not started", "err", err, "retry_in", wait)
			})
		if err != nil {
			return nil // ctx ended
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Timeout+time.Second)
			defer cancel()
			if err := w.river.Stop(sctx); err != nil {
				w.log.Warn("webhook workers stop", "err", err)
			}
		}()
	}
	return w.dispatch(ctx)
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}
func (h minLevel) WithGroup(g string) slog.Handler { return minLevel{h.Handler.WithGroup(g), h.min} }

// ---------------------------------------------------------------- the domain's queue

// DeliveryArgs is a delivery job: which delivery to attempt.
type DeliveryArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind names the job kind in River.
func (DeliveryArgs) Kind() string { return "webhook_delivery" }

// InsertOpts puts deliveries on their queue.
func (DeliveryArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: Queue} }

type pgxTx interface {
	Pgx(ctx context.Context) (pgx.Tx, error)
}

func rawTx(ctx context.Context, tx licensing.Tx) (pgx.Tx, error) {
	p, ok := tx.(pgxTx)
	if !ok {
		return nil, errors.New("webhook queue: the store's transaction is not a Postgres one")
	}
	return p.Pgx(ctx)
}

// Enqueue implements licensing.DeliveryQueue.
func (w *Webhooks) Enqueue(ctx context.Context, tx licensing.Tx, ds []licensing.DeliveryRow) error {
	ptx, err := rawTx(ctx, tx)
	if err != nil {
		return err
	}
	return w.enqueue(ctx, ptx, ds)
}

// enqueue inserts one job per delivery and records its id on the delivery.
func (w *Webhooks) enqueue(ctx context.Context, tx pgx.Tx, ds []licensing.DeliveryRow) error {
	if len(ds) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(ds))
	ids := make([]string, len(ds))
	for i, d := range ds {
		params[i] = river.InsertManyParams{Args: DeliveryArgs{DeliveryID: d.ID}}
		ids[i] = d.ID
	}
	res, err := w.river.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("insert delivery jobs: %w", err)
	}
	jobs := make([]int64, len(res))
	for i, r := range res {
		jobs[i] = r.Job.ID
	}
	_, err = tx.Exec(ctx, `UPDATE webhook_deliveries d SET job_id = v.job
		FROM unnest($1::uuid[], $2::bigint[]) AS v(id, job) WHERE d.id = v.id`, ids, jobs)
	if err != nil {
		return fmt.Errorf("record delivery jobs: %w", err)
	}
	return nil
}

// Retry implements licensing.DeliveryQueue: the delivery's job is made available now
// (River gives an exhausted job one more attempt). A job that is running (finishing an
// attempt, or its completion not yet recorded) or already deleted by retention is left
// alone and a new job attempts the delivery.
func (w *Webhooks) Retry(ctx context.Context, tx licensing.Tx, d licensing.DeliveryRow) error {
	ptx, err := rawTx(ctx, tx)
	if err != nil {
		return err
	}
	if d.JobID != nil {
		job, err := w.river.JobRetryTx(ctx, ptx, *d.JobID)
		if err != nil && !errors.Is(err, river.ErrNotFound) {
			return fmt.Errorf("retry delivery job: %w", err)
		}
		if err == nil && job.State != rivertype.JobStateRunning {
			return nil
		}
	}
	return w.enqueue(ctx, ptx, []licensing.DeliveryRow{d})
}

// ---------------------------------------------------------------- retries

// retryPolicy spaces retries by the schedule, jittered by ±20 %: the same job and attempt
// always get the same jitter, so the worker can record the time River will use.
type retryPolicy struct{ schedule []time.Duration }

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.delay(job.ID, job.Attempt))
}

// delay is the wait after the attempt-th attempt (from 1) of job id.
func (p retryPolicy) delay(id int64, attempt int) time.Duration {
	base := p.schedule[min(max(attempt-1, 0), len(p.schedule)-1)]
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(id))
	binary.LittleEndian.PutUint64(b[8:], uint64(attempt))
	h.Write(b[:])
	frac := float64(h.Sum64()%10_000) / 10_000 // [0, 1)
	return time.Duration(float64(base) * (0.8 + 0.4*frac))
}
