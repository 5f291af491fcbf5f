// Package source declares the one narrow interface every tier of the edge read path
// implements (memory cache, Redis, Postgres replica) and the value they pass up: a license
// key's snapshot at a version, with the time it was read from Postgres. Each tier wraps the
// next; the HTTP server only sees a Source.
package source

import (
	"context"
	"errors"
	"time"

	"github.com/licensing/licensing/shared/license"
)

// Result is the answer of a tier for one (brand, key).
type Result struct {
	// Found is false for an unknown key or brand (a negative answer, cacheable briefly).
	Found bool
	// Snapshot is the key's state; Snapshot.Version is the key's version (0 when !Found).
	Snapshot license.Snapshot
	// Origin is when this state was read from Postgres; freshness (the hard revalidation
	// ceiling) is measured from it on every tier.
	Origin time.Time
	// Stale is true when a tier answered from data it could not revalidate because the
	// tiers below it failed (stale-if-error).
	Stale bool
	// Tier names the tier that answered ("l1", "l2", "replica", "primary").
	Tier string
}

// Version is the key version the result carries (0 for a negative answer).
func (r Result) Version() int64 {
	if !r.Found {
		return 0
	}
	return r.Snapshot.Version
}

// Source answers status lookups. brand is the brand slug from the path, key a normalized
// key that passed license.ValidKey.
type Source interface {
	// Get returns the key's snapshot, or Found=false when the key or the brand is unknown.
	// An error means the tier and everything below it were unavailable (ErrUnavailable,
	// possibly wrapped) or ctx ended.
	Get(ctx context.Context, brand, key string) (Result, error)
}

// ErrUnavailable is returned (wrapped) when no backend could answer.
var ErrUnavailable = errors.New("backends unavailable")

// CacheKey is the key a (brand, key) pair is cached and versioned under on every tier.
// Events carry both the brand slug and the key, so they map to the same string.
func CacheKey(brand, key string) string { return brand + "/" + key }
