// Package metrics holds the edge's Prometheus instruments, registered on a registry the
// caller passes in (no globals). Labels never contain a license key.
package metrics

import (
	"context"
	"time"

	"github.com/licensing/licensing/shared/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the edge's instruments.
type Metrics struct {
	// FilterAnswers counts lookups the key filter answered "no such key" (absent) or let
	// through (passed); FilterKeys and FilterBytes describe the filter after its last build.
	FilterAnswers           *prometheus.CounterVec
	FilterKeys, FilterBytes prometheus.Gauge
	// Lookups counts tier lookups by tier (l1, l2, replica, primary) and result (hit, miss).
	Lookups *prometheus.CounterVec
	// FillsRefused counts fills not cached or not served because they were older than a
	// version the edge already knew, by tier.
	FillsRefused *prometheus.CounterVec
	// BackendErrors counts failed calls to a dependency, by tier.
	BackendErrors *prometheus.CounterVec
	// TierOpen is 1 while a tier's circuit breaker skips it (internal/breaker).
	TierOpen *prometheus.GaugeVec
	// Invalidations counts change events applied.
	Invalidations prometheus.Counter
	// Heartbeats counts relay heartbeats applied.
	Heartbeats prometheus.Counter
	// InvalidationLag observes event commit time to applied at this edge.
	InvalidationLag prometheus.Histogram
	// Resets counts times the edge dropped its memory cache because it could not trust it.
	Resets prometheus.Counter
	// StaleServed counts answers served stale (stale-if-error).
	StaleServed prometheus.Counter
	// Advanced counts cached key states moved to a new version by a change event
	// instead of being read again.
	Advanced prometheus.Counter
	// RateLimited counts requests refused by a limit, by route and reason.
	RateLimited *prometheus.CounterVec
	// Requests observes request latency by route and status class.
	Requests *prometheus.HistogramVec
	// Relayed counts writes relayed to the writer by route and code (the writer's status
	// class, or error when no writer answered).
	Relayed *prometheus.CounterVec
	// StreamPending is the JetStream consumer's lag: events in the stream after the last
	// one this edge applied (SampleStreamPending).
	StreamPending prometheus.Gauge
	// Resubscribes counts event stream consumers recreated by the watchdog (the stream
	// moved on while this edge, connected, received nothing).
	Resubscribes prometheus.Counter
	// Signed counts signed status answers (offline leases) by cache: hit (a token signed
	// earlier in the same iat second was reused) or miss (signed now).
	Signed *prometheus.CounterVec
}

// New creates the instruments and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_edge_cache_lookups_total",
			Help: "Status lookups per read tier, by result (hit or miss)."}, []string{"tier", "result"}),
		FillsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_edge_fills_refused_stale_total",
			Help: "Fills refused because they were older than a version this edge already knew."}, []string{"tier"}),
		BackendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_edge_backend_errors_total",
			Help: "Failed calls to a dependency, by tier."}, []string{"tier"}),
		TierOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "license_edge_tier_open",
			Help: "1 while a tier is skipped after failing (one caller probes it per interval)."}, []string{"tier"}),
		Invalidations: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_edge_invalidations_applied_total",
			Help: "Change events applied by this edge."}),
		Heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_edge_heartbeats_applied_total",
			Help: "Relay heartbeats applied by this edge (each certifies that every earlier change is in the stream)."}),
		InvalidationLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "license_edge_invalidation_lag_seconds",
			Help:    "From the change's commit at the writer to the event applied at this edge.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		Resets: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_edge_cache_resets_total",
			Help: "Times the memory cache was dropped because the event stream could not be resumed."}),
		StaleServed: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_edge_stale_answers_total",
			Help: "Status answers served stale because every backend failed."}),
		Advanced: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_edge_states_advanced_total",
			Help: "Cached key states moved to a change's version from its event, without a read."}),
		FilterAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_edge_key_filter_answers_total",
			Help: "Lookups the key filter answered as an unknown key without a read (absent) or let through to the tiers (passed)."}, []string{"result"}),
		FilterKeys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "license_edge_key_filter_keys",
			Help: "Keys loaded into the key filter at its last build."}),
		FilterBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "license_edge_key_filter_bytes",
			Help: "Memory of the key filter's bit array."}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_edge_rate_limited_total",
			Help: "Requests refused by a limit, by route and reason (a rate-limit policy answered 429; backend: Postgres reads over their rate, answered from another tier or 503)."}, []string{"route", "reason"}),
		Requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "license_edge_request_duration_seconds",
			Help:    "Request latency by route and status code class.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"route", "code"}),
		Relayed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_edge_relayed_total",
			Help: "Public writes relayed to the writer, by route and code: the writer's status class (2xx, 4xx, 5xx), or error when no writer answered."}, []string{"route", "code"}),
		StreamPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "license_edge_stream_pending_messages",
			Help: "JetStream consumer lag: messages (change events and heartbeats) in the stream after the last one this edge applied; sampled every 5 s while subscribed (the last value while NATS is unreachable)."}),
		Resubscribes: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_edge_stream_resubscribes_total",
			Help: "Event stream consumers recreated because the stream held messages this edge, connected to NATS, had not received for 2 s (a cut link healed before the NATS client's own reset)."}),
		Signed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_edge_signed_answers_total",
			Help: "Signed status answers (application/jose leases), by cache: hit (the same question's token from the same iat second reused) or miss (signed)."}, []string{"cache"}),
	}
	reg.MustRegister(m.Lookups, m.FillsRefused, m.BackendErrors, m.TierOpen, m.Invalidations, m.Heartbeats, m.InvalidationLag,
		m.Resets, m.StaleServed, m.Advanced, m.RateLimited, m.Requests, m.Relayed, m.FilterAnswers, m.FilterKeys, m.FilterBytes, m.Signed,
		m.StreamPending, m.Resubscribes)
	m.Signed.WithLabelValues("hit")
	m.Signed.WithLabelValues("miss")
	for _, t := range []string{"l1", "l2", "replica", "primary"} {
		m.Lookups.WithLabelValues(t, "hit")
		m.Lookups.WithLabelValues(t, "miss")
		m.FillsRefused.WithLabelValues(t)
		m.BackendErrors.WithLabelValues(t)
	}
	m.FillsRefused.WithLabelValues("edge") // refused at the top of the read path (version.Guard)
	return m
}

// TierOpenFunc reports a tier's breaker state into TierOpen.
func (m *Metrics) TierOpenFunc(tier string) func(open bool) {
	return func(open bool) {
		v := 0.0
		if open {
			v = 1
		}
		m.TierOpen.WithLabelValues(tier).Set(v)
	}
}

// StreamPendingEvery is how often SampleStreamPending asks the stream for its last sequence.
const StreamPendingEvery = 5 * time.Second

// SampleStreamPending sets StreamPending every interval until ctx ends, off the scrape
// path: the stream's last sequence (one STREAM.INFO request) minus applied(), the last
// sequence this edge applied. It samples only while subscribed() (before the first
// subscription applied() means nothing); conn may return nil until the consumer connects.
func (m *Metrics) SampleStreamPending(ctx context.Context, every time.Duration, conn func() *nats.Conn, subscribed func() bool, applied func() uint64) {
	if every <= 0 {
		every = StreamPendingEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if nc := conn(); nc != nil && nc.IsConnected() && subscribed() {
			if js, err := jetstream.New(nc); err == nil {
				sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				if st, err := js.Stream(sctx, event.Stream); err == nil {
					last, done := st.CachedInfo().State.LastSeq, applied()
					m.StreamPending.Set(float64(last - min(done, last)))
				}
				cancel()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
