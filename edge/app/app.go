// Package app wires an edge node: configuration from EDGE_ variables, the read tiers
// (ristretto → Redis → Postgres replica with primary fallback), the NATS invalidation
// consumer, the writer relay and the fasthttp server, under one errgroup with graceful
// shutdown. main and the end-to-end tests both call Run. A missing dependency never stops
// the node: it starts, serves what it can, and reports readiness on /readyz.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/edge/cache"
	"github.com/licensing/licensing/edge/invalidate"
	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/redis"
	"github.com/licensing/licensing/edge/relay"
	"github.com/licensing/licensing/edge/replica"
	"github.com/licensing/licensing/edge/server"
	"github.com/licensing/licensing/edge/shield"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/internal/clientip"
	"github.com/licensing/licensing/internal/cors"
	"github.com/licensing/licensing/internal/ratelimit"
	"github.com/licensing/licensing/internal/redislog"
	"github.com/licensing/licensing/internal/telemetry"
	"github.com/licensing/licensing/shared/envconfig"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/license"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/sync/errgroup"
)

// Config is the edge's configuration, read from EDGE_ variables by FromEnv; each field's
// tags give its variable, default and meaning (`edge --help` prints them). The fields
// after the env-backed ones are for tests and benchmarks.
type Config struct {
	Addr       string `env:"ADDR" envDefault:"127.0.0.1:8081" help:"listen address"`
	NodeID     string `env:"NODE_ID" help:"node name in logs and metrics (default: the host name)"`
	ReplicaURL string `env:"REPLICA_URL" envDefault:"postgres://license_edge:license_edge@127.0.0.1:15433/licensing?sslmode=disable" mask:"url" help:"Postgres read replica, as the read-only role license_edge (off: none)"`
	PrimaryURL string `env:"PRIMARY_URL" envDefault:"postgres://license_edge:license_edge@127.0.0.1:15432/licensing?sslmode=disable" mask:"url" help:"Postgres primary, as license_edge, read when the replica lags or fails (off: none)"`
	RedisAddr  string `env:"REDIS_ADDR" envDefault:"127.0.0.1:16379" mask:"url" help:"regional Redis, host:port (off: no L2)"`
	RedisPass  string `env:"REDIS_PASSWORD" mask:"secret" help:"Redis password"`
	NATSURL    string `env:"NATS_URL" envDefault:"nats://127.0.0.1:14222" mask:"url" help:"NATS for change events (off: none; the revalidation ceiling still holds)"`
	WriterURL  string `env:"WRITER_URL" envDefault:"http://127.0.0.1:8080" mask:"url" help:"the writers, comma-separated, for relayed activations and deactivations (round robin; a writer that fails is skipped for TIER_PROBE_EVERY and the next one is tried) (off: writes answer 503)"`

	L1Bytes     int64         `env:"L1_BYTES" envDefault:"268435456" help:"memory budget of the in-process cache in bytes (0: no L1)"`
	Ceiling     time.Duration `env:"REVALIDATE_CEILING" envDefault:"30s" help:"hard revalidation ceiling of every cached entry"`
	NegativeTTL time.Duration `env:"NEGATIVE_TTL" envDefault:"5s" help:"how long an unknown key is remembered"`
	// StreamCurrentWithin: an unknown key is answered from memory only while a relay
	// heartbeat was applied this recently.
	StreamCurrentWithin time.Duration `env:"STREAM_CURRENT_WITHIN" envDefault:"1s" help:"an unknown key is answered from memory only while a relay heartbeat was applied this recently; otherwise the primary is asked"`
	StaleWithoutStream  time.Duration `env:"STALE_WITHOUT_STREAM" envDefault:"10s" help:"answers are marked stale (X-Cache-Stale) once no relay heartbeat has arrived for this long: the node is cut off from the centre, whatever its Redis and replica still answer (0: never)"`
	StaleIfError        time.Duration `env:"STALE_IF_ERROR" envDefault:"10m" help:"how long past freshness a cached answer is served, marked stale, when every tier below fails"`
	StatusMaxAge        time.Duration `env:"STATUS_MAX_AGE" envDefault:"60s" help:"Cache-Control max-age ceiling of status answers"`
	DBMaxConns          int           `env:"DB_MAX_CONNS" envDefault:"16" help:"connections per Postgres pool"`
	DBTimeout           time.Duration `env:"DB_TIMEOUT" envDefault:"1s" help:"bound of one Postgres read"`
	BackendRate         int           `env:"BACKEND_RATE" envDefault:"2000" help:"Postgres reads per second (0: unlimited)"`
	BackendBurst        int           `env:"BACKEND_BURST" envDefault:"500" help:"burst of Postgres reads"`
	BackendConc         int           `env:"BACKEND_CONCURRENCY" envDefault:"32" help:"Postgres reads in flight (at most DB_MAX_CONNS)"`
	TierProbeEvery      time.Duration `env:"TIER_PROBE_EVERY" envDefault:"1s" help:"a tier (Redis, replica, primary) that failed is skipped this long, then one request probes it"`
	RateLimits          string        `env:"RATE_LIMITS" envDefault:"on" help:"on or off: every rate limit (off: none, for load tests from one address); the budgets live in REDIS_ADDR, shared by the region's edges"`
	TrustedProxies      string        `env:"TRUSTED_PROXIES" help:"comma-separated CIDR ranges of proxies (an ingress, a load balancer) whose X-Forwarded-For names the client; none by default"`
	CORSOrigins         string        `env:"CORS_ORIGINS" help:"comma-separated origins (scheme://host[:port]) whose pages may call the public endpoints from a browser, e.g. the writer's Swagger UI; * for any; none by default"`
	LimitStatus         string        `env:"LIMIT_STATUS" envDefault:"20/1s:100" help:"public status checks per client IP, <rate>/<period>:<burst>"`
	LimitWrite          string        `env:"LIMIT_PUBLIC_WRITE" envDefault:"2/1s:20" help:"public activations and deactivations per client IP (charged here; the writer does not charge them again)"`
	LimitNotFound       string        `env:"LIMIT_NOT_FOUND" envDefault:"30/10m:30" help:"public 404 answers per client IP; past it every public request from the IP is 429"`
	KeyFilter           string        `env:"KEY_FILTER" envDefault:"on" help:"on or off: a Bloom filter of every key answers unknown keys without a Redis or Postgres read (needs NATS)"`
	KeyFilterFP         float64       `env:"KEY_FILTER_FALSE_POSITIVE" envDefault:"0.001" help:"target false-positive rate of the key filter (the share of unknown keys that still cost a read)"`
	KeyFilterRebuild    time.Duration `env:"KEY_FILTER_REBUILD" envDefault:"1h" help:"how often the key filter is rebuilt from Postgres"`
	ClockSkew           time.Duration `env:"CLOCK_SKEW" envDefault:"100ms" help:"largest clock difference between the writers and this edge; the key filter answers an unknown key once the stream has certified the request's arrival plus this"`
	WriterSourceIP      string        `env:"WRITER_SOURCE_IP" help:"local address the connections to the writers come from (the writers trust it as a proxy); default: the system's choice"`
	WriterTimeout       time.Duration `env:"WRITER_TIMEOUT" envDefault:"3s" help:"bound of one relayed write (then the next writer is tried)"`
	WriterMaxConns      int           `env:"WRITER_MAX_CONNS" envDefault:"256" help:"connections to the writer"`
	VersionRetain       time.Duration `env:"VERSION_RETAIN" envDefault:"1h" help:"known versions of idle keys are forgotten after this"`
	ShutdownTimeout     time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s" help:"graceful shutdown deadline"`
	LogLevel            string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	Region              string        `env:"REGION" envDefault:"local" help:"region name, the label region on every metric (empty: no label)"`

	// Signed status answers (API.md "Signed status and offline leases"; shared/lease).
	SigningKeyFile string        `env:"SIGNING_KEY_FILE" help:"PKCS#8 PEM Ed25519 private key that signs status leases (file mode 0600)"`
	SigningKey     string        `env:"SIGNING_KEY" mask:"secret" help:"the same key inline (PEM or base64 seed), when no file is given"`
	JWKSFile       string        `env:"JWKS_FILE" help:"JWK Set of every public key to publish (other nodes' keys and retired keys until their leases expire); this node's own key is always added"`
	LeaseIssuer    string        `env:"LEASE_ISSUER" envDefault:"urn:license-service" help:"iss of signed status answers"`
	LeaseDuration  time.Duration `env:"LEASE_DURATION" envDefault:"72h" help:"how long a signed status answer may be used offline (capped by a valid license's expiry)"`
	// LeaseGranularity: a coarser one signs less often under load from many keys, at the
	// price of an iat (and checked_at) up to that much older than the answer.
	LeaseGranularity time.Duration `env:"LEASE_IAT_GRANULARITY" envDefault:"1s" help:"iat and checked_at of a signed answer are the time truncated to this (whole seconds, 1s to 1m); the same question about the same key version within it reuses one signature"`

	// LimitKeyPrefix prefixes the rate-limit budgets' Redis keys (tests).
	LimitKeyPrefix string `json:"-"`
	// LimitTimeout bounds one rate-limit Redis call (tests; default ratelimit's 100 ms).
	LimitTimeout time.Duration `json:"-"`
	// Now is the clock (time.Now when nil).
	Now func() time.Time `json:"-"`
	// Registry receives the metrics (a new registry when nil).
	Registry *prometheus.Registry `json:"-"`
	// Started, when set, receives the node's parts once wired (tests).
	Started func(*Node) `json:"-"`
}

// EnvPrefix prefixes every variable of the edge's configuration.
const EnvPrefix = "EDGE_"

// FromEnv reads the configuration from environ (os.Environ()); unknown lists the EDGE_
// variables that no setting reads.
func FromEnv(environ []string) (c Config, unknown []string, err error) {
	unknown, err = envconfig.Load(&c, EnvPrefix, environ)
	if err != nil {
		return c, nil, err
	}
	if c.NodeID == "" {
		c.NodeID, _ = os.Hostname()
	}
	if _, err := c.limits(); err != nil {
		return c, nil, err
	}
	if g := c.LeaseGranularity; g < time.Second || g > time.Minute || g%time.Second != 0 {
		return c, nil, fmt.Errorf("EDGE_LEASE_IAT_GRANULARITY %v: whole seconds from 1s to 1m", g)
	}
	if c.KeyFilter != "on" && c.KeyFilter != "off" {
		return c, nil, fmt.Errorf("EDGE_KEY_FILTER %q: on or off", c.KeyFilter)
	}
	return c, unknown, nil
}

// limits are the server's rate limits without their limiter (nil: off).
func (c Config) limits() (*server.Limits, error) {
	switch c.RateLimits {
	case "", "off":
		return nil, nil
	case "on":
	default:
		return nil, fmt.Errorf("EDGE_RATE_LIMITS %q: on or off", c.RateLimits)
	}
	l := &server.Limits{Status: ratelimit.Status, PublicWrite: ratelimit.PublicWrite, NotFound: ratelimit.NotFound}
	// "" (a test's literal configuration) keeps a row's default
	return l, errors.Join(ratelimit.Override(&l.Status, c.LimitStatus), ratelimit.Override(&l.PublicWrite, c.LimitWrite),
		ratelimit.Override(&l.NotFound, c.LimitNotFound))
}

