// Package harness runs the load scenarios of loadtest/scenarios.json without k6: an open
// model (constant arrival rate: iterations start on schedule whatever the latency, and an
// iteration that finds max_in_flight requests outstanding is dropped and counted, as k6's
// dropped_iterations) or a closed model (constant VUs), recording every request's latency
// in a log-linear histogram per operation and counting errors by operation, status and
// problem code. Reports are JSON, a text table and a self-contained HTML chart.
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
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licensing/licensing/loadtest/hist"
	"github.com/licensing/licensing/loadtest/scenario"
	"github.com/licensing/licensing/loadtest/seed"
)

// Targets are the base URLs requests go to.
type Targets struct {
	Writer string
	Edges  []string
}

// Runner runs scenarios against targets with data from a manifest.
type Runner struct {
	Targets  Targets
	Manifest *seed.Manifest
	Client   *http.Client
	// RunID makes new instance names unique across runs.
	RunID string
	// Progress, when set, receives a line every ProgressEvery (DefaultProgressEvery when 0)
	// while a scenario, the lag measurement or a big-license phase runs: elapsed, requests
	// or samples, errors, the current rate.
	Progress      io.Writer
	ProgressEvery time.Duration

	seq    atomic.Int64
	mu     sync.Mutex
	hists  map[string]*hist.Histogram
	errs   map[string]int64
	counts map[string]int64
	brands map[string]seed.ManifestBrand
	tally  tally
}

// Result is one scenario run.
type Result struct {
	Scenario   scenario.Scenario       `json:"scenario"`
	Tool       string                  `json:"tool"`
	Variant    string                  `json:"variant,omitempty"` // e.g. "cold": first pass over the keys
	Started    time.Time               `json:"started"`
	Seconds    float64                 `json:"seconds"`
	Iterations int64                   `json:"iterations"`
	Dropped    int64                   `json:"dropped_iterations"`
	Requests   int64                   `json:"requests"`
	Errors     int64                   `json:"errors"`
	ErrorRate  float64                 `json:"error_rate"`
	RPS        float64                 `json:"requests_per_second"`
	Latency    hist.Summary            `json:"latency"`
	ByOp       map[string]hist.Summary `json:"by_operation"`
	ErrorsBy   map[string]int64        `json:"errors_by"`
	Outcomes   map[string]int64        `json:"outcomes"`
	Buckets    []hist.Bucket           `json:"buckets"`
	Pass       bool                    `json:"pass"`
	Failed     []string                `json:"failed_thresholds"`
	Note       string                  `json:"note,omitempty"`
	hist       *hist.Histogram
	opHists    map[string]*hist.Histogram
}

// NewRunner returns a runner with an HTTP client sized for maxConns connections per host.
func NewRunner(t Targets, m *seed.Manifest, maxConns int) *Runner {
	tr := &http.Transport{MaxIdleConns: maxConns * 4, MaxIdleConnsPerHost: maxConns, IdleConnTimeout: time.Minute}
	r := &Runner{Targets: t, Manifest: m, Client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		RunID: strconv.FormatInt(time.Now().UnixNano()%1e10, 36), brands: map[string]seed.ManifestBrand{}}
	for _, b := range m.Brands {
		r.brands[b.Slug] = b
	}
	return r
}

// Run runs one scenario to its end (or ctx's).
func (r *Runner) Run(ctx context.Context, sc scenario.Scenario) (*Result, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if err := r.check(sc); err != nil {
		return nil, err
	}
	r.hists, r.errs, r.counts = map[string]*hist.Histogram{}, map[string]int64{}, map[string]int64{}
	r.tally.requests.Store(0)
	r.tally.errors.Store(0)
	names, cum := sc.Ops()
	var iters, dropped atomic.Int64
	dur := sc.DurationValue()
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	defer r.progress(r.tallyProgress(sc.Name, dur, sc.Rate, &dropped))()
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	iteration := func(rng *rand.Rand) {
		op := sc.Pick(names, cum, rng.Float64())
		r.do(ctx, sc, op, rng)
		iters.Add(1)
	}
	switch sc.Executor {
	case scenario.ConstantArrivalRate:
		sem := make(chan struct{}, sc.MaxInFlight)
		interval := time.Second / time.Duration(sc.Rate)
		rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 1))
		for i := int64(0); ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if !at.Before(deadline) || ctx.Err() != nil {
				break
			}
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			select {
			case sem <- struct{}{}:
			default:
				dropped.Add(1)
				continue
			}
			seedv := rng.Uint64()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				iteration(rand.New(rand.NewPCG(seedv, 2)))
			}()
		}
	case scenario.ConstantVUs:
		for v := 0; v < sc.VUs; v++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(v)+10))
				for time.Now().Before(deadline) && ctx.Err() == nil {
					iteration(rng)
				}
			}()
		}
	}
	wg.Wait()
	el := time.Since(start)
	res := &Result{Scenario: sc, Tool: "go-harness", Started: start.UTC(), Seconds: el.Seconds(),
		Iterations: iters.Load(), Dropped: dropped.Load(), ErrorsBy: r.errs, Outcomes: r.counts,
		ByOp: map[string]hist.Summary{}, hist: hist.New(), opHists: r.hists}
	for op, h := range r.hists {
		res.hist.Merge(h)
		res.ByOp[op] = h.Summarize()
	}
	res.finish()
	return res, nil
}

