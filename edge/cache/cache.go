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
}

type entry struct {
	res source.Result
}

// Cache is the L1 tier.
type Cache struct {
	c     *ristretto.Cache[string, *entry]
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
	// ~ one counter per 100 bytes of budget: 10x the number of entries we expect to hold
	// (a snapshot is ~1 KiB), as ristretto recommends.
	counters := max(cfg.MaxBytes/100, 1000)
	c, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters: counters,
		MaxCost:     cfg.MaxBytes,
		BufferItems: 64,
		// the cost we pass is the entry's size; don't add ristretto's own bookkeeping to it
		IgnoreInternalCost: true,
		// never let an older version overwrite a newer one that already landed
		ShouldUpdate: func(cur, prev *entry) bool { return cur.res.Version() >= prev.res.Version() },
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &Cache{c: c, next: next, known: known, cfg: cfg, now: now, log: log, m: m,
		hits: m.Lookups.WithLabelValues("l1", "hit"), misses: m.Lookups.WithLabelValues("l1", "miss")}, nil
}

// Close stops the cache's goroutines.
func (c *Cache) Close() { c.c.Close() }

// Wait blocks until pending Sets are applied (tests).
func (c *Cache) Wait() { c.c.Wait() }

// Clear drops every entry: the edge can no longer trust what it holds.
func (c *Cache) Clear() { c.c.Clear() }

// Forget drops one key.
func (c *Cache) Forget(ck string) { c.c.Del(ck) }

func (c *Cache) freshFor(r source.Result) time.Duration {
	if r.Found {
		return c.cfg.Ceiling
	}
	return c.cfg.NegativeTTL
}

// Get serves a fresh entry, else fills from the next tier, else serves stale.
func (c *Cache) Get(ctx context.Context, brand, key string) (source.Result, error) {
	ck := source.CacheKey(brand, key)
	e, ok := c.c.Get(ck)
	now := c.now()
	if ok && e.res.Version() >= c.known.Get(ck) && now.Sub(e.res.Origin) < c.freshFor(e.res) {
		c.hits.Inc()
		r := e.res
		r.Tier = "l1"
		return r, nil
	}
	c.misses.Inc()
	v, err, _ := c.sf.Do(ck, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FetchTimeout)
		defer cancel()
		r, err := c.next.Get(fctx, brand, key)
		if err != nil {
			return r, err
		}
		c.store(ck, r)
		return r, nil
	})
	if err == nil {
		return v.(source.Result), nil
	}
	if ok && c.now().Sub(e.res.Origin) < c.freshFor(e.res)+c.cfg.StaleFor {
		c.m.StaleServed.Inc()
		r := e.res
		r.Tier = "l1"
		r.Stale = true
		return r, nil
	}
	return source.Result{}, err
}

func (c *Cache) store(ck string, r source.Result) {
	if r.Found {
		c.known.Observe(ck, r.Version(), c.now())
	}
	if r.Version() < c.known.Get(ck) {
		c.m.FillsRefused.WithLabelValues("l1").Inc()
		return
	}
	ttl := c.freshFor(r) + c.cfg.StaleFor - c.now().Sub(r.Origin)
	if ttl <= 0 {
		return
	}
	r.Stale = false
	c.c.SetWithTTL(ck, &entry{res: r}, cost(r), ttl)
}

// cost approximates the memory an entry holds.
func cost(r source.Result) int64 {
	n := 256 + len(r.Snapshot.Key) + len(r.Snapshot.Brand) + len(r.Snapshot.BrandID) + len(r.Snapshot.KeyID)
	for _, l := range r.Snapshot.Licenses {
		n += 128 + len(l.Product) + len(l.Status)
		for _, in := range l.Instances {
			n += 16 + len(in)
		}
	}
	return int64(n)
}
