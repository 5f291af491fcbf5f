// Package shield is the edge's flood shield: a Bloom filter of every license key
// (github.com/bits-and-blooms/bloom), loaded from Postgres at start, fed by the change
// stream, rebuilt periodically, in front of the tiers that cost a network call (Redis and
// Postgres). A well-formed key the filter rules out is answered "no such key" from memory,
// so a flood of random keys costs no read; a key it may hold goes on down the tiers.
//
// A negative from the filter follows invariant 7 (a key the writer acknowledged is never
// answered 404): the filter holds every key whose creation the edge has applied, and the
// relay's heartbeats certify that every change committed before their time has been
// applied. So a negative is answered only once a heartbeat certifying a time after the
// request's arrival (plus the allowed clock skew) has been applied: a key acknowledged
// before the request was committed before it, and is then in the filter. The request
// waits for that heartbeat (the relay sends one every 250 ms) up to a bound; if none comes
// (the stream is not current) the lookup goes down the tiers as without the shield, where
// the primary is asked within its budget and an exhausted budget is a 503, never a 404.
package shield

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/licensing/licensing/edge/source"
)

// Certifier is the change stream's certification: the latest time up to which every
// committed change has been applied, and a way to wait for a later one.
type Certifier interface {
	// WaitCertified waits until a heartbeat certifying at least t has been applied, or
	// ctx ends; it reports whether it was.
	WaitCertified(ctx context.Context, t time.Time) bool
	// Current reports whether the stream is subscribed and recently certified.
	Current() bool
	// Certified is the latest certification applied (zero: none yet).
	Certified() time.Time
}

// Loader streams every license key (a full scan of the keys table, on the replica).
type Loader func(ctx context.Context, add func(key string)) (int, error)

// Config tunes the shield.
type Config struct {
	// FalsePositive is the filter's target false-positive rate (default 0.001): the
	// share of unknown keys that still cost a read.
	FalsePositive float64
	// Skew is the clock skew allowed between the writers and the edge (default 100 ms).
	Skew time.Duration
	// MaxWait bounds how long a negative waits for its certifying heartbeat (default 750 ms).
	MaxWait time.Duration
	// MaxLag: when the latest certification is older than this at a request's arrival
	// (the relay is slow or stopped), a negative does not wait for one but goes down the
	// tiers at once (default 1 s).
	MaxLag time.Duration
	// Rebuild is how often the filter is rebuilt from Postgres (default 1 h); it is also
	// rebuilt when it holds more keys than it was sized for.
	Rebuild time.Duration
}

// Metrics the shield reports.
type Metrics struct {
	// Answered counts lookups answered "no such key" by the filter; Passed the ones it
	// let through (the key may exist, or no certification came in time).
	Answered, Passed func()
	// Loaded reports the filter's keys and its size in bytes after each (re)build.
	Loaded func(keys int, bytes int)
}

// Shield is a source.Source in front of next.
type Shield struct {
	next  source.Source
	cert  Certifier
	load  Loader
	cfg   Config
	log   *slog.Logger
	m     Metrics
	now   func() time.Time
	mu    sync.RWMutex
	f     *bloom.BloomFilter // nil until the first load completes
	sized uint               // keys the filter was sized for
	n     atomic.Int64       // keys added to the current filter
	// during a rebuild, keys from the stream go into the filter being built too
	building *bloom.BloomFilter
	buildMu  sync.Mutex
	// recent are the keys the stream created lately: each new filter gets them too, as
	// the replica it is loaded from may not have replayed them yet
	recent []recentKey
}

type recentKey struct {
	key string
	at  time.Time
}

// Recent bounds the keys remembered for the next build: those of the last RecentFor, at
// most RecentMax (a replica lagging more than that is far behind every other bound).
const (
	RecentFor = 10 * time.Minute
	RecentMax = 1 << 20
)

// New returns a shield over next; Run loads and maintains the filter. Until the first
// load completes every lookup goes through.
func New(next source.Source, cert Certifier, load Loader, cfg Config, now func() time.Time, log *slog.Logger, m Metrics) *Shield {
	if cfg.FalsePositive <= 0 || cfg.FalsePositive >= 1 {
		cfg.FalsePositive = 0.001
	}
	if cfg.Skew < 0 {
		cfg.Skew = 0
	} else if cfg.Skew == 0 {
		cfg.Skew = 100 * time.Millisecond
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 750 * time.Millisecond
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = time.Second
	}
	if cfg.Rebuild <= 0 {
		cfg.Rebuild = time.Hour
	}
	for _, f := range []*func(){&m.Answered, &m.Passed} {
		if *f == nil {
			*f = func() {}
		}
	}
	if m.Loaded == nil {
		m.Loaded = func(int, int) {}
	}
	return &Shield{next: next, cert: cert, load: load, cfg: cfg, now: now, log: log, m: m}
}

