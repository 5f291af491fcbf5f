// Package ratelimit is the limiter both binaries put in front of their routes (API.md,
// "Rate limits"): one generic cell rate algorithm budget per (policy, key), shared by every
// instance of a tier through Redis (github.com/go-redis/redis_rate), with an in-process
// fallback of the same numbers (golang.org/x/time/rate buckets in a bounded LRU whose
// entries expire once they would be full again) when Redis is unreachable.
//
// The limiter never answers an error and never waits longer than its Redis timeout: a
// failing Redis opens a circuit breaker (internal/breaker) and every decision is taken
// locally until a probe succeeds. Every decision made with Redis is mirrored into the
// local bucket, so a fallback starts from what this instance has recently let through,
// and a key this instance alone has already spent is refused without asking Redis.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/licensing/licensing/internal/breaker"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Policy is one row of API.md's table: Rate events per Period, Burst at once.
type Policy struct {
	Name   string // the RateLimit header's policy name and the metrics' reason label
	Rate   int
	Period time.Duration
	Burst  int
}

// API.md's rows with their default numbers; the names appear in the RateLimit headers and
// as the metrics' reason label.
var (
	// Brand: requests per brand API key (a brand's own limit replaces the numbers).
	Brand = Policy{Name: "brand", Rate: 50, Period: time.Second, Burst: 100}
	// Status: public status checks per client IP.
	Status = Policy{Name: "status", Rate: 20, Period: time.Second, Burst: 100}
	// PublicWrite: public activations and deactivations per client IP.
	PublicWrite = Policy{Name: "public_write", Rate: 2, Period: time.Second, Burst: 20}
	// NotFound: public 404 answers per client IP, looked at before every public request.
	NotFound = Policy{Name: "not_found", Rate: 30, Period: 10 * time.Minute, Burst: 30}
	// Unauthorized: 401 answers per client IP, looked at before every request with a
	// credential.
	Unauthorized = Policy{Name: "unauthorized", Rate: 20, Period: time.Minute, Burst: 20}
)

// Override replaces *p's numbers with s ("<rate>/<period>:<burst>"; "": keep them).
func Override(p *Policy, s string) error {
	if s == "" {
		return nil
	}
	q, err := ParsePolicy(p.Name, s)
	if err == nil {
		*p = q
	}
	return err
}

// ParsePolicy reads "<rate>/<period>:<burst>", e.g. "50/1s:100" or "30/10m:30".
func ParsePolicy(name, s string) (Policy, error) {
	p := Policy{Name: name}
	bad := fmt.Errorf("limit %s %q: want <rate>/<period>:<burst>, e.g. 50/1s:100", name, s)
	r, rest, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return p, bad
	}
	per, burst, ok := strings.Cut(rest, ":")
	if !ok {
		return p, bad
	}
	var err error
	if p.Rate, err = strconv.Atoi(r); err != nil || p.Rate < 1 {
		return p, bad
	}
	if p.Period, err = time.ParseDuration(per); err != nil || p.Period <= 0 {
		return p, bad
	}
	if p.Burst, err = strconv.Atoi(burst); err != nil || p.Burst < 1 {
		return p, bad
	}
	return p, nil
}

func (p Policy) String() string { return fmt.Sprintf("%d/%s:%d", p.Rate, p.Period, p.Burst) }

// perSecond is the sustained rate in events per second.
func (p Policy) perSecond() float64 { return float64(p.Rate) / p.Period.Seconds() }

// Window is the time, in whole seconds (at least 1), an empty budget takes to refill.
func (p Policy) Window() int {
	return max(1, int(math.Ceil(float64(p.Burst)/p.perSecond())))
}

// PolicyHeader is the RateLimit-Policy field of draft-ietf-httpapi-ratelimit-headers:
// `"<name>";q=<burst>;w=<window seconds>`.
func (p Policy) PolicyHeader() string {
	return strconv.Quote(p.Name) + ";q=" + strconv.Itoa(p.Burst) + ";w=" + strconv.Itoa(p.Window())
}

