// Package source declares the one narrow interface every tier of the edge read path
// implements (memory cache, Redis, Postgres replica) and the values they pass up: a
// license key's state at a version, and one instance's activations on a key as of a
// version, each with the time it was read from Postgres. Each tier wraps the next; the
// HTTP server only sees a Source. Neither value holds an activation list, so what a tier
// stores and moves for a key does not grow with the number of sites its licenses hold.
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
	// State is the key's state; State.Version is the key's version (0 when !Found).
	State license.State
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
	return r.State.Version
}

// InstanceResult is the answer of a tier for one (brand, key, instance).
type InstanceResult struct {
	// Found is false when the key or brand is unknown.
	Found bool
	// Instance says on which licenses of the key the instance holds an activation, as
	// of key version Instance.AsOf.
	Instance license.Instance
	Origin   time.Time
	Stale    bool
	Tier     string
}

// Version is the key version the entry was read at (0 for a negative answer). It stays
// valid until a change event names the instance with a newer version.
func (r InstanceResult) Version() int64 {
	if !r.Found {
		return 0
	}
	return r.Instance.AsOf
}

// Source answers status lookups. brand is the brand slug from the path, key a normalized
// key that passed license.ValidKey, instance a normalized instance.
type Source interface {
	// Get returns the key's state, or Found=false when the key or the brand is unknown.
	// An error means the tier and everything below it were unavailable (ErrUnavailable,
	// possibly wrapped) or ctx ended.
	Get(ctx context.Context, brand, key string) (Result, error)
	// Instance returns the instance's activations on the key, with the same errors.
	Instance(ctx context.Context, brand, key, instance string) (InstanceResult, error)
}

// ErrUnavailable is returned (wrapped) when no backend could answer.
var ErrUnavailable = errors.New("backends unavailable")

// CacheKey is the key a (brand, key) pair is cached and versioned under on every tier.
// Events carry both the brand slug and the key, so they map to the same string.
func CacheKey(brand, key string) string { return brand + "/" + key }

// InstanceKey is the key one instance of a (brand, key) pair is cached and versioned
// under. Activation events carry the instance, so they map to the same string.
func InstanceKey(brand, key, instance string) string { return brand + "/" + key + "#" + instance }

// Entry is what the caching tiers handle alike: a Result or an InstanceResult.
type Entry[R any] interface {
	// Version is the key version the entry carries (0: negative).
	Version() int64
	// IsFound is false for a negative answer.
	IsFound() bool
	// ReadAt is when it was read from Postgres.
	ReadAt() time.Time
	// Served returns the entry as answered by tier, marked stale or not.
	Served(tier string, stale bool) R
}

var (
	_ Entry[Result]         = Result{}
	_ Entry[InstanceResult] = InstanceResult{}
)

// IsFound implements Entry.
func (r Result) IsFound() bool { return r.Found }

// ReadAt implements Entry.
func (r Result) ReadAt() time.Time { return r.Origin }

// Served implements Entry.
func (r Result) Served(tier string, stale bool) Result {
	r.Tier, r.Stale = tier, stale
	return r
}

// IsFound implements Entry.
func (r InstanceResult) IsFound() bool { return r.Found }

// ReadAt implements Entry.
func (r InstanceResult) ReadAt() time.Time { return r.Origin }

// Served implements Entry.
func (r InstanceResult) Served(tier string, stale bool) InstanceResult {
	r.Tier, r.Stale = tier, stale
	return r
}

// Stream says whether the edge's change stream is current: it has recently applied a
// relay heartbeat, so every change committed up to shortly before is applied. Only then
// may a tier answer "no such key" from what it holds (a negative entry); otherwise the
// primary is asked (invariant 7: a key the writer acknowledged is never answered 404).
type Stream interface {
	Current() bool
}

// NoStream is the stream of an edge without NATS: never current.
type NoStream struct{}

// Current implements Stream.
func (NoStream) Current() bool { return false }
