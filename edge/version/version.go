// Package version tracks, per license key, the newest version this edge has seen: from
// an invalidation event or from a read it served. Every tier consults it so that an edge
// never caches or serves a version older than one it already knows.
package version

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

const shards = 64

// Known is a concurrent map of cache key → newest known version. Entries not touched for
// longer than the retention given to Prune are forgotten (the caller drops its cached
// copies of those keys at the same time, so nothing older can be served afterwards).
type Known struct {
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[string]entry
}

type entry struct {
	v      int64 // newest version known (events, reads)
	served int64 // newest version this edge answered with
	seen   int64 // unix nanos of the last Observe
}

// New returns an empty tracker.
func New() *Known {
	k := &Known{seed: maphash.MakeSeed()}
	for i := range k.shards {
		k.shards[i].m = map[string]entry{}
	}
	return k
}

func (k *Known) shard(key string) *shard {
	return &k.shards[maphash.String(k.seed, key)%shards]
}

// Get returns the newest version known for key, 0 when none. For an instance entry's key
// (source.InstanceKey: "<brand>/<key>#<instance>") it is at least 1 once the license key
// itself is known to exist: an entry read before the key was created (a lagging replica's
// "no such key") is older than what the edge knows.
func (k *Known) Get(key string) int64 {
	v := k.get(key)
	if v == 0 {
		if i := strings.IndexByte(key, '#'); i > 0 && k.get(key[:i]) > 0 {
			return 1
		}
	}
	return v
}

func (k *Known) get(key string) int64 {
	s := k.shard(key)
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	return e.v
}

// Served returns the newest version of key this edge has answered with.
func (k *Known) Served(key string) int64 {
	s := k.shard(key)
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	return e.served
}

// MarkServed records that the edge answered with version v of key (and so knows it).
func (k *Known) MarkServed(key string, v int64, now time.Time) {
	if v <= 0 {
		return
	}
	s := k.shard(key)
	s.mu.Lock()
	e := s.m[key]
	e.v, e.served, e.seen = max(e.v, v), max(e.served, v), now.UnixNano()
	s.m[key] = e
	s.mu.Unlock()
}

// Observe records that version v of key exists. It returns true when v is newer than
// what was known. Version 0 (a negative answer) is never recorded.
func (k *Known) Observe(key string, v int64, now time.Time) bool {
	if v <= 0 {
		return false
	}
	s := k.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	newer := v > e.v
	if newer {
		e.v = v
	}
	e.seen = now.UnixNano()
	s.m[key] = e
	return newer
}

// Len is the number of tracked keys.
func (k *Known) Len() int {
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Prune forgets keys not observed since before cutoff and calls forget for each (with the
// shard locked, so no Observe of that key interleaves); forget must not call back into k.
func (k *Known) Prune(cutoff time.Time, forget func(key string)) int {
	c := cutoff.UnixNano()
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		for key, e := range s.m {
			if e.seen < c {
				delete(s.m, key)
				if forget != nil {
					forget(key)
				}
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}
