// Package redis is the regional tier of the edge read path (L2): snapshots shared by the
// edges of a region in Redis, in front of the Postgres tier. Every write is a Lua
// compare-and-set on the key's version, so Redis never replaces a newer version with an
// older one; a change event leaves a tombstone carrying its version, so a late fill from
// a lagging replica cannot land after it. Entries live for the revalidation ceiling.
// When Redis is unreachable the tier steps aside for a short while and the next tier
// answers.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/shared/license"
	goredis "github.com/redis/go-redis/v9"
)

// Config tunes the tier.
type Config struct {
	// TTL is how long a positive entry is fresh, counted from its Postgres read (the
	// revalidation ceiling).
	TTL time.Duration
	// NegativeTTL is how long an unknown key is remembered.
	NegativeTTL time.Duration
	// TombstoneTTL is how long a change's version is remembered (default 5m).
	TombstoneTTL time.Duration
	// Backoff is how long the tier is skipped after Redis failed (default 1s).
	Backoff time.Duration
}

// Store is the Redis tier.
type Store struct {
	rdb       goredis.UniversalClient
	next      source.Source
	known     *version.Known
	cfg       Config
	now       func() time.Time
	log       *slog.Logger
	m         *metrics.Metrics
	downUntil atomic.Int64
}

var _ source.Source = (*Store)(nil)

// Client returns a go-redis client with short timeouts: a slow Redis must not hold up a
// status check that the next tier can answer.
func Client(addr, password string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr: addr, Password: password,
		DialTimeout: 250 * time.Millisecond, ReadTimeout: 250 * time.Millisecond, WriteTimeout: 250 * time.Millisecond,
		PoolTimeout: 250 * time.Millisecond, MaxRetries: 1, PoolSize: 64,
		ContextTimeoutEnabled: true,
	})
}

// New returns the tier in front of next.
func New(rdb goredis.UniversalClient, next source.Source, known *version.Known, cfg Config, now func() time.Time, log *slog.Logger, m *metrics.Metrics) *Store {
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 5 * time.Second
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = 5 * time.Minute
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	return &Store{rdb: rdb, next: next, known: known, cfg: cfg, now: now, log: log, m: m}
}

func redisKey(ck string) string { return "license:snap:" + ck }

// fillScript stores a snapshot unless Redis holds a newer version. KEYS[1]; ARGV: version,
// origin (unix ms), data ("" for an unknown key), ttl ms. Equal versions may overwrite
// (same state, or the tombstone of exactly this version).
var fillScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'o', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// tombScript records that version ARGV[1] exists without its data, unless Redis already
// holds that version or a newer one. ARGV: version, ttl ms.
var tombScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

func (s *Store) up() bool { return s.now().UnixNano() >= s.downUntil.Load() }

func (s *Store) failed(op string, err error) {
	s.m.BackendErrors.WithLabelValues("l2").Inc()
	if s.downUntil.Load() < s.now().UnixNano() {
		s.log.Warn("redis unavailable, skipping it", "op", op, "err", err, "for", s.cfg.Backoff)
	}
	s.downUntil.Store(s.now().Add(s.cfg.Backoff).UnixNano())
}

// Get answers from Redis when it holds a fresh entry at least as new as the newest known
// version, else from the next tier, storing its answer.
func (s *Store) Get(ctx context.Context, brand, key string) (source.Result, error) {
	ck := source.CacheKey(brand, key)
	if s.up() {
		r, ok, err := s.lookup(ctx, ck)
		if err != nil {
			s.failed("get", err)
		} else if ok {
			s.m.Lookups.WithLabelValues("l2", "hit").Inc()
			if r.Found {
				s.known.Observe(ck, r.Version(), s.now())
			}
			return r, nil
		}
	}
	s.m.Lookups.WithLabelValues("l2", "miss").Inc()
	r, err := s.next.Get(ctx, brand, key)
	if err != nil {
		return r, err
	}
	s.store(ctx, ck, r)
	return r, nil
}

func (s *Store) lookup(ctx context.Context, ck string) (source.Result, bool, error) {
	vals, err := s.rdb.HMGet(ctx, redisKey(ck), "v", "o", "d", "t").Result()
	if err != nil {
		return source.Result{}, false, err
	}
	vs, _ := vals[0].(string)
	os, _ := vals[1].(string)
	d, _ := vals[2].(string)
	tomb, _ := vals[3].(string)
	if vs == "" || tomb == "1" {
		return source.Result{}, false, nil
	}
	v, err1 := strconv.ParseInt(vs, 10, 64)
	o, err2 := strconv.ParseInt(os, 10, 64)
	if err1 != nil || err2 != nil {
		return source.Result{}, false, nil
	}
	origin := time.UnixMilli(o)
	age := s.now().Sub(origin)
	if v < s.known.Get(ck) {
		s.m.FillsRefused.WithLabelValues("l2").Inc()
		return source.Result{}, false, nil
	}
	if v == 0 || d == "" {
		if age >= s.cfg.NegativeTTL {
			return source.Result{}, false, nil
		}
		return source.Result{Found: false, Origin: origin, Tier: "l2"}, true, nil
	}
	if age >= s.cfg.TTL {
		return source.Result{}, false, nil
	}
	var snap license.Snapshot
	if err := json.Unmarshal([]byte(d), &snap); err != nil || snap.Version != v {
		return source.Result{}, false, nil
	}
	return source.Result{Found: true, Snapshot: snap, Origin: origin, Tier: "l2"}, true, nil
}

// store writes r unless it is older than what this edge knows (the script guards against
// what other edges know).
func (s *Store) store(ctx context.Context, ck string, r source.Result) {
	if !s.up() {
		return
	}
	if r.Version() < s.known.Get(ck) {
		s.m.FillsRefused.WithLabelValues("l2").Inc()
		return
	}
	ttl := s.cfg.TTL - s.now().Sub(r.Origin)
	data := ""
	if r.Found {
		b, err := json.Marshal(r.Snapshot)
		if err != nil {
			return
		}
		data = string(b)
	} else {
		ttl = s.cfg.NegativeTTL - s.now().Sub(r.Origin)
	}
	if ttl < time.Millisecond {
		return
	}
	n, err := fillScript.Run(ctx, s.rdb, []string{redisKey(ck)}, r.Version(), r.Origin.UnixMilli(), data, ttl.Milliseconds()).Int()
	if err != nil {
		s.failed("fill", err)
		return
	}
	if n == 0 {
		s.m.FillsRefused.WithLabelValues("l2").Inc()
	}
}

// Invalidate records that version v of (brand, key) exists: older entries are replaced by
// a tombstone that refuses older fills.
func (s *Store) Invalidate(ctx context.Context, brand, key string, v int64) error {
	if !s.up() {
		return errors.New("redis skipped after a recent failure")
	}
	err := tombScript.Run(ctx, s.rdb, []string{redisKey(source.CacheKey(brand, key))}, v, s.cfg.TombstoneTTL.Milliseconds()).Err()
	if err != nil && !errors.Is(err, goredis.Nil) {
		s.failed("invalidate", err)
		return fmt.Errorf("redis invalidate: %w", err)
	}
	return nil
}

// Ping checks Redis.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }
