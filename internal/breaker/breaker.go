// Package breaker guards a dependency (on the edge: Redis, the replica, the primary, each
// writer; on both binaries: the rate limiter's Redis) with a circuit breaker (github.com/sony/gobreaker): after a failure (or a few in a row, for a
// tier where one slow call under load is no sign of an outage) the tier is skipped for a
// while (every caller goes on at once to the next tier), then exactly one caller probes it
// while the others keep skipping it, and one success closes it again. A dead dependency
// thus costs one failed call per probe interval, not one per request, and nobody waits
// for a dependency another caller is already finding out about. State changes are logged
// once and reported to the owner (the edge exports them as license_edge_tier_open{tier}).
package breaker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Breaker guards one tier.
type Breaker struct {
	tier string
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// New returns a closed breaker for tier that opens after trips consecutive failures (at
// least 1) and stays open for open. fault says whether an error is the tier's failure
// (nil: every error is); any other error is an answer, as is any error when the caller
// gave up (context.Canceled).
// onChange, when set, is told when the breaker opens (true) and closes (false).
func New(tier string, open time.Duration, trips int, fault func(error) bool, log *slog.Logger, onChange func(open bool)) *Breaker {
	if fault == nil {
		fault = func(error) bool { return true }
	}
	trips = max(trips, 1)
	b := &Breaker{tier: tier}
	if onChange == nil {
		onChange = func(bool) {}
	}
	onChange(false)
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        tier,
		MaxRequests: 1, // half-open: one probe
		Timeout:     open,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(trips) },
		// a caller giving up (its own deadline or cancellation) says nothing about the tier
		IsExcluded:   func(err error) bool { return errors.Is(err, context.Canceled) },
		IsSuccessful: func(err error) bool { return err == nil || !fault(err) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			switch to {
			case gobreaker.StateOpen:
				onChange(true)
				if from == gobreaker.StateClosed {
					log.Warn("tier unavailable: skipping it, one caller probes it every interval", "tier", tier, "interval", open)
				}
			case gobreaker.StateClosed:
				onChange(false)
				log.Info("tier available again", "tier", tier)
			}
		},
	})
	return b
}

// Allow says whether to call the tier now; when ok, done must be called with the call's
// error (nil for success).
func (b *Breaker) Allow() (done func(error), ok bool) {
	d, err := b.cb.Allow()
	if err != nil {
		return nil, false
	}
	return d, true
}

// Open reports whether the tier is being skipped.
func (b *Breaker) Open() bool { return b.cb.State() != gobreaker.StateClosed }
