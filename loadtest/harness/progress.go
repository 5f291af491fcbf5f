package harness

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// DefaultProgressEvery is how often a run reports progress when Runner.Progress is set.
const DefaultProgressEvery = 5 * time.Second

// tally counts a run's requests and errors as they are recorded, for progress lines.
type tally struct {
	requests, errors atomic.Int64
}

// progress writes line(now) to Runner.Progress every ProgressEvery (DefaultProgressEvery
// when 0) until the returned stop is called, which waits for the last line. Without
// Progress, or in a run shorter than the interval, nothing is printed.
func (r *Runner) progress(line func(now time.Time) string) (stop func()) {
	if r.Progress == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(r.progressEvery())
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-tick.C:
				_, _ = io.WriteString(r.Progress, line(now))
			}
		}
	}()
	return func() { close(quit); <-done }
}

func (r *Runner) progressEvery() time.Duration {
	if r.ProgressEvery <= 0 {
		return DefaultProgressEvery
	}
	return r.ProgressEvery
}

// elapsed formats the time since start as whole seconds, or milliseconds when progress
// is reported more often than every second.
func (r *Runner) elapsed(start, now time.Time) time.Duration {
	if r.progressEvery() < time.Second {
		return now.Sub(start).Round(time.Millisecond)
	}
	return now.Sub(start).Round(time.Second)
}

// tallyProgress is the progress line of a run counted in r.tally: elapsed of total,
// requests and errors so far, the request rate over the last interval, the target rate
// (when > 0) and the dropped iterations (when dropped is not nil).
func (r *Runner) tallyProgress(name string, total time.Duration, target int, dropped *atomic.Int64) func(time.Time) string {
	start := time.Now()
	last, lastAt := r.tally.requests.Load(), start
	return func(now time.Time) string {
		n, e := r.tally.requests.Load(), r.tally.errors.Load()
		rate := float64(n-last) / now.Sub(lastAt).Seconds()
		last, lastAt = n, now
		extra := ""
		if target > 0 {
			extra = fmt.Sprintf(" (target %d/s)", target)
		}
		if dropped != nil {
			extra += fmt.Sprintf(", %d dropped", dropped.Load())
		}
		return fmt.Sprintf("  %s: %s of %s, %d requests, %d errors, %.0f req/s now%s\n",
			name, r.elapsed(start, now), total, n, e, rate, extra)
	}
}
