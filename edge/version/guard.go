package version

import (
	"context"
	"fmt"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
)

// Guard is the top of the read path: it never lets an answer older than the newest
// version known for its key out of the edge. Each tier already refuses older data, but a
// tier's read can race with a newer version arriving (from an event, or from another
// request's fill); Guard re-asks the tiers then, and fails rather than go back. Stale
// answers (stale-if-error) pass: they are marked as such.
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
	ck := source.CacheKey(brand, key)
	for attempt := 0; ; attempt++ {
		r, err := g.next.Get(ctx, brand, key)
		if err != nil {
			return r, err
		}
		known := g.known.Get(ck)
		switch v := r.Version(); {
		case v > known:
			g.known.Observe(ck, v, g.now())
			return r, nil
		case v == known || r.Stale:
			return r, nil
		}
		g.m.FillsRefused.WithLabelValues("edge").Inc()
		if attempt == 2 {
			return source.Result{}, fmt.Errorf("answer at version %d older than known %d: %w", r.Version(), known, source.ErrUnavailable)
		}
	}
}
