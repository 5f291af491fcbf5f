// Package replica is the last tier of the edge read path: it reads a license key's state,
// or one instance's activations on it, from a Postgres streaming replica (the reads of
// internal/statusread, which the writer's status check runs too) and falls back to the
// primary when the replica is unreachable or lags behind a version this edge already
// knows (so a lagging replica can never move an edge back in time). Reads are coalesced
// per entry, bounded in concurrency and rate-limited, so a flood of unknown keys reaches
// Postgres a bounded number of times. A circuit breaker per pool (internal/breaker) skips a
// replica or primary that just failed to answer, and lets one caller probe it per
// interval. It connects as license_edge, a role that can only SELECT the columns these
// reads name (migrations/00004_edge_role.sql); every read sets app.brand_id (row-level
// security, which for this role never admits the operator's 'all') in the same implicit
// transaction as its query.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/internal/breaker"
	"github.com/licensing/licensing/internal/pgfault"
	"github.com/licensing/licensing/internal/statusread"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Config tunes the tier.
type Config struct {
	// Timeout bounds one read (default 1s).
	Timeout time.Duration
	// MaxConcurrent bounds reads in flight to Postgres (default 32).
	MaxConcurrent int
	// Rate and Burst limit reads per second to Postgres (Rate 0: unlimited). A read over
	// the limit fails with source.ErrUnavailable instead of reaching Postgres.
	Rate  float64
	Burst int
	// Backoff is how long a pool that failed to answer is skipped before one caller probes
	// it again (default 1s).
	Backoff time.Duration
}

// ErrLimited is returned (wrapping source.ErrUnavailable) when the read limit is hit.
var ErrLimited = fmt.Errorf("backend read limit reached: %w", source.ErrUnavailable)

// Store reads snapshots from Postgres. Either pool may be nil.
type Store struct {
	replica, primary pool
	known            *version.Known
	cfg              Config
	now              func() time.Time
	log              *slog.Logger
	m                *metrics.Metrics

	sf     singleflight.Group
	sem    chan struct{}
	lim    *rate.Limiter
	brands sync.Map // slug → brand id (brands are never deleted)
	reads  atomic.Int64
}

var _ source.Source = (*Store)(nil)

// pool is one Postgres tier with its breaker.
type pool struct {
	name string
	*pgxpool.Pool
	br *breaker.Breaker
}

// Trips is how many reads in a row must fail before a pool is skipped: one read that
// times out on a loaded machine is no outage.
const Trips = 3

// errNoSlot: every read slot stayed busy for the read's timeout (the edge's own
// congestion, which says nothing about the tier).
var errNoSlot = errors.New("wait for a read slot")

func fault(err error) bool { return !errors.Is(err, errNoSlot) && pgfault.Unavailable(err) }

// Connect returns a lazily connecting pool for url ("" gives nil): the edge starts even
// when Postgres is down.
func Connect(url string, maxConns int32, connectTimeout, statementTimeout time.Duration) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, nil
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if maxConns > 0 {
		pc.MaxConns = maxConns
	}
	pc.ConnConfig.ConnectTimeout = connectTimeout
	pc.ConnConfig.RuntimeParams["application_name"] = "license-edge"
	// the snapshot query joins 16 activation partitions under row-level security: a
	// custom plan costs ~20 ms to make, the generic plan prunes partitions at run time
	pc.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	if statementTimeout > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(statementTimeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	return pool, nil
}

// New returns the tier.
func New(replica, primary *pgxpool.Pool, known *version.Known, cfg Config, now func() time.Time, log *slog.Logger, m *metrics.Metrics) *Store {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 32
	}
	lim := rate.NewLimiter(rate.Inf, 0)
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), max(cfg.Burst, 1))
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	// no more reads in flight than a pool has connections: beyond that a read would wait
	// for a connection inside its deadline, and a deadline met there says nothing about
	// Postgres (waiting for a read slot is the edge's own congestion, and is not a failure)
	for _, p := range []*pgxpool.Pool{replica, primary} {
		if p != nil {
			cfg.MaxConcurrent = min(cfg.MaxConcurrent, int(p.Config().MaxConns))
		}
	}
	return &Store{
		replica: pool{"replica", replica, breaker.New("replica", cfg.Backoff, Trips, fault, log, m.TierOpenFunc("replica"))},
		primary: pool{"primary", primary, breaker.New("primary", cfg.Backoff, Trips, fault, log, m.TierOpenFunc("primary"))},
		known:   known, cfg: cfg, now: now, log: log, m: m,
		sem: make(chan struct{}, cfg.MaxConcurrent), lim: lim}
}

// Reads is the number of reads sent to Postgres (replica and primary) so far.
func (s *Store) Reads() int64 { return s.reads.Load() }