// finish computes the totals and checks the thresholds.
func (res *Result) finish() {
	res.Latency = res.hist.Summarize()
	res.Buckets = res.hist.Buckets()
	res.Requests = int64(res.hist.Count())
	res.Errors = 0
	for _, n := range res.ErrorsBy {
		res.Errors += n
	}
	if res.Requests > 0 {
		res.ErrorRate = float64(res.Errors) / float64(res.Requests)
	}
	if res.Seconds > 0 {
		res.RPS = float64(res.Requests) / res.Seconds
	}
	th := res.Scenario.Thresholds
	res.Failed = nil
	if th.P95Ms > 0 && res.Latency.P95Ms >= th.P95Ms {
		res.Failed = append(res.Failed, fmt.Sprintf("p95 %.2f ms >= %.2f ms", res.Latency.P95Ms, th.P95Ms))
	}
	if th.P99Ms > 0 && res.Latency.P99Ms >= th.P99Ms {
		res.Failed = append(res.Failed, fmt.Sprintf("p99 %.2f ms >= %.2f ms", res.Latency.P99Ms, th.P99Ms))
	}
	if res.ErrorRate >= th.ErrorRate && (th.ErrorRate > 0 || res.Errors > 0) {
		res.Failed = append(res.Failed, fmt.Sprintf("error rate %.4f >= %.4f", res.ErrorRate, th.ErrorRate))
	}
	if res.Requests == 0 {
		res.Failed = append(res.Failed, "no request completed")
	}
	res.Pass = len(res.Failed) == 0
}

// check refuses a scenario the manifest cannot feed.
func (r *Runner) check(sc scenario.Scenario) error {
	m := r.Manifest
	need := map[string]int{
		scenario.OpStatus: len(m.Status), scenario.OpActivateFree: len(m.Free), scenario.OpActivateHot: len(m.NearFull),
		scenario.OpActivateUnlimited: len(m.Unlimited), scenario.OpActivateHotUnlimited: len(m.Unlimited),
		scenario.OpDeactivate: len(m.Active), scenario.OpLifecycle: len(m.Lifecycle),
	}
	for op := range sc.Mix {
		if need[op] == 0 {
			return fmt.Errorf("scenario %s: the manifest has no entries for %s", sc.Name, op)
		}
	}
	if sc.Target == "edges" && len(r.Targets.Edges) == 0 {
		return fmt.Errorf("scenario %s targets the edges, and none is configured", sc.Name)
	}
	return nil
}

func (r *Runner) base(sc scenario.Scenario, rng *rand.Rand) string {
	if sc.Target == "edges" {
		return r.Targets.Edges[rng.IntN(len(r.Targets.Edges))]
	}
	return r.Targets.Writer
}

func (r *Runner) newInstance() string {
	return fmt.Sprintf("https://lt-%s-%d.example.net", r.RunID, r.seq.Add(1))
}

// do runs one iteration of operation op.
func (r *Runner) do(ctx context.Context, sc scenario.Scenario, op string, rng *rand.Rand) {
	m := r.Manifest
	base := r.base(sc, rng)
	switch op {
	case scenario.OpStatus:
		t := m.Status[rng.IntN(len(m.Status))]
		u := base + "/v1/public/" + t.Brand + "/licenses/" + t.Key + "/status?product=" + url.QueryEscape(t.Product)
		if t.Instance != "" {
			u += "&instance=" + url.QueryEscape(t.Instance)
		}
		r.request(ctx, op, http.MethodGet, u, "", nil)
	case scenario.OpActivateFree, scenario.OpActivateHot, scenario.OpActivateUnlimited, scenario.OpActivateHotUnlimited:
		var t seed.Target
		switch op {
		case scenario.OpActivateFree:
			t = m.Free[rng.IntN(len(m.Free))]
		case scenario.OpActivateHot:
			t = m.NearFull[rng.IntN(min(max(sc.HotLicenses, 1), len(m.NearFull)))]
		case scenario.OpActivateUnlimited:
			t = m.Unlimited[rng.IntN(len(m.Unlimited))]
		default:
			t = m.Unlimited[0]
		}
		body := map[string]string{"license_key": t.Key, "product": t.Product, "instance": r.newInstance()}
		r.request(ctx, op, http.MethodPost, base+"/v1/public/"+t.Brand+"/activations", "", body)
	case scenario.OpDeactivate:
		t := m.Active[rng.IntN(len(m.Active))]
		body := map[string]string{"license_key": t.Key, "product": t.Product, "instance": t.Raw}
		r.request(ctx, op, http.MethodPost, base+"/v1/public/"+t.Brand+"/deactivations", "", body)
	case scenario.OpLifecycle:
		t := m.Lifecycle[rng.IntN(len(m.Lifecycle))]
		key := r.brands[t.Brand].APIKey
		for _, tr := range []string{"suspend", "resume"} {
			r.request(ctx, op, http.MethodPost, r.Targets.Writer+"/v1/licenses/"+t.LicenseID+"/"+tr, key, nil)
		}
	}
}

// request sends one request and records its latency and outcome under op.
func (r *Runner) request(ctx context.Context, op, method, u, token string, body any) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		r.record(op, 0, "bad_request", 0)
		return
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	t0 := time.Now()
	resp, err := r.Client.Do(req)
	if err != nil {
		r.record(op, 0, "transport", time.Since(t0))
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	code := ""
	if resp.StatusCode >= 300 {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(b, &p)
		code = p.Code
	}
	r.record(op, resp.StatusCode, code, d)
}

func (r *Runner) record(op string, status int, code string, d time.Duration) {
	key := fmt.Sprintf("%s %d %s", op, status, code)
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hists[op]
	if h == nil {
		h = hist.New()
		r.hists[op] = h
	}
	h.RecordDuration(d)
	r.counts[key]++
	r.tally.requests.Add(1)
	if !slices.Contains(scenario.Expected[op], status) {
		r.errs[key]++
		r.tally.errors.Add(1)
	}
}
