package outbox

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// BacklogEvery is how often Backlog samples the outbox.
const BacklogEvery = 10 * time.Second

var (
	unsentDesc = prometheus.NewDesc("license_outbox_unsent_rows",
		"Outbox rows not yet published to JetStream; database-wide (every writer reports it: take the max), sampled every 10 s.", nil, nil)
	oldestUnsentDesc = prometheus.NewDesc("license_outbox_oldest_unsent_age_seconds",
		"Age of the oldest outbox row not yet published (0: none); database-wide, sampled every 10 s. Grows when the relay stopped, whether or not it reports failures.", nil, nil)
	backlogSampledDesc = prometheus.NewDesc("license_outbox_backlog_sampled_timestamp_seconds",
		"When the outbox backlog gauges were last sampled successfully (Unix time; 0: never).", nil, nil)
)

// Backlog exports the outbox's unsent rows and the age of the oldest, sampled by Run
// (one query on the partial index outbox_unsent): a scrape never touches Postgres, so
// /metrics answers during a database outage, with the last values and their time.
type Backlog struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	now  func() time.Time

	mu             sync.Mutex
	unsent, oldest float64
	sampled        time.Time
}

// NewBacklog returns the collector; Run samples it.
func NewBacklog(pool *pgxpool.Pool, now func() time.Time, log *slog.Logger) *Backlog {
	return &Backlog{pool: pool, now: now, log: log}
}

// Describe implements prometheus.Collector.
func (b *Backlog) Describe(ch chan<- *prometheus.Desc) {
	ch <- unsentDesc
	ch <- oldestUnsentDesc
	ch <- backlogSampledDesc
}

// Collect implements prometheus.Collector.
func (b *Backlog) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(unsentDesc, prometheus.GaugeValue, b.unsent)
	ch <- prometheus.MustNewConstMetric(oldestUnsentDesc, prometheus.GaugeValue, b.oldest)
	var at float64
	if !b.sampled.IsZero() {
		at = float64(b.sampled.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(backlogSampledDesc, prometheus.GaugeValue, at)
}

// Sample reads the backlog once.
func (b *Backlog) Sample(ctx context.Context) error {
	var unsent int64
	var oldest float64
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('app.brand_id', 'all', true)"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
			FROM outbox WHERE sent_at IS NULL`).Scan(&unsent, &oldest)
	})
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.unsent, b.oldest, b.sampled = float64(unsent), max(oldest, 0), b.now()
	b.mu.Unlock()
	return nil
}

// Run samples every BacklogEvery until ctx ends.
func (b *Backlog) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = BacklogEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := b.Sample(sctx); err != nil && ctx.Err() == nil {
			b.log.Debug("outbox backlog sample", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