// Get reads the key's state, coalescing concurrent calls for one key.
func (s *Store) Get(ctx context.Context, brand, key string) (source.Result, error) {
	ck := source.CacheKey(brand, key)
	return load(s, ctx, ck, func(ctx context.Context, p pool) (source.Result, error) {
		var r source.Result
		err := s.read(ctx, p, brand, statusread.StateQuery, []any{brand, key}, func(br pgx.BatchResults) error {
			rows, err := br.Query()
			if err != nil {
				return err
			}
			r.State, r.Found, err = statusread.ScanState(rows)
			return err
		})
		if err == nil && r.Found {
			s.brands.Store(brand, r.State.BrandID)
		}
		r.Origin = s.now()
		return r, err
	})
}

// Instance reads the instance's activations on the key, coalescing concurrent calls.
func (s *Store) Instance(ctx context.Context, brand, key, instance string) (source.InstanceResult, error) {
	ck := source.InstanceKey(brand, key, instance)
	return load(s, ctx, ck, func(ctx context.Context, p pool) (source.InstanceResult, error) {
		var r source.InstanceResult
		err := s.read(ctx, p, brand, statusread.InstanceQuery, []any{brand, key, instance}, func(br pgx.BatchResults) error {
			var err error
			r.Instance, r.Found, err = statusread.ScanInstance(br.QueryRow(), instance)
			return err
		})
		r.Origin = s.now()
		return r, err
	})
}

// load reads from the replica, or from the primary when the replica fails or lags behind
// the version this edge knows for ck.
func load[R source.Entry[R]](s *Store, ctx context.Context, ck string, read func(context.Context, pool) (R, error)) (R, error) {
	v, err, _ := s.sf.Do(ck, func() (any, error) {
		known := s.known.Get(ck)
		var errs []error
		for _, t := range []pool{s.replica, s.primary} {
			if t.Pool == nil {
				continue
			}
			r, err := read(ctx, t)
			if err == nil {
				result := "miss"
				if r.IsFound() {
					result = "hit"
				}
				s.m.Lookups.WithLabelValues(t.name, result).Inc()
			}
			switch {
			case err == nil && !r.IsFound() && t.name == "replica" && s.primary.Pool != nil:
				// "no such key" from a replica may be a key committed since (the writer
				// acknowledged it): only the primary may say so
				errs = append(errs, errors.New("replica: not found, confirming on the primary"))
			case err == nil && r.Version() >= known:
				s.known.Observe(ck, r.Version(), s.now())
				return r.Served(t.name, false), nil
			case err == nil:
				// behind an event (or a read) this edge already applied: ask the primary
				s.m.FillsRefused.WithLabelValues(t.name).Inc()
				errs = append(errs, fmt.Errorf("%s at version %d behind known %d", t.name, r.Version(), known))
			case errors.Is(err, ErrLimited):
				return nil, err
			default:
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			errs = append(errs, errors.New("no postgres configured"))
		}
		return nil, fmt.Errorf("read: %w: %w", source.ErrUnavailable, errors.Join(errs...))
	})
	if err != nil {
		var zero R
		return zero, err
	}
	return v.(R), nil
}

// read runs one query: set_config and the query are sent as one batch, which Postgres
// runs in one implicit transaction, so the brand scope holds for the query and nothing
// more (one round trip).
func (s *Store) read(ctx context.Context, p pool, brand, query string, args []any, scan func(pgx.BatchResults) error) error {
	if !s.lim.Allow() {
		s.m.RateLimited.WithLabelValues("status", "backend").Inc()
		return ErrLimited
	}
	wait, cancelWait := context.WithTimeout(ctx, s.cfg.Timeout)
	select {
	case s.sem <- struct{}{}:
		cancelWait()
	case <-wait.Done():
		cancelWait()
		return fmt.Errorf("%s: %w: %w", p.name, errNoSlot, wait.Err())
	}
	defer func() { <-s.sem }()
	done, ok := p.br.Allow()
	if !ok {
		return fmt.Errorf("%s: skipped after failing to answer (one caller probes it every %s)", p.name, s.cfg.Backoff)
	}
	// Postgres cancels a slow statement itself (statement_timeout = Timeout, set by
	// Connect) and the connection stays usable; the client deadline, a little later, only
	// fires when the server is unreachable. A client-side cancel closes the connection,
	// and under overload that would turn slow reads into a storm of reconnections.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout+500*time.Millisecond)
	defer cancel()

	s.reads.Add(1)
	b := &pgx.Batch{}
	if id, ok := s.brands.Load(brand); ok {
		b.Queue(`SELECT set_config('app.brand_id', $1, true)`, id.(string))
	} else {
		b.Queue(`SELECT set_config('app.brand_id', coalesce((SELECT id::text FROM brands WHERE slug = $1), ''), true)`, brand)
	}
	b.Queue(query, args...)
	br := p.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		err = scan(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	done(err)
	if err != nil {
		s.m.BackendErrors.WithLabelValues(p.name).Inc()
		if !fault(err) {
			// the tier answered with an error (the breaker logs tier failures once)
			s.log.Warn("postgres read failed", "tier", p.name, "err", err)
		}
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}
