package version

import (
	"context"
	"fmt"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
)

// Guard is the top of the read path: it never lets an answer older than the newest
// version known for its key (or, for an instance entry, for that instance) out of the
// edge. Each tier already refuses older data, but a tier's read can race with a newer
// version arriving (from an event, or from another request's fill); Guard re-asks the
// tiers then, and fails rather than go back. Stale answers (stale-if-error) pass: they
// are marked as such.
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
	for attempt := 0; ; attempt++ {
		r, err := get()
		if err != nil {
			return r, err
		}
		known := g.known.Get(ck)
		switch v := version(r); {
		case v > known:
			g.known.Observe(ck, v, g.now())
			return r, nil
		case v == known || stale(r):
			return r, nil
		}
		g.m.FillsRefused.WithLabelValues("edge").Inc()
		if attempt == 2 {
			var zero R
			return zero, fmt.Errorf("answer at version %d older than known %d: %w", version(r), known, source.ErrUnavailable)
		}
	}
}
