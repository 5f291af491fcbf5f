// Package replica is the last tier of the edge read path: it reads a license key's
// snapshot from a Postgres streaming replica and falls back to the primary when the
// replica is unreachable or lags behind a version this edge already knows (so a lagging
// replica can never move an edge back in time). Reads are coalesced per key, bounded in
// concurrency and rate-limited, so a flood of unknown keys reaches Postgres a bounded
// number of times. It connects as license_app; every read sets app.brand_id (row-level
// security) in the same implicit transaction as its query.
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
	"github.com/licensing/licensing/shared/license"
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
}

// ErrLimited is returned (wrapping source.ErrUnavailable) when the read limit is hit.
var ErrLimited = fmt.Errorf("backend read limit reached: %w", source.ErrUnavailable)

// Store reads snapshots from Postgres. Either pool may be nil.
type Store struct {
	replica, primary *pgxpool.Pool
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
	return &Store{replica: replica, primary: primary, known: known, cfg: cfg, now: now, log: log, m: m,
		sem: make(chan struct{}, cfg.MaxConcurrent), lim: lim}
}

// Reads is the number of reads sent to Postgres (replica and primary) so far.
func (s *Store) Reads() int64 { return s.reads.Load() }

// Get reads the snapshot, coalescing concurrent calls for one key.
func (s *Store) Get(ctx context.Context, brand, key string) (source.Result, error) {
	ck := source.CacheKey(brand, key)
	v, err, _ := s.sf.Do(ck, func() (any, error) { return s.load(ctx, brand, key, ck) })
	if err != nil {
		return source.Result{}, err
	}
	return v.(source.Result), nil
}

func (s *Store) load(ctx context.Context, brand, key, ck string) (source.Result, error) {
	known := s.known.Get(ck)
	var errs []error
	if s.replica != nil {
		r, err := s.read(ctx, s.replica, "replica", brand, key)
		switch {
		case err == nil && r.Version() >= known:
			s.known.Observe(ck, r.Version(), s.now())
			return r, nil
		case err == nil:
			// the replica lags behind an event this edge already applied: ask the primary
			s.m.FillsRefused.WithLabelValues("replica").Inc()
		case errors.Is(err, ErrLimited):
			return source.Result{}, err
		default:
			errs = append(errs, err)
		}
	}
	if s.primary != nil {
		r, err := s.read(ctx, s.primary, "primary", brand, key)
		switch {
		case err == nil && r.Version() >= known:
			s.known.Observe(ck, r.Version(), s.now())
			return r, nil
		case err == nil:
			s.m.FillsRefused.WithLabelValues("primary").Inc()
			errs = append(errs, fmt.Errorf("primary at version %d behind known %d", r.Version(), known))
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no postgres configured"))
	}
	return source.Result{}, fmt.Errorf("read snapshot: %w: %w", source.ErrUnavailable, errors.Join(errs...))
}

const snapshotQuery = `SELECT k.id, k.brand_id, k.key, k.version, l.id, p.code, l.status, l.expires_at,
  l.seat_limit, l.seats_used,
  array(SELECT a.instance FROM activations a WHERE a.license_id = l.id AND a.brand_id = k.brand_id
        ORDER BY a.activated_at, a.id)
FROM license_keys k
JOIN brands b ON b.id = k.brand_id
LEFT JOIN licenses l ON l.license_key_id = k.id AND l.brand_id = k.brand_id
LEFT JOIN products p ON p.id = l.product_id
WHERE b.slug = $1 AND k.key = $2
ORDER BY l.id`

// read runs one snapshot read: set_config and the query are sent as one batch, which
// Postgres runs in one implicit transaction, so the brand scope holds for the query and
// nothing more (one round trip).
func (s *Store) read(ctx context.Context, pool *pgxpool.Pool, tier, brand, key string) (source.Result, error) {
	if !s.lim.Allow() {
		s.m.RateLimited.WithLabelValues("backend").Inc()
		return source.Result{}, ErrLimited
	}
	wait, cancelWait := context.WithTimeout(ctx, s.cfg.Timeout)
	select {
	case s.sem <- struct{}{}:
		cancelWait()
	case <-wait.Done():
		cancelWait()
		return source.Result{}, fmt.Errorf("%s: wait for a read slot: %w", tier, wait.Err())
	}
	defer func() { <-s.sem }()
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
	b.Queue(snapshotQuery, brand, key)
	res := source.Result{Tier: tier}
	br := pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		var rows pgx.Rows
		rows, err = br.Query()
		if err == nil {
			res, err = scan(rows, tier)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.m.BackendErrors.WithLabelValues(tier).Inc()
		s.log.Warn("postgres read failed", "tier", tier, "key", license.KeyDigest(key), "err", err)
		return source.Result{}, fmt.Errorf("%s: %w", tier, err)
	}
	res.Origin = s.now()
	if res.Found {
		res.Snapshot.Brand = brand
		s.brands.Store(brand, res.Snapshot.BrandID)
		s.m.Lookups.WithLabelValues(tier, "hit").Inc()
	} else {
		s.m.Lookups.WithLabelValues(tier, "miss").Inc()
	}
	return res, nil
}

func scan(rows pgx.Rows, tier string) (source.Result, error) {
	defer rows.Close()
	res := source.Result{Tier: tier}
	for rows.Next() {
		var (
			keyID, brandID, key string
			ver                 int64
			licID, product, st  *string
			expires             *time.Time
			seatLimit           *int32
			seatsUsed           *int32
			instances           []string
		)
		if err := rows.Scan(&keyID, &brandID, &key, &ver, &licID, &product, &st, &expires, &seatLimit, &seatsUsed, &instances); err != nil {
			return res, err
		}
		if !res.Found {
			res.Found = true
			res.Snapshot = license.Snapshot{BrandID: brandID, KeyID: keyID, Key: key, Version: ver,
				Licenses: []license.SnapshotLicense{}}
		}
		if licID == nil {
			continue
		}
		l := license.SnapshotLicense{Product: *product, Status: *st, Instances: instances}
		if expires != nil {
			t := expires.UTC()
			l.ExpiresAt = &t
		}
		if seatLimit != nil {
			n := int(*seatLimit)
			l.SeatLimit = &n
		}
		if seatsUsed != nil {
			l.SeatsUsed = int(*seatsUsed)
		}
		res.Snapshot.Licenses = append(res.Snapshot.Licenses, l)
	}
	return res, rows.Err()
}
