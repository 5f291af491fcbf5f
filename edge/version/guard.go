package version

import (
	"context"
	"fmt"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
)

// Guard is the top of the read path. It lets an answer out only when it is at least as
// new as
//   - every version the edge knew of for its key (or, for an instance entry, for that
//     instance) when the request began: a change the edge has heard of before the request
//     is in the answer (freshness), and
//   - every version the edge has already answered with: the edge never goes back.
//
// A version that arrives while the request is being answered does not make the answer
// wrong (it was current when asked), so a key that changes faster than a read completes
// is still answered (a floor taken after the read would refuse every read of it). Each
// tier already refuses older data; when a race still produced an older answer, Guard
// re-asks the tiers, and fails rather than go back. Stale answers (stale-if-error) pass:
// they are marked as such.
type Guard struct {
	next  source.Source
	known *Known
	now   func() time.Time
	m     *metrics.Metrics
}

var _ source.Source = (*Guard)(nil)

// NewGuard wraps next.
func NewGuard(next source.Source, known *Known, now func() time.Time, m *metrics.Metrics) *Guard {
	return &Guard{next: next, known: known, now: now, m: m}
}

// Get answers from next, retrying (twice) an answer older than the known version.
func (g *Guard) Get(ctx context.Context, brand, key string) (source.Result, error) {
	return guard(g, source.CacheKey(brand, key), func() (source.Result, error) { return g.next.Get(ctx, brand, key) },
		source.Result.Version, func(r source.Result) bool { return r.Stale })
}

// Instance is Get for an instance entry, checked against the instance's known version.
func (g *Guard) Instance(ctx context.Context, brand, key, instance string) (source.InstanceResult, error) {
	return guard(g, source.InstanceKey(brand, key, instance),
		func() (source.InstanceResult, error) { return g.next.Instance(ctx, brand, key, instance) },
		source.InstanceResult.Version, func(r source.InstanceResult) bool { return r.Stale })
}

func guard[R any](g *Guard, ck string, get func() (R, error), version func(R) int64, stale func(R) bool) (R, error) {
	asked := g.known.Get(ck)
	for attempt := 0; ; attempt++ {
		r, err := get()
		if err != nil {
			return r, err
		}
		floor := max(asked, g.known.Served(ck))
		if v := version(r); v >= floor || stale(r) {
			if !stale(r) {
				g.known.MarkServed(ck, v, g.now())
			}
			return r, nil
		}
		g.m.FillsRefused.WithLabelValues("edge").Inc()
		if attempt == 2 {
			var zero R
			return zero, fmt.Errorf("answer at version %d older than %d: %w", version(r), floor, source.ErrUnavailable)
		}
	}
}
