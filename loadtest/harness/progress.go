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

// reportProgress writes one line to w every `every` until stop is closed: elapsed of
// total, requests and errors so far, the request rate over the last interval and the
// dropped iterations. A run shorter than `every` prints nothing.
func reportProgress(w io.Writer, every time.Duration, name string, total time.Duration, target int,
	t *tally, dropped *atomic.Int64, stop <-chan struct{}) {
	if every <= 0 {
		every = DefaultProgressEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	last, lastAt := int64(0), start
	unit := time.Second // elapsed as whole seconds, or milliseconds with a sub-second interval
	if every < time.Second {
		unit = time.Millisecond
	}
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			n, e := t.requests.Load(), t.errors.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			want := ""
			if target > 0 {
				want = fmt.Sprintf(" (target %d/s)", target)
			}
			fmt.Fprintf(w, "  %s: %s of %s, %d requests, %d errors, %.0f req/s now%s, %d dropped\n",
				name, now.Sub(start).Round(unit), total, n, e, rate, want, dropped.Load())
		}
	}
}
