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
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/internal/clientip"
	"github.com/licensing/licensing/internal/cors"
	"github.com/licensing/licensing/internal/ratelimit"
	"github.com/licensing/licensing/internal/redislog"
	"github.com/licensing/licensing/internal/sealbox"
	"github.com/licensing/licensing/internal/telemetry"
	"github.com/licensing/licensing/shared/envconfig"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/retry"
	"github.com/licensing/licensing/writer/api"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/openapi"
	"github.com/licensing/licensing/writer/outbox"
	"github.com/licensing/licensing/writer/postgres"
	"github.com/licensing/licensing/writer/webhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// Config is the writer's configuration, read from WRITER_ variables (FromEnv). Every
// field's tags give its variable, default and meaning (`writer help` prints them).
type Config struct {
	Addr          string `env:"ADDR" envDefault:"127.0.0.1:8080" help:"listen address"`
	DatabaseURL   string `env:"DATABASE_URL" envDefault:"postgres://license_app:license_app@127.0.0.1:15432/licensing?sslmode=disable" mask:"url" help:"Postgres primary, as the application role (row-level security applies)"`
	MigrateURL    string `env:"MIGRATE_DATABASE_URL" mask:"url" help:"Postgres as the schema owner, for 'writer migrate' (default: DATABASE_URL)"`
	NATSURL       string `env:"NATS_URL" envDefault:"nats://127.0.0.1:14222" mask:"url" help:"NATS with JetStream, for the outbox relay"`
	OperatorToken string `env:"OPERATOR_TOKEN" mask:"secret" help:"bearer token of the operator API (empty: no operator API)"`
	MaxConns      int    `env:"DB_MAX_CONNS" envDefault:"20" help:"Postgres pool size"`
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s" help:"graceful shutdown deadline"`
	StatusMaxAge    time.Duration `env:"STATUS_MAX_AGE" envDefault:"60s" help:"Cache-Control max-age ceiling of status answers (shortened to the next expiry)"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	Region          string        `env:"REGION" envDefault:"local" help:"region name, the label region on every metric (empty: no label)"`
	OutboxPoll      time.Duration `env:"OUTBOX_POLL" envDefault:"1s" help:"outbox relay poll interval besides LISTEN/NOTIFY"`
	// IdempotencyCleanup is how often expired idempotency records are deleted.
	IdempotencyCleanup time.Duration `env:"IDEMPOTENCY_CLEANUP_INTERVAL" envDefault:"1h" help:"how often idempotency records older than 24 h are deleted"`
	// StreamReplicas is the JetStream stream's replica count (3 on a NATS cluster).
	StreamReplicas int `env:"STREAM_REPLICAS" envDefault:"1" help:"replicas of the JetStream stream (3 on a NATS cluster)"`

	// Rate limits (API.md): one switch for all of them, the central Redis their budgets
	// live in, the proxies whose X-Forwarded-For is believed, and each row's numbers.
	RateLimits     string `env:"RATE_LIMITS" envDefault:"on" help:"on or off: every rate limit (off: none, for load tests from one address)"`
	RedisAddr      string `env:"REDIS_ADDR" envDefault:"127.0.0.1:16379" mask:"url" help:"central Redis holding the rate-limit budgets every writer shares, host:port (off: each writer limits alone); not part of readiness: while it is unreachable each writer limits alone"`
	RedisPass      string `env:"REDIS_PASSWORD" mask:"secret" help:"Redis password"`
	TrustedProxies string `env:"TRUSTED_PROXIES" help:"comma-separated CIDR ranges of proxies (the edges, an ingress) whose X-Forwarded-For names the client; none by default"`
	CORSOrigins    string `env:"CORS_ORIGINS" help:"comma-separated origins (scheme://host[:port]) whose pages may call this API from a browser, e.g. a Swagger UI served by another writer; * for any; none by default"`
	LimitBrand     string `env:"LIMIT_BRAND" envDefault:"50/1s:100" help:"requests per brand API key, <rate>/<period>:<burst> (a brand's own limit replaces it)"`
	LimitStatus    string `env:"LIMIT_STATUS" envDefault:"20/1s:100" help:"public status checks per client IP"`
	LimitWrite     string `env:"LIMIT_PUBLIC_WRITE" envDefault:"2/1s:20" help:"public activations and deactivations per client IP (not charged for a trusted proxy's requests: the edge charged them)"`
	LimitNotFound  string `env:"LIMIT_NOT_FOUND" envDefault:"30/10m:30" help:"public 404 answers per client IP; past it every public request from the IP is 429"`
	LimitUnauth    string `env:"LIMIT_UNAUTHORIZED" envDefault:"20/1m:20" help:"401 answers per client IP; past it every request with a credential from the IP is 429"`

	// Webhooks (API.md "Webhooks"; writer/webhook). Zero values (a test's literal
	// configuration) take the defaults.
	WebhookKeys          string          `env:"WEBHOOK_KEYS" mask:"secret" help:"comma-separated base64 32-byte keys sealing webhook signing secrets at rest (AES-256-GCM): the first seals, every one opens (list a new key first to rotate); empty: the webhook endpoints answer 503"`
	WebhookAllowLoopback bool            `env:"WEBHOOK_ALLOW_LOOPBACK" envDefault:"false" help:"let endpoint URLs resolve to loopback, and use http there (the local topology and tests only)"`
	WebhookAllowPrivate  bool            `env:"WEBHOOK_ALLOW_PRIVATE" envDefault:"false" help:"let endpoint URLs resolve to private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): on-premises receivers only; link-local and metadata addresses are never allowed"`
	WebhookDeliver       string          `env:"WEBHOOK_DELIVER" envDefault:"on" help:"on: this writer works delivery jobs; off: it only dispatches events into the delivery log, other writers deliver"`
	WebhookWorkers       int             `env:"WEBHOOK_WORKERS" envDefault:"50" help:"concurrent delivery attempts per writer"`
	WebhookPerEndpoint   int             `env:"WEBHOOK_PER_ENDPOINT" envDefault:"4" help:"concurrent delivery attempts to one endpoint per writer (a slow endpoint holds no more of the workers)"`
	WebhookTimeout       time.Duration   `env:"WEBHOOK_TIMEOUT" envDefault:"15s" help:"one delivery attempt: any 2xx within it is success"`
	WebhookSchedule      []time.Duration `env:"WEBHOOK_RETRY_SCHEDULE" envDefault:"5s,5m,30m,2h,5h,10h,10h" help:"waits before each retry (jittered by ±20 %); after the last the delivery is failed"`
	WebhookDisableAfter  time.Duration   `env:"WEBHOOK_DISABLE_AFTER" envDefault:"120h" help:"an endpoint whose deliveries all failed for this long is disabled"`
	WebhookRescueAfter   time.Duration   `env:"WEBHOOK_RESCUE_AFTER" envDefault:"1m" help:"a delivery still running after this (its writer died) is attempted again; more than WEBHOOK_TIMEOUT"`
	ExpiryInterval       time.Duration   `env:"EXPIRY_INTERVAL" envDefault:"10s" help:"how often passed expiries are recorded as license.expired changes (API.md: within a minute)"`

	// Signed status answers (API.md "Signed status and offline leases"; shared/lease).
	SigningKeyFile string        `env:"SIGNING_KEY_FILE" help:"PKCS#8 PEM Ed25519 private key that signs status leases (file mode 0600)"`
	SigningKey     string        `env:"SIGNING_KEY" mask:"secret" help:"the same key inline (PEM or base64 seed), when no file is given"`
	JWKSFile       string        `env:"JWKS_FILE" help:"JWK Set of every public key to publish (other nodes' keys and retired keys until their leases expire); this node's own key is always added"`
	LeaseIssuer    string        `env:"LEASE_ISSUER" envDefault:"urn:license-service" help:"iss of signed status answers"`
	LeaseDuration  time.Duration `env:"LEASE_DURATION" envDefault:"72h" help:"how long a signed status answer may be used offline (capped by a valid license's expiry)"`

	// Tests only (no variable): NoRelay runs no outbox relay, RelayDelay slows it down,
	// RelayRetry replaces its retry policy.
	NoRelay bool `json:"-"`
	// LimitKeyPrefix prefixes the rate-limit budgets' Redis keys (tests).
	LimitKeyPrefix string        `json:"-"`
	RelayDelay     time.Duration `json:"-"`
	RelayRetry     retry.Policy  `json:"-"`
	// LimitTimeout bounds one rate-limit Redis call (tests; default ratelimit's 100 ms).
	LimitTimeout time.Duration `json:"-"`
}

// EnvPrefix prefixes every variable of the writer's configuration.
const EnvPrefix = "WRITER_"

// FromEnv reads the configuration from environ (os.Environ()); unknown lists the WRITER_
// variables that no setting reads.
func FromEnv(environ []string) (c Config, unknown []string, err error) {
	unknown, err = envconfig.Load(&c, EnvPrefix, environ)
	if err != nil {
		return c, nil, err
	}
	if c.MigrateURL == "" {
		c.MigrateURL = c.DatabaseURL
	}
	if _, err := c.limits(); err != nil {
		return c, nil, err
	}
	return c, unknown, nil
}

// limits are the HTTP layer's rate limits without their limiter (nil: off).
func (c Config) limits() (*api.Limits, error) {
	switch c.RateLimits {
	case "", "off":
		return nil, nil
	case "on":
	default:
		return nil, fmt.Errorf("WRITER_RATE_LIMITS %q: on or off", c.RateLimits)
	}
	l := api.DefaultLimits()
	// "" (a test's literal configuration) keeps a row's default
	err := errors.Join(ratelimit.Override(&l.Brand, c.LimitBrand), ratelimit.Override(&l.Status, c.LimitStatus),
		ratelimit.Override(&l.PublicWrite, c.LimitWrite), ratelimit.Override(&l.NotFound, c.LimitNotFound),
		ratelimit.Override(&l.Unauthorized, c.LimitUnauth))
	return &l, err
}

// Help describes every setting.
func Help() string { return envconfig.Help(Config{}, EnvPrefix) }

// LogValue masks secrets and credentials in the start-up log.
func (c Config) LogValue() slog.Value { return envconfig.LogValue(c) }

// Run serves until ctx is cancelled. When ready is non-nil it receives the bound address
// once the server listens.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- string) error {
	log.Info("writer starting", "config", cfg)
	signer, err := cfg.signer(log)
	if err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, int32(cfg.MaxConns))
	if err != nil {
		return err
	}
	defer pool.Close()

	var relayRef atomic.Pointer[outbox.Relay]
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("license-writer"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(*nats.Conn) {
			log.Info("nats reconnected")
			if r := relayRef.Load(); r != nil {
				r.Wake() // publish what waited at once, not after the backoff
			}
		}))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	gather := prometheus.NewRegistry()
	reg := telemetry.Region(gather, cfg.Region) // every metric carries region
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)
	backlog := outbox.NewBacklog(pool, time.Now, log)
	reg.MustRegister(telemetry.BuildInfo("license_writer"), backlog, telemetry.NewNATS("license_writer", "Down: the writer is degraded, the outbox relay cannot publish.", func() *nats.Conn { return nc }))

	store := postgres.New(pool)
	store.OnUnavailable = func() { m.dbUnavailable.Inc() }
	store.OnRefused = func() { m.inputRefused.Inc() }
	store.OnAvailable = func() {
		log.Info("postgres available again")
		if r := relayRef.Load(); r != nil {
			r.Wake() // the relay's backoff may have grown while Postgres was away
		}
	}
	svc := licensing.New(store, time.Now, log)
	svc.Observe = func(result string) { m.activations.WithLabelValues(result).Inc() }
	hooks, err := cfg.webhooks(pool, svc, log, reg)
	if err != nil {
		return err
	}
	defer hooks.Close()
	reg.MustRegister(telemetry.NewPools("license_writer", map[string]*pgxpool.Pool{"primary": pool, "webhooks": hooks.Pool()}))

	limits, err := cfg.limits()
	if err != nil {
		return err
	}
	trusted, err := clientip.Parse(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("%sTRUSTED_PROXIES: %w", EnvPrefix, err)
	}
	corsOrigins, err := cors.Parse(cfg.CORSOrigins)
	if err != nil {
		return fmt.Errorf("%sCORS_ORIGINS: %w", EnvPrefix, err)
	}
	if limits != nil {
		// an interface, not a *redis.Client: without Redis the limiter must get a nil
		// interface (a typed nil pointer in it would be called, and panic)
		var rdb redis.UniversalClient
		if cfg.RedisAddr != "" && cfg.RedisAddr != "off" {
			redislog.To(log)
			c := ratelimit.RedisClient(cfg.RedisAddr, cfg.RedisPass)
			defer c.Close()
			rdb = c
		}
		limits.Limiter = ratelimit.New(rdb, ratelimit.Config{Prefix: "writer:" + cfg.LimitKeyPrefix, Timeout: cfg.LimitTimeout}, log, func(open bool) { m.limitRedisSkipped.Set(b2f(open)) })
		log.Info("rate limits on", "brand", limits.Brand.String(), "status", limits.Status.String(),
			"public_write", limits.PublicWrite.String(), "not_found", limits.NotFound.String(),
			"unauthorized", limits.Unauthorized.String(), "shared", rdb != nil)
	} else {
		log.Warn("rate limits off (WRITER_RATE_LIMITS=off)")
	}
	srv := api.New(svc, api.Config{
		OperatorToken: cfg.OperatorToken,
		StatusMaxAge:  cfg.StatusMaxAge,
		Ready:         readiness(pool),
		Degraded:      degraded(nc),
		Extra:         openapi.Register,
		Limits:        limits,
		Trusted:       trusted,
		Signer:        signer,
		CORS:          corsOrigins,
	}, log, reg, gather)
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// above the contract's limit (api.MaxHeadBytes, answered as problem+json by the
		// handler), so net/http answers an oversized head itself only past 1 MiB
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	log.Info("writer listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}

	relay := outbox.New(pool, js, outbox.Config{PollInterval: cfg.OutboxPoll, Delay: cfg.RelayDelay, Retry: cfg.RelayRetry}, log, outbox.Metrics{
		Published: func(n int) { m.outboxPublished.Add(float64(n)) },
		Failed:    func() { m.outboxFailures.Inc() },
		Lag:       func(d time.Duration) { m.outboxLag.Observe(d.Seconds()) },
		Leading: func(v bool) {
			if v {
				m.relayLeading.Set(1)
			} else {
				m.relayLeading.Set(0)
			}
		},
		Heartbeat: func() { m.heartbeats.Inc() },
	})
	relayRef.Store(relay)

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
		err := retry.Until(gctx, retry.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second},
			func() error { return outbox.EnsureStream(gctx, js, cfg.StreamReplicas) },
			func(err error, wait time.Duration) {
				log.Warn("jetstream stream not ready", "err", err, "retry_in", wait)
			})
		if err != nil {
			return nil // ctx ended
		}
		if cfg.NoRelay {
			<-gctx.Done()
			return nil
		}
		return relay.Run(gctx)
	})
	g.Go(func() error { return hooks.Run(gctx) })
	g.Go(func() error { backlog.Run(gctx, 0); return nil })
	g.Go(func() error {
		every := cfg.ExpiryInterval
		if every <= 0 {
			every = 10 * time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			for {
				n, err := svc.RecordExpiries(gctx, 500)
				if err != nil && gctx.Err() == nil {
					log.Warn("recording expiries", "err", err)
				}
				m.expiries.Add(float64(n))
				if n < 500 || err != nil {
					break
				}
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
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

// webhooks builds the dispatcher and delivery workers and gives the domain its webhook
// configuration.
func (c Config) webhooks(pool *pgxpool.Pool, svc *licensing.Service, log *slog.Logger, reg prometheus.Registerer) (*webhook.Webhooks, error) {
	var sealer licensing.Sealer
	if c.WebhookKeys != "" {
		box, err := sealbox.Parse(c.WebhookKeys)
		if err != nil {
			return nil, fmt.Errorf("%sWEBHOOK_KEYS: %w", EnvPrefix, err)
		}
		sealer = box
	} else {
		log.Warn("webhooks: no WRITER_WEBHOOK_KEYS; the webhook endpoints answer 503 (events are still dispatched)")
	}
	if c.WebhookDeliver != "" && c.WebhookDeliver != "on" && c.WebhookDeliver != "off" {
		return nil, fmt.Errorf("%sWEBHOOK_DELIVER %q: on or off", EnvPrefix, c.WebhookDeliver)
	}
	guard := webhook.Guard{AllowLoopback: c.WebhookAllowLoopback, AllowPrivate: c.WebhookAllowPrivate}
	hooks, err := webhook.New(pool, sealer, webhook.Config{
		Workers: c.WebhookWorkers, PerEndpoint: c.WebhookPerEndpoint, Timeout: c.WebhookTimeout,
		Schedule: c.WebhookSchedule, DisableAfter: c.WebhookDisableAfter, RescueAfter: c.WebhookRescueAfter,
		NoWorkers: c.WebhookDeliver == "off", Guard: guard,
	}, log, reg)
	if err != nil {
		return nil, err
	}
	if sealer != nil {
		svc.SetWebhooks(licensing.Webhooks{Sealer: sealer, CheckURL: guard.CheckURL, Queue: hooks})
	}
	if c.WebhookAllowLoopback || c.WebhookAllowPrivate {
		log.Warn("webhooks may reach internal addresses", "loopback", c.WebhookAllowLoopback, "private", c.WebhookAllowPrivate)
	}
	return hooks, nil
}

// signer loads the lease key (or makes an ephemeral one) and the published key set.
func (c Config) signer(log *slog.Logger) (*lease.Signer, error) {
	return lease.OpenLogged(EnvPrefix, lease.Settings{KeyFile: c.SigningKeyFile, Key: c.SigningKey,
		JWKSFile: c.JWKSFile, Issuer: c.LeaseIssuer, Duration: c.LeaseDuration}, log)
}

// readiness: the writer can serve requests when Postgres is usable. NATS is not part of
// it: writes succeed without it (their events wait in the outbox), so losing NATS makes
// the writer degraded, not unready.
func readiness(pool *pgxpool.Pool) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := pool.Ping(ctx); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		return nil
	}
}

func degraded(nc *nats.Conn) func() error {
	return func() error {
		if !nc.IsConnected() {
			return errors.New("nats: not connected; events wait in the outbox")
		}
		return nil
	}
}

type metrics struct {
	limitRedisSkipped prometheus.Gauge
	relayLeading      prometheus.Gauge
	heartbeats        prometheus.Counter
	dbUnavailable     prometheus.Counter
	inputRefused      prometheus.Counter
	activations       *prometheus.CounterVec
	outboxPublished   prometheus.Counter
	outboxFailures    prometheus.Counter
	outboxLag         prometheus.Histogram
	expiries          prometheus.Counter
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		relayLeading: prometheus.NewGauge(prometheus.GaugeOpts{Name: "license_outbox_relay_leading",
			Help: "1 while this writer holds the outbox relay's lease."}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_outbox_heartbeats_total",
			Help: "Heartbeats published: certifications that every outbox row committed before them is in the stream."}),
		dbUnavailable: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_writer_db_unavailable_total",
			Help: "Operations that failed because Postgres could not be reached or would not serve (answered 503)."}),
		inputRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_writer_input_refused_by_db_total",
			Help: "Requests answered invalid_request because Postgres refused a value the API's checks let through (each is a missing check)."}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_activations_total",
			Help: "Activation attempts by result code."}, []string{"result"}),
		outboxPublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_outbox_published_total",
			Help: "Outbox rows published to JetStream and acknowledged."}),
		outboxFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_outbox_publish_failures_total",
			Help: "Outbox relay sessions that failed (publishing, or reaching Postgres or NATS) and will be retried."}),
		outboxLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "license_outbox_lag_seconds",
			Help:    "From outbox row insert to JetStream acknowledgement.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		expiries: prometheus.NewCounter(prometheus.CounterOpts{Name: "license_expiries_recorded_total",
			Help: "Expiries this writer recorded as license.expired changes (each expiry once across writers)."}),
		limitRedisSkipped: prometheus.NewGauge(prometheus.GaugeOpts{Name: "license_writer_rate_limit_redis_skipped",
			Help: "1 while the rate limits' Redis is unreachable and each writer limits alone."}),
	}
	reg.MustRegister(m.limitRedisSkipped, m.relayLeading, m.heartbeats, m.dbUnavailable, m.inputRefused, m.activations, m.outboxPublished, m.outboxFailures, m.outboxLag, m.expiries)
	// export the common outcomes at zero from the start
	for _, r := range []string{licensing.ResultActivated, licensing.ResultExisting, "seat_limit_reached",
		"license_not_found", "license_suspended", "license_cancelled", "license_expired", "invalid_request"} {
		m.activations.WithLabelValues(r)
	}
	return m
}