// Get implements source.Source.
func (s *Shield) Get(ctx context.Context, brand, key string) (source.Result, error) {
	if s.absent(ctx, key) {
		return source.Result{Found: false, Origin: s.now(), Tier: "filter"}, nil
	}
	return s.next.Get(ctx, brand, key)
}

// Instance implements source.Source.
func (s *Shield) Instance(ctx context.Context, brand, key, instance string) (source.InstanceResult, error) {
	if s.absent(ctx, key) {
		return source.InstanceResult{Found: false, Origin: s.now(), Tier: "filter"}, nil
	}
	return s.next.Instance(ctx, brand, key, instance)
}

// absent reports whether key is certainly unknown to the writer as of the request: the
// filter rules it out, and still does once the stream has certified every change
// committed before the request arrived.
func (s *Shield) absent(ctx context.Context, key string) bool {
	if s.mayHold(key) {
		s.m.Passed()
		return false
	}
	arrived := s.now()
	if arrived.Sub(s.cert.Certified()) > s.cfg.MaxLag {
		s.m.Passed() // the stream lags: waiting would only delay the read below
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.MaxWait)
	certified := s.cert.WaitCertified(wctx, arrived.Add(s.cfg.Skew))
	cancel()
	if !certified || s.mayHold(key) {
		s.m.Passed()
		return false
	}
	s.m.Answered()
	return true
}

// mayHold is true when the filter may hold key, or there is no filter yet.
func (s *Shield) mayHold(key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.f == nil || s.f.TestString(key)
}

// Add records a key the stream created (called in stream order, before the heartbeats
// that follow it are applied).
func (s *Shield) Add(key string) {
	s.mu.Lock()
	if s.f != nil {
		s.f.AddString(key)
		s.n.Add(1)
	}
	s.mu.Unlock()
	s.buildMu.Lock()
	if s.building != nil {
		s.building.AddString(key)
	}
	now := s.now()
	drop := 0
	for drop < len(s.recent) && (now.Sub(s.recent[drop].at) > RecentFor || len(s.recent)-drop >= RecentMax) {
		drop++
	}
	s.recent = append(s.recent[drop:], recentKey{key, now})
	s.buildMu.Unlock()
}

// Reset drops the filter (the stream lost changes: the filter may miss keys); lookups go
// through until the next build completes.
func (s *Shield) Reset() {
	s.mu.Lock()
	s.f = nil
	s.mu.Unlock()
}

// Ready reports whether the filter is in use.
func (s *Shield) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.f != nil
}

// Build loads a new filter from Postgres and puts it in use. Keys the stream creates
// meanwhile go into it as well.
func (s *Shield) Build(ctx context.Context, estimate int) error {
	size := uint(max(estimate*2, 1<<20))
	f := bloom.NewWithEstimates(size, s.cfg.FalsePositive)
	s.buildMu.Lock()
	s.building = f
	s.buildMu.Unlock()
	defer func() {
		s.buildMu.Lock()
		s.building = nil
		s.buildMu.Unlock()
	}()
	start := time.Now()
	var added int64
	n, err := s.load(ctx, func(key string) {
		s.buildMu.Lock()
		f.AddString(key)
		s.buildMu.Unlock()
		added++
	})
	if err != nil {
		return fmt.Errorf("key filter: %w", err)
	}
	s.buildMu.Lock()
	for _, r := range s.recent { // created lately: maybe not on the replica yet
		f.AddString(r.key)
	}
	s.buildMu.Unlock()
	s.mu.Lock()
	s.f, s.sized = f, size
	s.n.Store(added)
	s.mu.Unlock()
	bytes := int(f.Cap() / 8)
	s.m.Loaded(n, bytes)
	s.log.Info("key filter built", "keys", n, "bytes", bytes, "false_positive", s.cfg.FalsePositive, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// Run builds the filter (retrying every second until it succeeds), then rebuilds it every
// Rebuild, when it outgrows its size or after a Reset, until ctx ends. count estimates the
// number of keys.
func (s *Shield) Run(ctx context.Context, count func(context.Context) (int, error)) {
	for {
		// the stream must be live before the scan begins: a key created before it is then
		// in the scan, one created after it reaches Add (a key created while the stream
		// was down would be in neither; the stream's gap detection resets the filter)
		for !s.cert.Current() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		for {
			est, err := count(ctx)
			if err == nil {
				err = s.Build(ctx, est)
			}
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("key filter not built; lookups go through", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		rebuild := time.Now().Add(s.cfg.Rebuild)
		for s.Ready() && !s.outgrown() && time.Now().Before(rebuild) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// outgrown reports whether the filter holds more keys than it was sized for.
func (s *Shield) outgrown() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.f != nil && uint(s.n.Load()) > s.sized
}
