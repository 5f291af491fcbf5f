// Package redis is the regional tier of the edge read path (L2): key states and instance
// entries shared by the edges of a region in Redis, in front of the Postgres tier. Every
// write is a Lua compare-and-set on the entry's version, so Redis never replaces a newer
// version with an older one; a change event leaves a tombstone carrying its version (on
// the key's state and, for an activation change, on that instance's entry), so a late fill
// from a lagging replica cannot land after it. Entries live for the revalidation ceiling.
// Every Redis call is bounded by its own 250 ms deadline with no hidden retries, and a
// circuit breaker (internal/breaker) guards the tier: after a failure Redis is skipped for
// Config.Backoff, then exactly one caller probes it while the others go straight to the
// next tier, so a dead Redis costs one failed call per interval, not a stall per miss.
//
// Keys carry a format version (FormatVersion): "lic:v2:s:<brand>/<key>" for a key's state
// and "lic:v2:i:<brand>/<key>#<instance>" for an instance entry, so edges of two
// releases that encode entries differently never read each other's entries during a
// rolling deploy; the old format's keys simply expire.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/internal/breaker"
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
	// Backoff is how long the tier is skipped after Redis failed before one caller probes
	// it again (default 1s).
	Backoff time.Duration
	// Stream says whether negative entries may be trusted (default: never).
	Stream source.Stream
}

// Store is the Redis tier.
type Store struct {
	rdb   goredis.UniversalClient
	next  source.Source
	known *version.Known
	cfg   Config
	now   func() time.Time
	log   *slog.Logger
	m     *metrics.Metrics
	br    *breaker.Breaker
}

var _ source.Source = (*Store)(nil)

// CallTimeout bounds every Redis call (dial, pool wait, read, write).
const CallTimeout = 250 * time.Millisecond

// Client returns a go-redis client whose every call is bounded by CallTimeout with no
// hidden retries (go-redis otherwise retries a command and redials a refused connection
// several times): a slow or dead Redis must not hold up a status check that the next tier
// can answer, and the breaker decides when to try again.
func Client(addr, password string) *goredis.Client { return goredis.NewClient(Options(addr, password)) }

// Options are Client's options.
func Options(addr, password string) *goredis.Options {
	return &goredis.Options{
		Addr: addr, Password: password,
		DialTimeout: CallTimeout, ReadTimeout: CallTimeout, WriteTimeout: CallTimeout,
		PoolTimeout: CallTimeout, MaxRetries: -1, DialerRetries: 1, PoolSize: 64,
		ContextTimeoutEnabled: true,
	}
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
	if cfg.Stream == nil {
		cfg.Stream = source.NoStream{}
	}
	return &Store{rdb: rdb, next: next, known: known, cfg: cfg, now: now, log: log, m: m,
		br: breaker.New("l2", cfg.Backoff, 1, nil, log, m.TierOpenFunc("l2"))}
}

// FormatVersion is the version of the entry encoding, part of every key.
const FormatVersion = 2

var (
	statePrefix    = fmt.Sprintf("lic:v%d:s:", FormatVersion)
	instancePrefix = fmt.Sprintf("lic:v%d:i:", FormatVersion)
)

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

// tombScript records, for each of KEYS, that version ARGV[1] exists without its data,
// unless Redis already holds that version or a newer one. ARGV: version, ttl ms.
var tombScript = goredis.NewScript(`
local n = 0
for _, k in ipairs(KEYS) do
  local cur = redis.call('HGET', k, 'v')
  if not (cur and tonumber(cur) >= tonumber(ARGV[1])) then
    redis.call('DEL', k)
    redis.call('HSET', k, 'v', ARGV[1], 't', '1')
    redis.call('PEXPIRE', k, ARGV[2])
    n = n + 1
  end
end
return n
`)

// call runs one Redis call through the breaker; it reports false without calling when the
// tier is being skipped. goredis.Nil (no such key) is an answer, not a failure.
func (s *Store) call(op string, f func() error) (ran bool, err error) {
	done, ok := s.br.Allow()
	if !ok {
		return false, nil
	}
	err = f()
	if err != nil && !errors.Is(err, goredis.Nil) {
		s.m.BackendErrors.WithLabelValues("l2").Inc()
		s.log.Debug("redis call failed", "op", op, "err", err)
		done(err)
		return true, err
	}
	done(nil)
	return true, nil
}

// Get answers from Redis when it holds a fresh state at least as new as the newest known
// version, else from the next tier, storing its answer.
func (s *Store) Get(ctx context.Context, brand, key string) (source.Result, error) {
	ck := source.CacheKey(brand, key)
	return get(s, ctx, ck, statePrefix+ck, func(ctx context.Context) (source.Result, error) { return s.next.Get(ctx, brand, key) }, stateCodec)
}

// Instance is Get for an instance entry.
func (s *Store) Instance(ctx context.Context, brand, key, instance string) (source.InstanceResult, error) {
	ck := source.InstanceKey(brand, key, instance)
	return get(s, ctx, ck, instancePrefix+ck,
		func(ctx context.Context) (source.InstanceResult, error) {
			return s.next.Instance(ctx, brand, key, instance)
		},
		instanceCodec(instance))
}

// codec stores and reads one kind of entry.
type codec[R any] struct {
	encode   func(R) ([]byte, error)
	decode   func(v int64, origin time.Time, data string) (R, bool)
	negative func(origin time.Time) R
}