// Help describes every setting.
func Help() string { return envconfig.Help(Config{}, EnvPrefix) }

// LogValue masks secrets and credentials in the start-up log.
func (c Config) LogValue() slog.Value { return envconfig.LogValue(c) }

func enabled(s string) bool { return s != "" && s != "off" }

// Node exposes a running node's parts to tests.
type Node struct {
	Addr     string
	Known    *version.Known
	L1       *cache.Cache         // nil when disabled
	L2       *redis.Store         // nil when disabled
	L3       *replica.Store       // the Postgres tier
	Events   *invalidate.Consumer // nil when NATS is off
	Shield   *shield.Shield       // nil when the key filter is off
	Source   source.Source        // the top of the read path
	Signer   *lease.Signer        // signs status leases; its key set is served
	Registry *prometheus.Registry
}

// Run serves until ctx is cancelled. When ready is non-nil it receives the bound address
// once the server listens.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- string) error {
	log.Info("edge starting", "config", cfg)
	var err error
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	gather := cfg.Registry
	ownRegistry := gather == nil
	if ownRegistry {
		gather = prometheus.NewRegistry()
	}
	reg := telemetry.Region(gather, cfg.Region) // every metric carries region
	if ownRegistry {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := metrics.New(reg)
	reg.MustRegister(telemetry.BuildInfo("license_edge"))
	known := version.New()
	node := &Node{Known: known, Registry: gather}
	if node.Signer, err = cfg.signer(log); err != nil {
		return err
	}

	var replicaPool, primaryPool *pgxpool.Pool
	if enabled(cfg.ReplicaURL) {
		if replicaPool, err = replica.Connect(cfg.ReplicaURL, int32(cfg.DBMaxConns), time.Second, cfg.DBTimeout); err != nil {
			return err
		}
		defer replicaPool.Close()
	}
	if enabled(cfg.PrimaryURL) {
		if primaryPool, err = replica.Connect(cfg.PrimaryURL, int32(cfg.DBMaxConns), time.Second, cfg.DBTimeout); err != nil {
			return err
		}
		defer primaryPool.Close()
	}
	reg.MustRegister(telemetry.NewPools("license_edge", map[string]*pgxpool.Pool{"replica": replicaPool, "primary": primaryPool}))
	node.L3 = replica.New(replicaPool, primaryPool, known, replica.Config{
		Timeout: cfg.DBTimeout, MaxConcurrent: cfg.BackendConc, Rate: float64(cfg.BackendRate), Burst: cfg.BackendBurst,
		Backoff: cfg.TierProbeEvery,
	}, now, log, m)
	var stream source.Stream = source.NoStream{}
	if enabled(cfg.NATSURL) {
		node.Events = invalidate.New(invalidate.Config{URL: cfg.NATSURL, Name: cfg.NodeID, CurrentWithin: cfg.StreamCurrentWithin},
			func(ctx context.Context, ch event.Change) { apply(ctx, node, ch, now) },
			func() {
				if node.L1 != nil {
					node.L1.Clear()
				}
				if node.Shield != nil {
					node.Shield.Reset() // it may miss keys created in the gap
				}
			}, now, log, m)
		stream = node.Events
		reg.MustRegister(telemetry.NewNATS("license_edge", "Down: the edge receives no change events (its answers hold until the revalidation ceiling).", node.Events.Conn))
	}
	limits, err := cfg.limits()
	if err != nil {
		return err
	}
	trusted, err := clientip.Parse(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("EDGE_TRUSTED_PROXIES: %w", err)
	}
	corsOrigins, err := cors.Parse(cfg.CORSOrigins)
	if err != nil {
		return fmt.Errorf("EDGE_CORS_ORIGINS: %w", err)
	}
	var rdb *goredis.Client
	var src source.Source = node.L3
	if enabled(cfg.RedisAddr) {
		redislog.To(log)
		rdb = redis.Client(cfg.RedisAddr, cfg.RedisPass)
		defer rdb.Close()
		node.L2 = redis.New(rdb, src, known, redis.Config{TTL: cfg.Ceiling, NegativeTTL: cfg.NegativeTTL, Stream: stream, Backoff: cfg.TierProbeEvery}, now, log, m)
		src = node.L2
	}
	keyPool := replicaPool
	if keyPool == nil {
		keyPool = primaryPool
	}
	if cfg.KeyFilter == "on" && node.Events != nil && keyPool != nil {
		node.Shield = shield.New(src, node.Events, shield.PostgresLoader(replicaPool, primaryPool, 30*time.Second),
			shield.Config{FalsePositive: cfg.KeyFilterFP, Skew: cfg.ClockSkew, Rebuild: cfg.KeyFilterRebuild}, now, log,
			shield.Metrics{
				Answered: func() { m.FilterAnswers.WithLabelValues("absent").Inc() },
				Passed:   func() { m.FilterAnswers.WithLabelValues("passed").Inc() },
				Loaded:   func(keys, bytes int) { m.FilterKeys.Set(float64(keys)); m.FilterBytes.Set(float64(bytes)) },
			})
		src = node.Shield
	}
	if cfg.L1Bytes > 0 {
		node.L1, err = cache.New(src, known, cache.Config{MaxBytes: cfg.L1Bytes, Ceiling: cfg.Ceiling,
			NegativeTTL: cfg.NegativeTTL, StaleFor: cfg.StaleIfError, FetchTimeout: 2*cfg.DBTimeout + time.Second, Stream: stream}, now, log, m)
		if err != nil {
			return err
		}
		defer node.L1.Close()
		src = node.L1
	}
	src = version.NewGuard(src, known, now, m)
	node.Source = src

	if limits != nil {
		var shared goredis.UniversalClient
		if rdb != nil {
			shared = rdb // the region's Redis: one budget per IP for all its edges
		}
		limits.Limiter = ratelimit.New(shared, ratelimit.Config{ProbeEvery: cfg.TierProbeEvery, Prefix: "edge:" + cfg.LimitKeyPrefix, Timeout: cfg.LimitTimeout}, log, m.TierOpenFunc("rate-limit redis"))
		log.Info("rate limits on", "status", limits.Status.String(), "public_write", limits.PublicWrite.String(),
			"not_found", limits.NotFound.String(), "shared", rdb != nil)
	} else {
		log.Warn("rate limits off (EDGE_RATE_LIMITS=off)")
	}

	var rel server.Relayer
	if enabled(cfg.WriterURL) {
		c, err := relay.New(relay.Config{WriterURLs: strings.Split(cfg.WriterURL, ","), Timeout: cfg.WriterTimeout,
			MaxConns: cfg.WriterMaxConns, ProbeEvery: cfg.TierProbeEvery, SourceIP: cfg.WriterSourceIP}, log, m)
		if err != nil {
			return err
		}
		rel = c
	}
	var streamSilence func() time.Duration
	if node.Events != nil {
		streamSilence = node.Events.Silence
	}
	srv := server.New(src, rel, readiness(replicaPool, primaryPool, node.L2),
		fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(gather, promhttp.HandlerOpts{Registry: reg})),
		server.Config{StatusMaxAge: cfg.StatusMaxAge, NotFoundMaxAge: cfg.NegativeTTL, Limits: limits, Trusted: trusted,
			Signer: node.Signer, LeaseGranularity: cfg.LeaseGranularity, CORS: corsOrigins,
			StreamSilence: streamSilence, StaleWithoutStream: cfg.StaleWithoutStream}, now, log, m)
	hs := &fasthttp.Server{
		Handler:               srv.Handler,
		ErrorHandler:          srv.ErrorHandler,
		ReadBufferSize:        server.MaxHeadBytes,
		Name:                  "license-edge",
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           120 * time.Second,
		MaxRequestBodySize:    1 << 20,
		NoDefaultServerHeader: true,
		NoDefaultDate:         false,
		Logger:                fasthttpLogger{log},
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	node.Addr = ln.Addr().String()
	log.Info("edge listening", "addr", node.Addr)
	if cfg.Started != nil {
		cfg.Started(node)
	}
	if ready != nil {
		ready <- node.Addr
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return hs.Serve(ln) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		log.Info("edge shutting down")
		if err := hs.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	})
	if node.Events != nil {
		g.Go(func() error { return node.Events.Run(gctx) })
		g.Go(func() error {
			m.SampleStreamPending(gctx, 0, node.Events.Conn, node.Events.Subscribed, node.Events.LastSeq)
			return nil
		})
		if node.Shield != nil {
			g.Go(func() error { node.Shield.Run(gctx, shield.PostgresCount(keyPool)); return nil })
		}
	}
	g.Go(func() error {
		// forget versions of keys idle for long, with their L1 entries
		t := time.NewTicker(max(cfg.VersionRetain/10, time.Second))
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				known.Prune(now().Add(-cfg.VersionRetain), func(ck string) {
					if node.L1 != nil {
						node.L1.Forget(ck)
					}
				})
			}
		}
	})
	return g.Wait()
}

