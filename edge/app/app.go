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
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/edge/cache"
	"github.com/licensing/licensing/edge/invalidate"
	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/redis"
	"github.com/licensing/licensing/edge/relay"
	"github.com/licensing/licensing/edge/replica"
	"github.com/licensing/licensing/edge/server"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/shared/envconfig"
	"github.com/licensing/licensing/shared/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/sync/errgroup"
)

// Config is the edge's configuration, read from EDGE_ variables by FromEnv. The fields
// after the env-backed ones are for tests and benchmarks.
type Config struct {
	Addr       string // EDGE_ADDR
	NodeID     string // EDGE_NODE_ID
	ReplicaURL string // EDGE_REPLICA_URL ("" or "off": no replica)
	PrimaryURL string // EDGE_PRIMARY_URL ("" or "off": no primary fallback)
	RedisAddr  string // EDGE_REDIS_ADDR ("" or "off": no L2)
	RedisPass  string // EDGE_REDIS_PASSWORD
	NATSURL    string // EDGE_NATS_URL ("" or "off": no invalidation events; the ceiling still holds)
	WriterURL  string // EDGE_WRITER_URL

	L1Bytes         int64         // EDGE_L1_BYTES, memory budget of L1; 0 disables L1
	Ceiling         time.Duration // EDGE_REVALIDATE_CEILING: hard revalidation ceiling (30s)
	NegativeTTL     time.Duration // EDGE_NEGATIVE_TTL: unknown keys are remembered this long (5s)
	StaleIfError    time.Duration // EDGE_STALE_IF_ERROR: stale answers served this long past freshness (10m)
	StatusMaxAge    time.Duration // EDGE_STATUS_MAX_AGE: Cache-Control max-age of status answers (60s)
	DBMaxConns      int           // EDGE_DB_MAX_CONNS per pool (16)
	DBTimeout       time.Duration // EDGE_DB_TIMEOUT per read (1s)
	BackendRate     int           // EDGE_BACKEND_RATE: Postgres reads per second, 0 unlimited (2000)
	BackendBurst    int           // EDGE_BACKEND_BURST (500)
	BackendConc     int           // EDGE_BACKEND_CONCURRENCY: reads in flight (32)
	ClientRate      int           // EDGE_CLIENT_RATE: public requests per second per client IP, 0 off (0)
	ClientBurst     int           // EDGE_CLIENT_BURST (100)
	WriterTimeout   time.Duration // EDGE_WRITER_TIMEOUT (10s)
	WriterMaxConns  int           // EDGE_WRITER_MAX_CONNS (256)
	VersionRetain   time.Duration // EDGE_VERSION_RETAIN: known versions of idle keys are forgotten after this (1h)
	ShutdownTimeout time.Duration // EDGE_SHUTDOWN_TIMEOUT (10s)
	LogLevel        string        // EDGE_LOG_LEVEL (info)

	// Now is the clock (time.Now when nil).
	Now func() time.Time `json:"-"`
	// Registry receives the metrics (a new registry when nil).
	Registry *prometheus.Registry `json:"-"`
	// Started, when set, receives the node's parts once wired (tests).
	Started func(*Node) `json:"-"`
}

// FromEnv reads the configuration.
func FromEnv() (Config, error) {
	r := envconfig.Reader{Prefix: "EDGE_"}
	host, _ := os.Hostname()
	c := Config{
		Addr:            r.String("ADDR", "127.0.0.1:8081"),
		NodeID:          r.String("NODE_ID", host),
		ReplicaURL:      r.Secret("REPLICA_URL", "postgres://license_app:license_app@127.0.0.1:15433/licensing?sslmode=disable"),
		PrimaryURL:      r.Secret("PRIMARY_URL", "postgres://license_app:license_app@127.0.0.1:15432/licensing?sslmode=disable"),
		RedisAddr:       r.String("REDIS_ADDR", "127.0.0.1:16379"),
		RedisPass:       r.Secret("REDIS_PASSWORD", ""),
		NATSURL:         r.String("NATS_URL", "nats://127.0.0.1:14222"),
		WriterURL:       r.String("WRITER_URL", "http://127.0.0.1:8080"),
		L1Bytes:         int64(r.Int("L1_BYTES", 256<<20)),
		Ceiling:         r.Duration("REVALIDATE_CEILING", 30*time.Second),
		NegativeTTL:     r.Duration("NEGATIVE_TTL", 5*time.Second),
		StaleIfError:    r.Duration("STALE_IF_ERROR", 10*time.Minute),
		StatusMaxAge:    r.Duration("STATUS_MAX_AGE", 60*time.Second),
		DBMaxConns:      r.Int("DB_MAX_CONNS", 16),
		DBTimeout:       r.Duration("DB_TIMEOUT", time.Second),
		BackendRate:     r.Int("BACKEND_RATE", 2000),
		BackendBurst:    r.Int("BACKEND_BURST", 500),
		BackendConc:     r.Int("BACKEND_CONCURRENCY", 32),
		ClientRate:      r.Int("CLIENT_RATE", 0),
		ClientBurst:     r.Int("CLIENT_BURST", 100),
		WriterTimeout:   r.Duration("WRITER_TIMEOUT", 10*time.Second),
		WriterMaxConns:  r.Int("WRITER_MAX_CONNS", 256),
		VersionRetain:   r.Duration("VERSION_RETAIN", time.Hour),
		ShutdownTimeout: r.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		LogLevel:        r.String("LOG_LEVEL", "info"),
	}
	return c, r.Err()
}