// Decision is the answer for one request.
type Decision struct {
	Policy  Policy
	Allowed bool
	// Remaining is what is left of the budget after this request.
	Remaining int
	// RetryAfter is when the next request would be allowed (0 when allowed).
	RetryAfter time.Duration
	// ResetAfter is when the budget will be full again.
	ResetAfter time.Duration
	// Local: taken without Redis (unreachable, or this instance alone had spent it).
	Local bool
}

// RetryAfterSeconds is the Retry-After value: whole seconds, at least 1.
func (d Decision) RetryAfterSeconds() int { return max(1, int(math.Ceil(d.RetryAfter.Seconds()))) }

// Header is the RateLimit field: `"<name>";r=<remaining>;t=<seconds to reset>`.
func (d Decision) Header() string {
	return strconv.Quote(d.Policy.Name) + ";r=" + strconv.Itoa(max(d.Remaining, 0)) +
		";t=" + strconv.Itoa(int(math.Ceil(d.ResetAfter.Seconds())))
}

// Config tunes a Limiter.
type Config struct {
	// Timeout bounds one Redis call (default 100 ms); then the decision is local.
	Timeout time.Duration
	// ProbeEvery: after Redis failed this many times in a row (Trips, default 3) it is
	// skipped for ProbeEvery (default 1 s), then one call probes it.
	ProbeEvery time.Duration
	Trips      int
	// LocalKeys bounds the in-process buckets (default 100 000; least recently used go
	// first, and each expires once it would be full again).
	LocalKeys int
	// Prefix is prepended to every budget's key in Redis (tests keep runs apart with it).
	Prefix string
	// MaxRefill is the longest refill time of any policy used (the local entries' life;
	// default 10 minutes).
	MaxRefill time.Duration
}

// Limiter takes decisions. Its zero value is not usable; a nil *Limiter allows everything.
type Limiter struct {
	rl    *redis_rate.Limiter // nil: local only
	br    *breaker.Breaker
	cfg   Config
	log   *slog.Logger
	local *expirable.LRU[string, *bucket]
	now   func() time.Time
}

type bucket struct {
	mu  sync.Mutex
	p   Policy
	lim *rate.Limiter
}

// New returns a limiter sharing its budgets through rdb (nil: in-process only), which must
// honour context deadlines (redis.Options.ContextTimeoutEnabled). onOpen is
// told when Redis starts (true) and stops (false) being skipped.
func New(rdb redis.UniversalClient, cfg Config, log *slog.Logger, onOpen func(bool)) *Limiter {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 100 * time.Millisecond
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = time.Second
	}
	if cfg.Trips <= 0 {
		cfg.Trips = 3
	}
	if cfg.LocalKeys <= 0 {
		cfg.LocalKeys = 100_000
	}
	if cfg.MaxRefill <= 0 {
		cfg.MaxRefill = 10 * time.Minute
	}
	l := &Limiter{cfg: cfg, log: log, now: time.Now,
		local: expirable.NewLRU[string, *bucket](cfg.LocalKeys, nil, cfg.MaxRefill)}
	if rdb != nil {
		l.rl = redis_rate.NewLimiter(rdb)
		l.br = breaker.New("rate-limit redis", cfg.ProbeEvery, cfg.Trips, nil, log, onOpen)
	}
	return l
}

