package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licensing/licensing/loadtest/hist"
	"github.com/licensing/licensing/loadtest/scenario"
)

// Lag measures invalidation lag (invariant 7): for each sample it warms every edge's cache
// with a status check of a license, activates a new instance on that license at the writer,
// and from the writer's 2xx polls every edge (every pollEvery) until its answer shows the
// instance activated. One observation per edge and sample; the instance is deactivated
// afterwards. Samples taking longer than timeout count as errors.
func (r *Runner) Lag(ctx context.Context, samples int, pollEvery, timeout time.Duration) (*Result, error) {
	m := r.Manifest
	if len(r.Targets.Edges) == 0 {
		return nil, fmt.Errorf("no edge configured")
	}
	// unlimited licenses never fill up, whatever ran before; else licenses with free seats
	pool := m.Unlimited
	if len(pool) == 0 {
		pool = m.Free
	}
	if len(pool) == 0 {
		return nil, fmt.Errorf("the manifest has no license with free seats")
	}
	h := hist.New()
	res := &Result{Scenario: scenario.Scenario{Name: "invalidation_lag", Description: "writer 2xx -> edge answer changes",
		Thresholds: scenario.Thresholds{P99Ms: 50}}, Tool: "go-harness", Started: time.Now().UTC(),
		ErrorsBy: map[string]int64{}, Outcomes: map[string]int64{}, ByOp: map[string]hist.Summary{}, hist: h}
	start := time.Now()
	var done, seen, failed atomic.Int64 // samples, edge observations and errors, for progress lines
	defer r.progress(func(now time.Time) string {
		return fmt.Sprintf("  invalidation_lag: %s, %d of %d samples, %d edge observations, %d errors\n",
			r.elapsed(start, now), done.Load(), samples, seen.Load(), failed.Load())
	})()
	for i := 0; i < samples && ctx.Err() == nil; i++ {
		done.Store(int64(i)) // the samples before this one are done
		t := pool[i%len(pool)]
		inst := fmt.Sprintf("https://lag-%s-%d.example.net", r.RunID, i)
		statusPath := "/v1/public/" + t.Brand + "/licenses/" + t.Key + "/status?product=" + url.QueryEscape(t.Product) + "&instance=" + url.QueryEscape(inst)
		for _, e := range r.Targets.Edges { // warm: the edge now holds the old answer
			if _, err := Activated(ctx, r.Client, e+statusPath); err != nil {
				res.ErrorsBy["warm "+err.Error()]++
				failed.Add(1)
			}
		}
		body, _ := json.Marshal(map[string]string{"license_key": t.Key, "product": t.Product, "instance": inst})
		resp, err := r.Client.Post(r.Targets.Writer+"/v1/public/"+t.Brand+"/activations", "application/json", bytes.NewReader(body))
		if err != nil {
			res.ErrorsBy["activate transport"]++
			failed.Add(1)
			continue
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		committed := time.Now()
		if resp.StatusCode != http.StatusCreated {
			res.ErrorsBy[fmt.Sprintf("activate %d", resp.StatusCode)]++
			failed.Add(1)
			continue
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, e := range r.Targets.Edges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ok, _ := Activated(ctx, r.Client, e+statusPath)
					if ok {
						mu.Lock()
						h.RecordDuration(time.Since(committed))
						res.Outcomes["seen"]++
						seen.Add(1)
						mu.Unlock()
						return
					}
					if time.Since(committed) > timeout || ctx.Err() != nil {
						mu.Lock()
						res.ErrorsBy["timeout "+e]++
						failed.Add(1)
						mu.Unlock()
						return
					}
					time.Sleep(pollEvery)
				}
			}()
		}
		wg.Wait()
		resp, err = r.Client.Post(r.Targets.Writer+"/v1/public/"+t.Brand+"/deactivations", "application/json", bytes.NewReader(body))
		if err == nil {
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.Iterations = int64(samples)
	res.finish()
	res.Note = fmt.Sprintf("poll interval %s adds up to that much to each observation", pollEvery)
	return res, nil
}

// Activated asks a status URL whether the instance it names is activated (loadtest/sim
// uses it too).
func Activated(ctx context.Context, c *http.Client, u string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("transport")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	var s struct {
		Instance *struct {
			Activated bool `json:"activated"`
		} `json:"instance"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return false, fmt.Errorf("decode")
	}
	return s.Instance != nil && s.Instance.Activated, nil
}