// LogValue masks secrets in the start-up log.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr), slog.String("node_id", c.NodeID),
		slog.String("replica_url", envconfig.MaskURL(c.ReplicaURL)), slog.String("primary_url", envconfig.MaskURL(c.PrimaryURL)),
		slog.String("redis_addr", c.RedisAddr), slog.String("redis_password", envconfig.Mask(c.RedisPass)),
		slog.String("nats_url", c.NATSURL), slog.String("writer_url", c.WriterURL),
		slog.Int64("l1_bytes", c.L1Bytes), slog.Duration("revalidate_ceiling", c.Ceiling),
		slog.Duration("negative_ttl", c.NegativeTTL), slog.Duration("stale_if_error", c.StaleIfError),
		slog.Duration("status_max_age", c.StatusMaxAge), slog.Int("backend_rate", c.BackendRate),
		slog.Int("backend_concurrency", c.BackendConc), slog.Int("client_rate", c.ClientRate),
	)
}

func enabled(s string) bool { return s != "" && s != "off" }

// Node exposes a running node's parts to tests.
type Node struct {
	Addr     string
	Known    *version.Known
	L1       *cache.Cache         // nil when disabled
	L2       *redis.Store         // nil when disabled
	L3       *replica.Store       // the Postgres tier
	Events   *invalidate.Consumer // nil when NATS is off
	Source   source.Source        // the top of the read path
	Registry *prometheus.Registry
}

// Run serves until ctx is cancelled. When ready is non-nil it receives the bound address
// once the server listens.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- string) error {
	log.Info("edge starting", "config", cfg)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := metrics.New(reg)
	known := version.New()
	node := &Node{Known: known, Registry: reg}

	var replicaPool, primaryPool *pgxpool.Pool
	var err error
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
	node.L3 = replica.New(replicaPool, primaryPool, known, replica.Config{
		Timeout: cfg.DBTimeout, MaxConcurrent: cfg.BackendConc, Rate: float64(cfg.BackendRate), Burst: cfg.BackendBurst,
	}, now, log, m)
	var src source.Source = node.L3
	if enabled(cfg.RedisAddr) {
		rdb := redis.Client(cfg.RedisAddr, cfg.RedisPass)
		defer rdb.Close()
		node.L2 = redis.New(rdb, src, known, redis.Config{TTL: cfg.Ceiling, NegativeTTL: cfg.NegativeTTL}, now, log, m)
		src = node.L2
	}
	if cfg.L1Bytes > 0 {
		node.L1, err = cache.New(src, known, cache.Config{MaxBytes: cfg.L1Bytes, Ceiling: cfg.Ceiling,
			NegativeTTL: cfg.NegativeTTL, StaleFor: cfg.StaleIfError, FetchTimeout: 2*cfg.DBTimeout + time.Second}, now, log, m)
		if err != nil {
			return err
		}
		defer node.L1.Close()
		src = node.L1
	}
	src = version.NewGuard(src, known, now, m)
	node.Source = src

	if enabled(cfg.NATSURL) {
		node.Events = invalidate.New(invalidate.Config{URL: cfg.NATSURL, Name: cfg.NodeID},
			func(ctx context.Context, ch event.Change) { apply(ctx, node, ch, now) },
			func() {
				if node.L1 != nil {
					node.L1.Clear()
				}
			}, now, log, m)
	}

	var rel server.Relayer
	if enabled(cfg.WriterURL) {
		c, err := relay.New(relay.Config{WriterURL: cfg.WriterURL, Timeout: cfg.WriterTimeout, MaxConns: cfg.WriterMaxConns})
		if err != nil {
			return err
		}
		rel = c
	}
	srv := server.New(src, rel, readiness(replicaPool, primaryPool, node.L2),
		fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})),
		server.Config{StatusMaxAge: cfg.StatusMaxAge, NotFoundMaxAge: cfg.NegativeTTL,
			ClientRate: float64(cfg.ClientRate), ClientBurst: cfg.ClientBurst}, now, log, m)
	hs := &fasthttp.Server{
		Handler:               srv.Handler,
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
// every tier treats older entries as misses) and Redis gets a tombstone for that version.
func apply(ctx context.Context, node *Node, ch event.Change, now func() time.Time) {
	if ch.Brand == "" || ch.LicenseKey == "" || ch.Version <= 0 {
		return
	}
	node.Known.Observe(source.CacheKey(ch.Brand, ch.LicenseKey), ch.Version, now())
	if node.L2 != nil {
		rctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		_ = node.L2.Invalidate(rctx, ch.Brand, ch.LicenseKey, ch.Version)
	}
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