var stateCodec = codec[source.Result]{
	encode: func(r source.Result) ([]byte, error) { return json.Marshal(r.State) },
	decode: func(v int64, origin time.Time, data string) (source.Result, bool) {
		var st license.State
		if err := json.Unmarshal([]byte(data), &st); err != nil || st.Version != v {
			return source.Result{}, false
		}
		return source.Result{Found: true, State: st, Origin: origin}, true
	},
	negative: func(origin time.Time) source.Result { return source.Result{Origin: origin} },
}

func instanceCodec(instance string) codec[source.InstanceResult] {
	return codec[source.InstanceResult]{
		encode: func(r source.InstanceResult) ([]byte, error) { return json.Marshal(r.Instance) },
		decode: func(v int64, origin time.Time, data string) (source.InstanceResult, bool) {
			var in license.Instance
			if err := json.Unmarshal([]byte(data), &in); err != nil || in.AsOf != v || in.Instance != instance {
				return source.InstanceResult{}, false
			}
			return source.InstanceResult{Found: true, Instance: in, Origin: origin}, true
		},
		negative: func(origin time.Time) source.InstanceResult { return source.InstanceResult{Origin: origin} },
	}
}

// get is Get and Instance: rk is the Redis key.
func get[R source.Entry[R]](s *Store, ctx context.Context, ck, rk string, next func(context.Context) (R, error), c codec[R]) (R, error) {
	var r R
	var hit bool
	if ran, err := s.call("get", func() (err error) { r, hit, err = lookup(s, ctx, ck, rk, c); return err }); ran && err == nil {
		if hit {
			s.m.Lookups.WithLabelValues("l2", "hit").Inc()
			if r.IsFound() {
				s.known.Observe(ck, r.Version(), s.now())
			}
			return r.Served("l2", false), nil
		}
	}
	s.m.Lookups.WithLabelValues("l2", "miss").Inc()
	want := s.known.Get(ck)
	r, err := next(ctx)
	if err != nil {
		return r, err
	}
	store(s, ctx, ck, rk, r, c, want)
	return r, nil
}

func lookup[R source.Entry[R]](s *Store, ctx context.Context, ck, rk string, c codec[R]) (R, bool, error) {
	var zero R
	vals, err := s.rdb.HMGet(ctx, rk, "v", "o", "d", "t").Result()
	if err != nil {
		return zero, false, err
	}
	vs, _ := vals[0].(string)
	os, _ := vals[1].(string)
	d, _ := vals[2].(string)
	tomb, _ := vals[3].(string)
	if vs == "" || tomb == "1" {
		return zero, false, nil
	}
	v, err1 := strconv.ParseInt(vs, 10, 64)
	o, err2 := strconv.ParseInt(os, 10, 64)
	if err1 != nil || err2 != nil {
		return zero, false, nil
	}
	origin := time.UnixMilli(o)
	age := s.now().Sub(origin)
	if v < s.known.Get(ck) {
		s.m.FillsRefused.WithLabelValues("l2").Inc()
		return zero, false, nil
	}
	if v == 0 || d == "" {
		if age >= s.cfg.NegativeTTL || !s.cfg.Stream.Current() {
			return zero, false, nil
		}
		return c.negative(origin), true, nil
	}
	if age >= s.cfg.TTL {
		return zero, false, nil
	}
	r, ok := c.decode(v, origin, d)
	return r, ok, nil
}

// store writes r, read after this edge knew version want, unless it is older than that
// (the script guards against newer versions in Redis, which other edges wrote).
func store[R source.Entry[R]](s *Store, ctx context.Context, ck, rk string, r R, c codec[R], want int64) {
	if s.br.Open() {
		return
	}
	if r.Version() < want {
		s.m.FillsRefused.WithLabelValues("l2").Inc()
		return
	}
	ttl := s.cfg.TTL - s.now().Sub(r.ReadAt())
	data := ""
	if r.IsFound() {
		b, err := c.encode(r)
		if err != nil {
			return
		}
		data = string(b)
	} else {
		if !s.cfg.Stream.Current() {
			return // a 404 given while the stream is not current is not remembered
		}
		ttl = s.cfg.NegativeTTL - s.now().Sub(r.ReadAt())
	}
	if ttl < time.Millisecond {
		return
	}
	var n int
	if ran, err := s.call("fill", func() (err error) {
		n, err = fillScript.Run(ctx, s.rdb, []string{rk}, r.Version(), r.ReadAt().UnixMilli(), data, ttl.Milliseconds()).Int()
		return err
	}); !ran || err != nil {
		return
	}
	if n == 0 {
		s.m.FillsRefused.WithLabelValues("l2").Inc()
	}
}

// Invalidate records that version v of (brand, key) exists, and, when instance is set,
// that the change touched that instance: older entries are replaced by tombstones that
// refuse older fills.
func (s *Store) Invalidate(ctx context.Context, brand, key, instance string, v int64) error {
	keys := []string{statePrefix + source.CacheKey(brand, key)}
	if instance != "" {
		keys = append(keys, instancePrefix+source.InstanceKey(brand, key, instance))
	}
	ran, err := s.call("invalidate", func() error {
		return tombScript.Run(ctx, s.rdb, keys, v, s.cfg.TombstoneTTL.Milliseconds()).Err()
	})
	if !ran {
		return errors.New("redis skipped after a recent failure")
	}
	if err != nil {
		return fmt.Errorf("redis invalidate: %w", err)
	}
	return nil
}

// Ping checks Redis.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }
