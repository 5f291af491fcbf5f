package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUntilRetriesWithGrowingJitteredWaits(t *testing.T) {
	var waits []time.Duration
	calls := 0
	err := Until(context.Background(), Policy{Initial: time.Millisecond, Max: 4 * time.Millisecond}, func() error {
		calls++
		if calls < 6 {
			return errors.New("down")
		}
		return nil
	}, func(_ error, d time.Duration) { waits = append(waits, d) })
	if err != nil || calls != 6 || len(waits) != 5 {
		t.Fatalf("err %v after %d calls, waits %v", err, calls, waits)
	}
	for i, w := range waits {
		// wait i is 1ms·2^i capped at 4ms, jittered ±50 %
		base := min(time.Millisecond<<i, 4*time.Millisecond)
		if w < base/2 || w > base*3/2 {
			t.Errorf("wait %d = %v, want within ±50%% of %v", i, w, base)
		}
	}
}

func TestUntilStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Until(ctx, Policy{Initial: time.Millisecond, Max: time.Millisecond}, func() error {
		calls++
		if calls == 3 {
			cancel()
		}
		return errors.New("down")
	}, nil)
	if !errors.Is(err, context.Canceled) || calls != 3 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestBackoffResets(t *testing.T) {
	b := Policy{Initial: 10 * time.Millisecond, Max: time.Second}.Backoff()
	for range 5 {
		b.NextBackOff()
	}
	b.Reset()
	if d := b.NextBackOff(); d > 15*time.Millisecond {
		t.Fatalf("after Reset the wait is %v, want about the initial 10ms", d)
	}
}
