package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	attempts       *prometheus.CounterVec
	deliveries     *prometheus.CounterVec
	attemptSeconds prometheus.Histogram
	dispatched     prometheus.Counter
	queued         prometheus.Counter
	dispatchLag    prometheus.Histogram
	autoDisabled   prometheus.Counter
	snoozed        prometheus.Counter
	backlog        *backlog
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		backlog: &backlog{},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_webhook_attempts_total",
			Help: "Webhook delivery attempts by outcome: succeeded, http_error, timeout, network_error, forbidden_address, endpoint_disabled, internal_error."},
			[]string{"outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_webhook_deliveries_total",
			Help: "Webhook deliveries settled, by outcome: succeeded, or failed (retries exhausted, or the endpoint disabled)."},
			[]string{"outcome"}),
		attemptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "license_webhook_attempt_duration_seconds",
			Help:    "Duration of one webhook delivery attempt (request to response or failure).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30}}),
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_webhook_events_dispatched_total",
			Help: "Outbox events the dispatcher read (with or without subscribed endpoints)."}),
		queued: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_webhook_deliveries_queued_total",
			Help: "Delivery rows (and jobs) the dispatcher wrote, one per event and subscribed endpoint."}),
		dispatchLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "license_webhook_dispatch_lag_seconds",
			Help:    "From an outbox row's commit to its dispatch into the delivery log.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		autoDisabled: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_webhook_endpoints_auto_disabled_total",
			Help: "Endpoints this writer disabled because every delivery failed for 5 days."}),
		snoozed: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_webhook_attempts_deferred_total",
			Help: "Attempts deferred because their endpoint already had its share of concurrent attempts (a slow endpoint held back)."}),
	}
	reg.MustRegister(m.attempts, m.deliveries, m.attemptSeconds, m.dispatched, m.queued, m.dispatchLag, m.autoDisabled,
		m.snoozed, m.backlog)
	for _, o := range []string{outcomeSucceeded, outcomeHTTPError, outcomeTimeout, outcomeNetwork, outcomeForbidden} {
		m.attempts.WithLabelValues(o)
	}
	m.deliveries.WithLabelValues("succeeded")
	m.deliveries.WithLabelValues("failed")
	return m
}

// backlog holds the delivery log's state, sampled every BacklogEvery by sampleBacklog
// (one indexed query): a scrape never touches Postgres, so /metrics answers during a
// database outage, with the last values.
type backlog struct {
	mu                     sync.Mutex
	pending, due, disabled float64
	oldest                 float64
}

// BacklogEvery is how often the backlog gauges are sampled.
const BacklogEvery = 10 * time.Second

var (
	pendingDesc = prometheus.NewDesc("license_webhook_deliveries_pending",
		"Deliveries not settled yet (waiting for their first attempt or a retry); database-wide, sampled every 10 s.", nil, nil)
	dueDesc = prometheus.NewDesc("license_webhook_deliveries_due",
		"Pending deliveries whose attempt time has come: the queue the workers have not caught up with; database-wide.", nil, nil)
	oldestDesc = prometheus.NewDesc("license_webhook_oldest_due_seconds",
		"How long the oldest due delivery has waited past its attempt time (0: none due); database-wide.", nil, nil)
	disabledDesc = prometheus.NewDesc("license_webhook_endpoints_failing_disabled",
		"Endpoints disabled because every delivery failed for 5 days; database-wide.", nil, nil)
)

func (b *backlog) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- dueDesc
	ch <- oldestDesc
	ch <- disabledDesc
}

func (b *backlog) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, b.pending)
	ch <- prometheus.MustNewConstMetric(dueDesc, prometheus.GaugeValue, b.due)
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, b.oldest)
	ch <- prometheus.MustNewConstMetric(disabledDesc, prometheus.GaugeValue, b.disabled)
}

// sampleBacklog refreshes the backlog gauges until ctx ends.
func (w *Webhooks) sampleBacklog(ctx context.Context) {
	t := time.NewTicker(BacklogEvery)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var pending, due, disabled int64
		var oldest float64
		err := w.allBrands(qctx, func(tx pgx.Tx) error {
			return tx.QueryRow(qctx, `SELECT
				(SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),
				(SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()),
				(SELECT coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)::float8 FROM webhook_deliveries
					WHERE status = 'pending' AND next_attempt_at <= now()),
				(SELECT count(*) FROM webhook_endpoints WHERE disabled_reason = 'failing')`).Scan(&pending, &due, &oldest, &disabled)
		})
		cancel()
		if err == nil {
			b := w.m.backlog
			b.mu.Lock()
			b.pending, b.due, b.oldest, b.disabled = float64(pending), float64(due), oldest, float64(disabled)
			b.mu.Unlock()
		} else if ctx.Err() == nil {
			w.log.Debug("webhook backlog sample", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pool is the webhooks' own connection pool (its statistics are exported with the
// writer's other pools).
func (w *Webhooks) Pool() *pgxpool.Pool { return w.pool }
