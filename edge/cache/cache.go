// Package cache is the in-process tier of the edge read path (L1): a ristretto cache with
// a memory budget in bytes, in front of the Redis tier. An entry is served while it is
// younger than the revalidation ceiling (counted from its Postgres read) and at least as
// new as the newest version this edge knows for the key; otherwise the next tier is asked,
// once per key however many requests are waiting (singleflight). When every tier below
// fails, the last known answer is served marked stale for a configurable window
// (stale-if-error).
//
// ristretto's Set is asynchronous and may drop an item: nothing here relies on a Set
// having landed (a dropped Set only costs a later miss), and the version check on every
// read, not the Set, is what keeps older versions from being served.
package cache

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/edge/version"
	"github.com/licensing/licensing/shared/license"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Config tunes the tier.
type Config struct {
	// MaxBytes is the memory budget (approximate size of the cached snapshots).
	MaxBytes int64
	// Ceiling is how long an entry is served without revalidation, from its Postgres read.
	Ceiling time.Duration
	// NegativeTTL is how long an unknown key is answered from memory.
	NegativeTTL time.Duration
	// StaleFor is how long after it stopped being fresh an entry may still be served,
	// marked stale, when every tier below fails.
	StaleFor time.Duration
	// FetchTimeout bounds a fill from the next tier (default 2s); the fill is shared by
	// every request waiting for that key, so it does not use any one request's context.
	FetchTimeout time.Duration
	// Stream says whether negative entries may be trusted (default: never).
	Stream source.Stream
}

// Cache is the L1 tier.
type Cache struct {
	c     *ristretto.Cache[string, any]
	next  source.Source
	known *version.Known
	cfg   Config
	now   func() time.Time
	log   *slog.Logger
	m     *metrics.Metrics
	sf    singleflight.Group

	hits, misses prometheus.Counter
}

var _ source.Source = (*Cache)(nil)

// New returns the tier in front of next.
func New(next source.Source, known *version.Known, cfg Config, now func() time.Time, log *slog.Logger, m *metrics.Metrics) (*Cache, error) {
	if cfg.MaxBytes <= 0 {
		return nil, fmt.Errorf("cache: MaxBytes must be positive")
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 2 * time.Second
	}
	if cfg.Stream == nil {
		cfg.Stream = source.NoStream{}
	}
	// ~ one counter per 50 bytes of budget: 10x the number of entries we expect to hold
	// (an entry is a few hundred bytes), as ristretto recommends.
	counters := max(cfg.MaxBytes/50, 1000)
	c, err := ristretto.NewCache(&ristretto.Config[string, any]{
		NumCounters: counters,
		MaxCost:     cfg.MaxBytes,
		BufferItems: 64,
		// the cost we pass is the entry's size; don't add ristretto's own bookkeeping to it
		IgnoreInternalCost: true,
		// never let an older version overwrite a newer one that already landed
		ShouldUpdate: func(cur, prev any) bool { return entryVersion(cur) >= entryVersion(prev) },
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &Cache{c: c, next: next, known: known, cfg: cfg, now: now, log: log, m: m,
		hits: m.Lookups.WithLabelValues("l1", "hit"), misses: m.Lookups.WithLabelValues("l1", "miss")}, nil
}

func entryVersion(v any) int64 {
	switch e := v.(type) {
	case source.Result:
		return e.Version()
	case source.InstanceResult:
		return e.Version()
	}
	return 0
}

// Close stops the cache's goroutines.
func (c *Cache) Close() { c.c.Close() }

// Wait blocks until pending Sets are applied (tests).
func (c *Cache) Wait() { c.c.Wait() }

// Clear drops every entry: the edge can no longer trust what it holds.
func (c *Cache) Clear() { c.c.Clear() }

// Forget drops one entry (a key's state or one instance entry).
func (c *Cache) Forget(ck string) { c.c.Del(ck) }

func (c *Cache) freshFor(found bool) time.Duration {
	if found {
		return c.cfg.Ceiling
	}
	return c.cfg.NegativeTTL
}

// Get serves a fresh state entry, else fills from the next tier, else serves stale.
func (c *Cache) Get(ctx context.Context, brand, key string) (source.Result, error) {
	return get(c, ctx, source.CacheKey(brand, key), func(ctx context.Context) (source.Result, error) {
		return c.next.Get(ctx, brand, key)
	})
}

// Instance is Get for an instance entry.
func (c *Cache) Instance(ctx context.Context, brand, key, instance string) (source.InstanceResult, error) {
	return get(c, ctx, source.InstanceKey(brand, key, instance), func(ctx context.Context) (source.InstanceResult, error) {
		return c.next.Instance(ctx, brand, key, instance)
	})
}

func get[R source.Entry[R]](c *Cache, ctx context.Context, ck string, fetch func(context.Context) (R, error)) (R, error) {
	v, _ := c.c.Get(ck)
	e, ok := v.(R)
	now := c.now()
	// a negative entry only while the change stream is current: else a key created since
	// (and acknowledged by the writer) could be answered 404
	if ok && e.Version() >= c.known.Get(ck) && now.Sub(e.ReadAt()) < c.freshFor(e.IsFound()) && (e.IsFound() || c.cfg.Stream.Current()) {
		c.hits.Inc()
		return e.Served("l1", false), nil
	}
	c.misses.Inc()
	got, err, _ := c.sf.Do(ck, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FetchTimeout)
		defer cancel()
		want := c.known.Get(ck)
		r, err := fetch(fctx)
		if err != nil {
			return r, err
		}
		storeFill(c, ck, r, want)
		return r, nil
	})
	if err == nil {
		return got.(R), nil
	}
	if ok && e.IsFound() && c.now().Sub(e.ReadAt()) < c.freshFor(e.IsFound())+c.cfg.StaleFor {
		c.m.StaleServed.Inc()
		return e.Served("l1", true), nil
	}
	var zero R
	return zero, err
}

