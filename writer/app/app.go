// Package app wires the writer: configuration, Postgres, NATS, the service, the HTTP
// server and the outbox relay, under one errgroup with graceful shutdown. main and the
// end-to-end tests both call Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/shared/envconfig"
	"github.com/licensing/licensing/writer/api"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/openapi"
	"github.com/licensing/licensing/writer/outbox"
	"github.com/licensing/licensing/writer/postgres"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
)

// Config is the writer's configuration, read from WRITER_ variables.
type Config struct {
	Addr            string
	DatabaseURL     string
	MigrateURL      string
	NATSURL         string
	OperatorToken   string
	MaxConns        int
	ShutdownTimeout time.Duration
	StatusMaxAge    time.Duration
	LogLevel        string
	OutboxPoll      time.Duration
	SeatStrategy    string // "lock" (default) or "conditional"
	// IdempotencyCleanup is how often expired idempotency records are deleted.
	IdempotencyCleanup time.Duration
	// StreamReplicas is the JetStream stream's replica count (3 on a NATS cluster).
	StreamReplicas int
}

// FromEnv reads the configuration.
func FromEnv() (Config, error) {
	r := envconfig.Reader{Prefix: "WRITER_"}
	c := Config{
		Addr:               r.String("ADDR", "127.0.0.1:8080"),
		DatabaseURL:        r.Secret("DATABASE_URL", "postgres://license_app:license_app@127.0.0.1:15432/licensing?sslmode=disable"),
		NATSURL:            r.String("NATS_URL", "nats://127.0.0.1:14222"),
		OperatorToken:      r.Secret("OPERATOR_TOKEN", ""),
		MaxConns:           r.Int("DB_MAX_CONNS", 20),
		ShutdownTimeout:    r.Duration("SHUTDOWN_TIMEOUT", 15*time.Second),
		StatusMaxAge:       r.Duration("STATUS_MAX_AGE", 60*time.Second),
		LogLevel:           r.String("LOG_LEVEL", "info"),
		OutboxPoll:         r.Duration("OUTBOX_POLL", time.Second),
		SeatStrategy:       r.String("SEAT_STRATEGY", "lock"),
		IdempotencyCleanup: r.Duration("IDEMPOTENCY_CLEANUP_INTERVAL", time.Hour),
		StreamReplicas:     r.Int("STREAM_REPLICAS", 1),
	}
	if c.SeatStrategy != "lock" && c.SeatStrategy != "conditional" {
		return c, fmt.Errorf("WRITER_SEAT_STRATEGY: %q is not lock or conditional", c.SeatStrategy)
	}
	c.MigrateURL = r.Secret("MIGRATE_DATABASE_URL", c.DatabaseURL)
	return c, r.Err()
}

// LogValue masks secrets in the start-up log.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr), slog.String("database_url", envconfig.MaskURL(c.DatabaseURL)),
		slog.String("nats_url", c.NATSURL), slog.String("operator_token", envconfig.Mask(c.OperatorToken)),
		slog.Int("db_max_conns", c.MaxConns), slog.Duration("status_max_age", c.StatusMaxAge),
		slog.String("seat_strategy", c.SeatStrategy),
	)
}

// Run serves until ctx is cancelled. When ready is non-nil it receives the bound address
// once the server listens.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- string) error {
	log.Info("writer starting", "config", cfg)
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, int32(cfg.MaxConns))
	if err != nil {
		return err
	}
	defer pool.Close()

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("license-writer"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)

	svc := licensing.New(postgres.New(pool), time.Now, log)
	svc.Observe = func(result string) { m.activations.WithLabelValues(result).Inc() }
	if cfg.SeatStrategy == "conditional" {
		svc.SeatStrategy = licensing.SeatConditional
	}

	srv := api.New(svc, api.Config{
		OperatorToken: cfg.OperatorToken,
		StatusMaxAge:  cfg.StatusMaxAge,
		Ready:         readiness(pool, nc),
		Extra:         openapi.Register,
	}, log, reg, reg)
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	log.Info("writer listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}

	relay := outbox.New(pool, js, outbox.Config{PollInterval: cfg.OutboxPoll}, log, outbox.Metrics{
		Published: func(n int) { m.outboxPublished.Add(float64(n)) },
		Failed:    func() { m.outboxFailures.Inc() },
		Lag:       func(d time.Duration) { m.outboxLag.Observe(d.Seconds()) },
	})

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		log.Info("writer shutting down")
		return httpSrv.Shutdown(sctx)
	})
	g.Go(func() error {
		// the stream may not be creatable while NATS is down: keep trying
		for {
			if err := outbox.EnsureStream(gctx, js, cfg.StreamReplicas); err == nil {
				break
			} else if gctx.Err() != nil {
				return nil
			} else {
				log.Warn("jetstream stream not ready", "err", err)
			}
			select {
			case <-gctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
		return relay.Run(gctx)
	})
	g.Go(func() error {
		every := cfg.IdempotencyCleanup
		if every <= 0 {
			every = time.Hour
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if n, err := svc.CleanupIdempotency(gctx); err != nil && gctx.Err() == nil {
				log.Warn("idempotency cleanup", "err", err)
			} else if n > 0 {
				log.Info("idempotency cleanup", "deleted", n)
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return g.Wait()
}

func readiness(pool *pgxpool.Pool, nc *nats.Conn) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := pool.Ping(ctx); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if !nc.IsConnected() {
			return errors.New("nats: not connected")
		}
		return nil
	}
}

type metrics struct {
	activations     *prometheus.CounterVec
	outboxPublished prometheus.Counter
	outboxFailures  prometheus.Counter
	outboxLag       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_activations_total",
			Help: "Activation attempts by result code."}, []string{"result"}),
		outboxPublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_outbox_published_total",
			Help: "Outbox rows published to JetStream and acknowledged."}),
		outboxFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_outbox_publish_failures_total",
			Help: "Outbox publish rounds that failed and will be retried."}),
		outboxLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "license_outbox_lag_seconds",
			Help:    "From outbox row insert to JetStream acknowledgement.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30}}),
	}
	reg.MustRegister(m.activations, m.outboxPublished, m.outboxFailures, m.outboxLag)
	// export the common outcomes at zero from the start
	for _, r := range []string{licensing.ResultActivated, licensing.ResultExisting, "seat_limit_reached",
		"license_not_found", "license_suspended", "license_cancelled", "license_expired", "invalid_request"} {
		m.activations.WithLabelValues(r)
	}
	return m
}