// apply takes one change event into account: the key's known version moves forward (so
// every tier treats older states as misses), and so does the known version of the
// instance an activation event names (its entries alone go stale: every other instance
// entry of the key stays valid); Redis gets tombstones for that version.
func apply(ctx context.Context, node *Node, ch event.Change, now func() time.Time) {
	if ch.Brand == "" || ch.LicenseKey == "" || ch.Version <= 0 {
		return
	}
	if node.Shield != nil && ch.Type == event.KeyCreated {
		node.Shield.Add(ch.LicenseKey)
	}
	node.Known.Observe(source.CacheKey(ch.Brand, ch.LicenseKey), ch.Version, now())
	if node.L1 != nil && ch.License != nil {
		l := ch.License
		node.L1.Advance(ch.Brand, ch.LicenseKey, license.Changed{Version: ch.Version, Licenses: []license.LicenseState{{
			ID: l.ID, Product: l.Product, Status: l.Status, ExpiresAt: l.ExpiresAt, SeatLimit: l.SeatLimit, SeatsUsed: l.SeatsUsed}}})
	}
	inst := ch.Instance()
	if inst != "" {
		node.Known.Observe(source.InstanceKey(ch.Brand, ch.LicenseKey, inst), ch.Version, now())
	}
	if node.L2 != nil {
		rctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		_ = node.L2.Invalidate(rctx, ch.Brand, ch.LicenseKey, inst, ch.Version)
	}
}