// Take charges n events to key's budget under p. n = 0 only looks: the answer is allowed
// while at least one event remains (a zero-cost GCRA call reports allowed even on a spent
// budget, so the remaining count decides).
func (l *Limiter) Take(ctx context.Context, p Policy, key string, n int) Decision {
	if l == nil {
		return Decision{Policy: p, Allowed: true, Remaining: p.Burst}
	}
	k := l.cfg.Prefix + p.Name + ":" + key
	b := l.bucket(k, p)
	need := max(n, 1)
	// this instance alone has spent the budget: refuse without asking Redis
	if d := b.look(p, l.now(), need); !d.Allowed {
		return d
	}
	if l.rl != nil {
		if done, ok := l.br.Allow(); ok {
			cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
			res, err := l.rl.AllowN(cctx, k, redis_rate.Limit{Rate: p.Rate, Period: p.Period, Burst: p.Burst}, n)
			cancel()
			if err == nil || ctx.Err() != nil {
				done(nil) // the caller giving up says nothing about Redis
			} else {
				done(err)
			}
			if err == nil {
				d := Decision{Policy: p, Remaining: res.Remaining, RetryAfter: max(res.RetryAfter, 0), ResetAfter: res.ResetAfter}
				if n == 0 {
					d.Allowed = res.Remaining >= 1
					if !d.Allowed {
						d.RetryAfter = untilOne(p, res.ResetAfter)
					}
				} else {
					d.Allowed = res.Allowed >= n
				}
				if d.Allowed && n > 0 {
					b.take(l.now(), n) // mirrored: a fallback starts warm
					l.local.Add(k, b)  // and the entry lives on
				}
				return d
			}
			if !errors.Is(err, context.Canceled) {
				l.log.Debug("rate limit redis call failed; deciding locally", "err", err)
			}
		}
	}
	d := b.decide(p, l.now(), n)
	if d.Allowed && n > 0 {
		l.local.Add(k, b)
	}
	return d
}

// bucket returns key's local bucket, made or retuned for p.
func (l *Limiter) bucket(k string, p Policy) *bucket {
	b, ok := l.local.Get(k)
	if !ok {
		b = &bucket{p: p, lim: rate.NewLimiter(rate.Limit(p.perSecond()), p.Burst)}
		l.local.Add(k, b)
		return b
	}
	b.mu.Lock()
	if b.p != p { // a brand's own limit changed
		now := l.now()
		b.lim.SetLimitAt(now, rate.Limit(p.perSecond()))
		b.lim.SetBurstAt(now, p.Burst)
		b.p = p
	}
	b.mu.Unlock()
	return b
}

// look reports whether need events fit in the local bucket, charging nothing.
func (b *bucket) look(p Policy, now time.Time, need int) Decision {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.at(p, now, need, b.lim.TokensAt(now))
}

func (b *bucket) at(p Policy, now time.Time, need int, tokens float64) Decision {
	d := Decision{Policy: p, Local: true, Remaining: int(math.Floor(tokens)),
		ResetAfter: secs((float64(p.Burst) - tokens) / p.perSecond())}
	d.Allowed = tokens >= float64(need)
	if !d.Allowed {
		d.RetryAfter = secs((float64(need) - tokens) / p.perSecond())
	}
	return d
}

// decide charges n (n = 0: looks) locally.
func (b *bucket) decide(p Policy, now time.Time, n int) Decision {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.at(p, now, max(n, 1), b.lim.TokensAt(now))
	if d.Allowed && n > 0 {
		b.lim.AllowN(now, n)
		d.Remaining -= n
		d.ResetAfter += secs(float64(n) / p.perSecond())
	}
	return d
}

func (b *bucket) take(now time.Time, n int) {
	b.mu.Lock()
	b.lim.AllowN(now, n) // best effort: the shared budget decided
	b.mu.Unlock()
}

// untilOne is, for a budget that is full again after reset, when one event fits.
func untilOne(p Policy, reset time.Duration) time.Duration {
	full := secs(float64(p.Burst) / p.perSecond())
	return max(reset-full+secs(1/p.perSecond()), 0)
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// RedisClient is a client for the limiter: short timeouts that honour the context, no
// retries (a decision falls back to the local bucket instead of waiting).
func RedisClient(addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, Password: password,
		DialTimeout: 250 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond,
		PoolTimeout: 100 * time.Millisecond, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true, PoolSize: 32,
	})
}

// RedisSkipped reports whether decisions are currently local because Redis failed.
func (l *Limiter) RedisSkipped() bool { return l != nil && l.br != nil && l.br.Open() }
