// Package retry is the project's one retry policy, over github.com/cenkalti/backoff: an
// exponential backoff with jitter between an initial and a maximum wait, reset after a
// success. The outbox relay, the writer's stream set-up and the edge's event subscription
// all retry through it.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy bounds the waits between attempts.
type Policy struct {
	Initial, Max time.Duration
}

// Default waits 100 ms after the first failure, doubling up to 5 s, each wait jittered by
// ±50 % so that many processes recovering together do not retry in step.
var Default = Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Backoff returns a fresh backoff of the policy; call Reset after a success.
func (p Policy) Backoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = p.Initial, p.Max
	b.Multiplier, b.RandomizationFactor = 2, 0.5
	b.Reset()
	return b
}

// Until calls op until it succeeds or ctx ends (then it returns ctx's error), waiting per
// the policy between failures; notify, when set, is told each failure and the wait.
func Until(ctx context.Context, p Policy, op func() error, notify func(err error, wait time.Duration)) error {
	opts := []backoff.RetryOption{backoff.WithBackOff(p.Backoff()), backoff.WithMaxElapsedTime(0)}
	if notify != nil {
		opts = append(opts, backoff.WithNotify(notify))
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, op() }, opts...)
	return err
}

// Sleep waits d, or until ctx ends; it reports whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