// signer loads the lease key (or makes an ephemeral one) and the published key set.
func (c Config) signer(log *slog.Logger) (*lease.Signer, error) {
	return lease.OpenLogged(EnvPrefix, lease.Settings{KeyFile: c.SigningKeyFile, Key: c.SigningKey,
		JWKSFile: c.JWKSFile, Issuer: c.LeaseIssuer, Duration: c.LeaseDuration}, log)
}

// readiness: the node can serve when some tier that holds the data answers (the replica,
// the primary, or Redis for what it holds). NATS is not required: the ceiling bounds
// staleness without it.
func readiness(replicaPool, primaryPool *pgxpool.Pool, l2 *redis.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		var errs []error
		for _, p := range []struct {
			name string
			pool *pgxpool.Pool
		}{{"replica", replicaPool}, {"primary", primaryPool}} {
			if p.pool == nil {
				continue
			}
			if err := p.pool.Ping(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
				continue
			}
			return nil
		}
		if l2 != nil {
			if err := l2.Ping(ctx); err == nil {
				return nil
			} else {
				errs = append(errs, fmt.Errorf("redis: %w", err))
			}
		}
		if len(errs) == 0 {
			return errors.New("no backend configured")
		}
		return errors.Join(errs...)
	}
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) { l.log.Warn(fmt.Sprintf(format, args...)) }
