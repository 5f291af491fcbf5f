package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licensing/licensing/loadtest/hist"
	"github.com/licensing/licensing/loadtest/scenario"
	"github.com/licensing/licensing/loadtest/seed"
)

// BigLicenseResult is one run of BigLicense.
type BigLicenseResult struct {
	// MaxRate is the writer's activation rate on the one license with nothing else
	// running (closed loop, vus workers).
	MaxRate float64 `json:"max_activations_per_second"`
	// RateUnderChecks is the activation rate while the edges were checked.
	RateUnderChecks float64 `json:"activations_per_second_under_checks"`
	// CheckRate is the status checks sent per second to each edge.
	CheckRate int `json:"checks_per_second_per_edge"`
	// Edges are the status latencies per edge.
	Edges []*Result `json:"edges"`
	// Activations are the activation latencies during the checks.
	Activations *Result `json:"activations"`
	Pass        bool    `json:"pass"`
}

// BigLicense measures the status of one license holding 100 000 activations while it is
// activated at the writer's maximum rate for one license (issue 7's target: every edge's
// status p99 for that key under p99Limit at checkRate checks per second per edge).
// First vus closed-loop workers activate new sites on the license for d (the maximum
// rate); then the same activation load runs again while each edge gets checkRate status
// checks per second (open model) of that key, product and instances sampled from it.
//
// actRate > 0 paces the activations of the second phase at that rate instead (a fixed
// write load, to see the checks' cost where the write load leaves the machine room).
//
// control activates the second big license instead while the first is checked: the
// same write load on the machine, none on the checked key.
func (r *Runner) BigLicense(ctx context.Context, vus, actRate, checkRate int, d, p99Limit time.Duration, control bool) (*BigLicenseResult, error) {
	m := r.Manifest
	if len(m.Big) == 0 {
		return nil, fmt.Errorf("the manifest has no big license: seed with -big-licenses")
	}
	if len(r.Targets.Edges) == 0 {
		return nil, fmt.Errorf("no edge configured")
	}
	key := m.Big[0]
	var targets []seed.Target
	actKey := key
	for _, t := range m.Big {
		if t.Key == key.Key {
			targets = append(targets, t)
		} else {
			actKey = t
		}
	}
	if !control {
		actKey = key
	} else if actKey.Key == key.Key {
		return nil, fmt.Errorf("a control run needs two big licenses in the manifest")
	}
	out := &BigLicenseResult{CheckRate: checkRate}
	r.tally.requests.Store(0)
	r.tally.errors.Store(0)
	stop := r.progress(r.tallyProgress("big_license maximum rate", d, 0, nil))
	max, _ := r.activateLoop(ctx, key, vus, 0, d, nil)
	stop()
	out.MaxRate = max
	// warm: every checked instance once on every edge, so the run measures a steady state
	for _, e := range r.Targets.Edges {
		for _, t := range targets {
			_, _ = Activated(ctx, r.Client, e+"/v1/public/"+t.Brand+"/licenses/"+t.Key+"/status?product="+url.QueryEscape(t.Product)+
				"&instance="+url.QueryEscape(t.Instance))
		}
	}

	acts := hist.New()
	edgeHists := make([]*hist.Histogram, len(r.Targets.Edges))
	edgeErrs := make([]atomic.Int64, len(r.Targets.Edges))
	for i := range edgeHists {
		edgeHists[i] = hist.New()
	}
	var wg sync.WaitGroup
	r.tally.requests.Store(0)
	r.tally.errors.Store(0)
	stop = r.progress(r.tallyProgress(fmt.Sprintf("big_license under %d checks/s per edge", checkRate), d, 0, nil))
	start := time.Now()
	for i, e := range r.Targets.Edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mu sync.Mutex
			rng := rand.New(rand.NewPCG(uint64(i), 77))
			interval := time.Second / time.Duration(checkRate)
			var inflight sync.WaitGroup
			for n := 0; ; n++ {
				at := start.Add(time.Duration(n) * interval)
				if time.Since(start) >= d || ctx.Err() != nil {
					break
				}
				if w := time.Until(at); w > 0 {
					time.Sleep(w)
				}
				t := targets[rng.IntN(len(targets))]
				u := e + "/v1/public/" + t.Brand + "/licenses/" + t.Key + "/status?product=" + url.QueryEscape(t.Product) +
					"&instance=" + url.QueryEscape(t.Instance)
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					t0 := time.Now()
					ok, err := Activated(ctx, r.Client, u)
					el := time.Since(t0)
					r.tally.requests.Add(1)
					if err != nil || !ok {
						edgeErrs[i].Add(1)
						r.tally.errors.Add(1)
						return
					}
					mu.Lock()
					edgeHists[i].RecordDuration(el)
					mu.Unlock()
				}()
			}
			inflight.Wait()
		}()
	}
	out.RateUnderChecks, _ = r.activateLoop(ctx, actKey, vus, actRate, d, acts)
	wg.Wait()
	stop()
	el := time.Since(start).Seconds()
	out.Pass = true
	for i, e := range r.Targets.Edges {
		res := &Result{Scenario: scenario.Scenario{Name: "big_license_status " + e, Thresholds: scenario.Thresholds{P99Ms: float64(p99Limit) / 1e6}},
			Tool: "go-harness", Started: start.UTC(), Seconds: el, ErrorsBy: map[string]int64{"not 200 activated": edgeErrs[i].Load()},
			Outcomes: map[string]int64{}, ByOp: map[string]hist.Summary{}, hist: edgeHists[i]}
		res.finish()
		out.Pass = out.Pass && res.Pass
		out.Edges = append(out.Edges, res)
	}
	out.Activations = &Result{Scenario: scenario.Scenario{Name: "big_license_activations"}, Tool: "go-harness", Started: start.UTC(),
		Seconds: el, ErrorsBy: map[string]int64{}, Outcomes: map[string]int64{}, ByOp: map[string]hist.Summary{}, hist: acts}
	out.Activations.finish()
	return out, nil
}

// activateLoop runs vus workers activating new instances on t's license at the writer for
// d, back to back or, with rate > 0, together at that many per second; it returns the
// rate of 201 answers.
func (r *Runner) activateLoop(ctx context.Context, t seed.Target, vus, rate int, d time.Duration, h *hist.Histogram) (float64, error) {
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	var ticket atomic.Int64
	for range vus {
		wg.Go(func() {
			for time.Since(start) < d && ctx.Err() == nil {
				if rate > 0 {
					at := start.Add(time.Duration(ticket.Add(1)-1) * time.Second / time.Duration(rate))
					if w := time.Until(at); w > 0 {
						time.Sleep(w)
					}
				}
				body, _ := json.Marshal(map[string]string{"license_key": t.Key, "product": t.Product, "instance": r.newInstance()})
				t0 := time.Now()
				resp, err := r.Client.Post(r.Targets.Writer+"/v1/public/"+t.Brand+"/activations", "application/json", bytes.NewReader(body))
				r.tally.requests.Add(1)
				if err != nil {
					failed.Add(1)
					r.tally.errors.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					failed.Add(1)
					r.tally.errors.Add(1)
					continue
				}
				ok.Add(1)
				if h != nil {
					mu.Lock()
					h.RecordDuration(time.Since(t0))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		return float64(ok.Load()) / time.Since(start).Seconds(), fmt.Errorf("%d activations failed", failed.Load())
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), nil
}