// storeFill caches a fill read after the edge knew version want: an answer at least as
// new as what was known when the read began (a version arriving during the read does not
// refuse it, or a key changing faster than a read could never be cached).
func storeFill[R source.Entry[R]](c *Cache, ck string, r R, want int64) {
	if r.IsFound() {
		c.known.Observe(ck, r.Version(), c.now())
	}
	if r.Version() < want {
		c.m.FillsRefused.WithLabelValues("l1").Inc()
		return
	}
	if !r.IsFound() && !c.cfg.Stream.Current() {
		return // a 404 given while the stream is not current is not remembered
	}
	store(c, ck, r)
}

// store sets an entry; ShouldUpdate keeps a newer one that already landed.
func store[R source.Entry[R]](c *Cache, ck string, r R) {
	ttl := c.freshFor(r.IsFound()) + c.cfg.StaleFor - c.now().Sub(r.ReadAt())
	if ttl <= 0 {
		return
	}
	r = r.Served("", false)
	c.c.SetWithTTL(ck, r, cost(ck, r), ttl)
}

// Advance moves a key's cached state to the version a change event describes, when the
// cache holds exactly the version before it: the key keeps being answered from memory
// instead of being read again from the tiers below after every change (a license
// activated many times a second stays cheap to check). The entry keeps its origin, so
// the revalidation ceiling still counts from its last Postgres read. It reports whether
// it applied the change.
func (c *Cache) Advance(brand, key string, ch license.Changed) bool {
	ck := source.CacheKey(brand, key)
	v, _ := c.c.Get(ck)
	e, ok := v.(source.Result)
	if !ok || !e.Found {
		return false
	}
	next, ok := e.State.Next(ch)
	if !ok {
		return false
	}
	e.State = next
	store(c, ck, e)
	c.m.Advanced.Inc()
	return true
}

// cost approximates the memory an entry holds: a constant plus its strings. A key's state
// holds its licenses (a handful), an instance entry the licenses it is activated on; no
// entry grows with the number of activations.
func cost(ck string, v any) int64 {
	n := 256 + 2*len(ck)
	switch e := v.(type) {
	case source.Result:
		s := e.State
		n += len(s.Key) + len(s.Brand) + len(s.BrandID) + len(s.KeyID)
		for _, l := range s.Licenses {
			n += 160 + len(l.ID) + len(l.Product) + len(l.Status)
		}
	case source.InstanceResult:
		n += len(e.Instance.Instance) + 64*len(e.Instance.Activations)
	}
	return int64(n)
}
