package server

import (
	"hash/maphash"
	"strconv"
	"sync"
	"time"
)

// signedKey is one question and the state it was answered from: a token is reused only
// for the same question about the same key version (and instance entry version), so an
// invalidation never serves an old signed state. Stale answers are kept apart.
type signedKey struct {
	brand, key, product, instance string
	version, instanceAsOf         int64
	stale                         bool
}

// signedEntry is a signed answer and what its Cache-Control needs: the earliest expiry
// among the answer's valid licenses (zero: none).
type signedEntry struct {
	token      []byte
	cacheUntil time.Time
}

const signedShards = 64

// DefaultSignedCacheEntries bounds the signed-answer cache (about 1 KiB an entry).
const DefaultSignedCacheEntries = 32 << 10

// signedCache holds the tokens signed in the current iat granule (lease.Granularity),
// so that identical questions within it cost one signature. Each shard keeps one granule:
// the first store of a newer granule empties it, so the cache holds at most one second's
// distinct questions, and never more than its bound (past it, answers are signed and not
// kept).
type signedCache struct {
	seed     maphash.Seed
	perShard int
	shards   [signedShards]signedShard
}

type signedShard struct {
	mu      sync.RWMutex
	granule int64
	m       map[signedKey]signedEntry
}

func newSignedCache(entries int) *signedCache {
	if entries <= 0 {
		entries = DefaultSignedCacheEntries
	}
	c := &signedCache{seed: maphash.MakeSeed(), perShard: max(entries/signedShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[signedKey]signedEntry)
	}
	return c
}

func (c *signedCache) shard(k *signedKey) *signedShard {
	return &c.shards[maphash.Comparable(c.seed, *k)%signedShards]
}

func (c *signedCache) get(k signedKey, granule int64) (signedEntry, bool) {
	sh := c.shard(&k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if sh.granule != granule {
		return signedEntry{}, false
	}
	e, ok := sh.m[k]
	return e, ok
}

func (c *signedCache) put(k signedKey, granule int64, e signedEntry) {
	sh := c.shard(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch {
	case granule < sh.granule:
		return // a slow request from the previous granule
	case granule > sh.granule:
		clear(sh.m)
		sh.granule = granule
	}
	if _, have := sh.m[k]; have || len(sh.m) < c.perShard {
		sh.m[k] = e
	}
}

// cacheMaxAge is license.CacheMaxAge from a stored earliest expiry.
func cacheMaxAge(ceiling time.Duration, until, now time.Time) string {
	d := ceiling
	if !until.IsZero() {
		d = min(d, until.Sub(now))
	}
	return "max-age=" + strconv.Itoa(max(int(d/time.Second), 0))
}
