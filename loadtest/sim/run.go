package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/loadtest/chaos"
	"github.com/licensing/licensing/loadtest/harness"
	"github.com/licensing/licensing/shared/resource"
)

// Options shapes a run: the load, the scenarios' lengths and what is required.
type Options struct {
	// Baseline is the load before any fault (the comparison table).
	Baseline time.Duration
	// Partition is how long region A is cut off from the centre (black hole).
	Partition time.Duration
	// ReplicaLag is the extra delay on region B's replication link, for LagFor.
	ReplicaLag, LagFor time.Duration
	// EdgeDown is how long one edge of region B stays killed.
	EdgeDown time.Duration
	// Gap is the load between two scenarios (recovery is measured in it).
	Gap time.Duration
	// LagEvery paces the invalidation lag probes of each region.
	LagEvery time.Duration
	// Load is each region's load at its edges; Direct the same plugins' calls made to the
	// central writer through the region's link (lighter).
	Load, Direct chaos.LoadConfig
	// WriteDeadline bounds an activation answered during the partition (the edge's
	// writer timeout, 3 s, plus a margin).
	WriteDeadline time.Duration
	// RequireStale fails the run when the partitioned region's status answers that began
	// StaleWithoutStream (plus a second) into the partition are not all marked
	// X-Cache-Stale (reported in any case). On in both runs.
	RequireStale bool
}

// FullOptions is `make sim`: a 60 s partition.
func FullOptions() Options {
	return Options{Baseline: 20 * time.Second, Partition: 60 * time.Second, ReplicaLag: 3 * time.Second, LagFor: 15 * time.Second,
		EdgeDown: 15 * time.Second, Gap: 10 * time.Second, LagEvery: 500 * time.Millisecond,
		Load: chaos.LoadConfig{Provisioners: 1, Activators: 2, Checkers: 2, ProvisionEvery: 250 * time.Millisecond,
			ActivateEvery: 100 * time.Millisecond, CheckEvery: 10 * time.Millisecond, RetryFor: 3 * time.Minute},
		Direct: chaos.LoadConfig{Provisioners: 1, Activators: 1, Checkers: 1, ProvisionEvery: time.Second,
			ActivateEvery: 250 * time.Millisecond, CheckEvery: 50 * time.Millisecond, RetryFor: 3 * time.Minute},
		WriteDeadline: 4 * time.Second, RequireStale: true}
}

// ShortOptions is the shortened run of `make test`: an 8 s partition, seconds of load.
func ShortOptions() Options {
	o := FullOptions()
	o.Baseline, o.Partition, o.LagFor, o.EdgeDown, o.Gap = 3*time.Second, 8*time.Second, 5*time.Second, 4*time.Second, 2*time.Second
	o.ReplicaLag = 2 * time.Second
	return o
}

// Window is one scenario's time span.
type Window struct {
	Scenario    string
	Description string
	Region      string // the region the fault acts on ("" for the baseline)
	From, To    time.Time
}

// LagSample is one invalidation lag observation: from the writer's 2xx to both edges of
// the region answering the change.
type LagSample struct {
	Region string
	At     time.Time
	Lag    time.Duration // the slower edge; -1: not seen within the timeout
}

// regionRun is a region's load while the run lasts.
type regionRun struct {
	r                  *Region
	edge, direct       *chaos.Load
	edgeJ, directJ     *chaos.Journal
	lagKey, lagProduct string
	mu                 sync.Mutex
	lags               []LagSample
	probeErrs          int
	firstErr           string
	resident           []string // keys provisioned before the load, never changed
	residentEntries    []chaos.Entry
}

// Result is a whole run.
type Result struct {
	Opts    Options
	Start   time.Time
	End     time.Time
	Windows []Window
	Regions []*RegionResult
	Checks  []chaos.Check
	Notes   []string

	mu       sync.Mutex     // Notes and bgChecks, from the measurements that run in the background
	bg       sync.WaitGroup // those measurements
	bgChecks []chaos.Check
}

// StreamResumeBound is how soon after a partition heals the region's edges must follow
// the event stream again: the leaf link reconnects within a second, and the edges'
// watchdog recreates a stuck consumer within its 2 s period (nats.go's own reset alone
// took 17 s after a 60 s partition).
const StreamResumeBound = 8 * time.Second

// RegionResult is what one region's clients saw.
type RegionResult struct {
	Name          string
	RTT, Jitter   time.Duration
	Edge, Direct  []chaos.Entry
	Lags          []LagSample
	ops           []*chaos.Op
	created       map[string]time.Time // key → when its provisioning was acknowledged
	resident      map[string]bool      // keys provisioned before the run, never changed
	DirectOpCount int
}

// OK reports whether every check held.
func (res *Result) OK() bool {
	for _, c := range res.Checks {
		if !c.OK() {
			return false
		}
	}
	return true
}

func (res *Result) note(logf func(string, ...any), format string, args ...any) {
	res.mu.Lock()
	res.Notes = append(res.Notes, fmt.Sprintf(format, args...))
	res.mu.Unlock()
	logf(format, args...)
}

// Run runs the baseline and the three scenarios under load in every region, then checks.
func Run(ctx context.Context, w *World, o Options, logf func(string, ...any)) (*Result, error) {
	if len(w.Regions) < 2 {
		return nil, fmt.Errorf("the scenarios need two edge regions")
	}
	res := &Result{Opts: o, Start: time.Now()}
	runs := make([]*regionRun, len(w.Regions))
	hc := &http.Client{Timeout: 10 * time.Second}
	for i, r := range w.Regions {
		rr := &regionRun{r: r, edgeJ: &chaos.Journal{}, directJ: &chaos.Journal{}, lagProduct: "pro"}
		var k resource.LicenseKey
		if err := w.call(ctx, "POST", "/v1/license-keys", "Bearer "+w.APIKey, map[string]any{"customer_email": "lag-" + r.Spec.Name + "@sim.example",
			"licenses": []map[string]any{{"product": "pro", "expires_at": time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)}}}, 201, &k); err != nil {
			return nil, fmt.Errorf("lag key: %w", err)
		}
		rr.lagKey = k.Key
		for j := range Resident {
			var k resource.LicenseKey
			if err := w.call(ctx, "POST", "/v1/license-keys", "Bearer "+w.APIKey, map[string]any{"customer_email": fmt.Sprintf("resident-%d-%s@sim.example", j, r.Spec.Name),
				"licenses": []map[string]any{{"product": "pro", "seat_limit": 3, "expires_at": time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)}}}, 201, &k); err != nil {
				return nil, fmt.Errorf("resident key: %w", err)
			}
			rr.resident = append(rr.resident, k.Key)
		}
		run := fmt.Sprintf("sim-%s-%d", r.Spec.Name, time.Now().UnixNano()%1e9)
		rr.edge = chaos.NewLoad(w.View(r, r.EdgeURLs), rr.edgeJ, run+"-edge", o.Load)
		rr.direct = chaos.NewLoad(w.View(r, []string{r.WriterURL}), rr.directJ, run+"-direct", o.Direct)
		runs[i] = rr
	}
	lctx, stopLag := context.WithCancel(ctx)
	var lagWG sync.WaitGroup
	for _, rr := range runs {
		rr.edge.Start(ctx)
		rr.direct.Start(ctx)
		lagWG.Add(1)
		go func() { defer lagWG.Done(); rr.probeLag(lctx, w, hc, o) }()
		lagWG.Add(1)
		go func() { defer lagWG.Done(); rr.checkResident(lctx, w, o) }()
	}
	a, b := w.Regions[0], w.Regions[1]
	var healAt time.Time
	window := func(name, desc, region string, f func() error) error {
		win := Window{Scenario: name, Description: desc, Region: region, From: time.Now()}
		logf("%s: %s", name, desc)
		err := f()
		win.To = time.Now()
		if name == "partition" && !healAt.IsZero() {
			win.To = healAt
		}
		res.Windows = append(res.Windows, win)
		if err != nil {
			return err
		}
		return sleep(ctx, o.Gap)
	}
	var replicaMaxDelay time.Duration
	steps := []func() error{
		func() error {
			return window("baseline", "every link at its round trip, no fault", "", func() error { return sleep(ctx, o.Baseline) })
		},
		func() error {
			return window("partition", fmt.Sprintf("%s cut off from the centre for %v (black hole on its writer, primary, replication and leaf links)",
				a.Spec.Name, o.Partition), a.Spec.Name, func() error {
				for _, l := range a.Links() {
					if err := l.Blackhole(true); err != nil {
						return err
					}
				}
				// the load's two activators may both be retrying a deactivation or a
				// lifecycle change the whole partition long: a probe makes sure writes are
				// tried at the cut-off edges, whatever the load draws
				// (the last attempt starts early enough to end, answered or timed out, before
				// the links heal)
				pctx, stopProbe := context.WithTimeout(ctx, o.Partition-o.WriteDeadline-time.Second)
				defer stopProbe()
				probed := make(chan struct{})
				go func() { defer close(probed); runs[0].probeWrites(pctx, w, o) }()
				serr := sleep(ctx, o.Partition)
				<-probed
				healAt = time.Now() // the window ends here: what follows is the healing
				if err := heal(a, 30*time.Second); err != nil {
					return err
				}
				healed := time.Now()
				logf("%s: links healed in %v", a.Spec.Name, healed.Sub(healAt).Round(time.Millisecond))
				res.bg.Add(2)
				go func() {
					defer res.bg.Done()
					c := chaos.Check{Name: fmt.Sprintf("%s: after healing, both edges follow the event stream again (apply relay heartbeats) within %v", a.Spec.Name, StreamResumeBound), Checked: 1}
					if d, err := streamResumed(ctx, a, healAt, 2*time.Minute); err == nil {
						res.note(logf, "%s: after healing, both edges apply relay heartbeats again after %v", a.Spec.Name, d.Round(time.Millisecond))
						if d > StreamResumeBound {
							c.Failed = append(c.Failed, fmt.Sprintf("after %v", d.Round(time.Millisecond)))
						}
					} else {
						res.note(logf, "%s: stream after healing: %v", a.Spec.Name, err)
						c.Failed = append(c.Failed, err.Error())
					}
					res.mu.Lock()
					res.bgChecks = append(res.bgChecks, c)
					res.mu.Unlock()
				}()
				go func() {
					defer res.bg.Done()
					if d, err := caughtUp(ctx, w, a, healed); err == nil {
						res.note(logf, "%s: after healing, the replica replayed everything the primary had at the heal in %v", a.Spec.Name, d.Round(time.Millisecond))
					} else {
						res.note(logf, "%s: replica catch-up after healing: %v", a.Spec.Name, err)
					}
				}()
				return serr
			})
		},
		func() error {
			return window("replica-lag", fmt.Sprintf("%s's replica lags: %v more on its replication link for %v", b.Spec.Name, o.ReplicaLag, o.LagFor),
				b.Spec.Name, func() error {
					if err := b.ReplicationLink.Lag(o.ReplicaLag); err != nil {
						return err
					}
					t0 := time.Now()
					for time.Since(t0) < o.LagFor && ctx.Err() == nil {
						if d, err := replayDelay(ctx, w, b); err == nil && d > replicaMaxDelay {
							replicaMaxDelay = d
						}
						_ = sleep(ctx, 200*time.Millisecond)
					}
					return b.ReplicationLink.Lag(0)
				})
		},
		func() error {
			e := b.Edges[0]
			return window("edge-loss", fmt.Sprintf("%s killed (kill -9) for %v; clients retry the other edge", e.Name, o.EdgeDown), b.Spec.Name, func() error {
				if err := e.Kill(); err != nil {
					return err
				}
				serr := sleep(ctx, o.EdgeDown)
				if err := e.Start(ctx); err != nil {
					return err
				}
				return serr
			})
		},
	}
	var runErr error
	for _, s := range steps {
		if runErr = s(); runErr != nil {
			break
		}
	}
	stopLag()
	lagWG.Wait()
	res.bg.Wait()
	for _, rr := range runs {
		rr.edge.Stop()
		rr.direct.Stop()
	}
	res.End = time.Now()
	if runErr != nil {
		return res, runErr
	}
	if err := w.EnsureUp(ctx); err != nil {
		return res, err
	}
	lagCheck := chaos.Check{Name: fmt.Sprintf("the replica of %s lagged (at least %v behind while its link lagged)", b.Spec.Name, o.ReplicaLag/2), Checked: 1}
	if replicaMaxDelay < o.ReplicaLag/2 {
		lagCheck.Failed = append(lagCheck.Failed, fmt.Sprintf("at most %v behind: the fault did not act", replicaMaxDelay))
	}
	res.note(logf, "%s: replica replay delay up to %v while its replication link lagged %v more", b.Spec.Name, replicaMaxDelay.Round(time.Millisecond), o.ReplicaLag)
	res.Checks = append(res.Checks, lagCheck)

	logf("load stopped; checking")
	for _, rr := range runs {
		rres := &RegionResult{Name: rr.r.Spec.Name, RTT: rr.r.Spec.RTT, Jitter: rr.r.Spec.Jitter,
			Edge: rr.edgeJ.Entries(res.Start, res.End.Add(time.Hour)), Direct: rr.directJ.Entries(res.Start, res.End.Add(time.Hour))}
		rr.mu.Lock()
		rres.Lags = append([]LagSample(nil), rr.lags...)
		if rr.probeErrs > 0 {
			res.note(logf, "%s: %d lag probe activations at the writer failed (the first: %s)", rr.r.Spec.Name, rr.probeErrs, rr.firstErr)
		}
		rr.mu.Unlock()
		rres.ops = append(rr.edgeJ.Ops(), rr.directJ.Ops()...)
		rres.Edge = append(rres.Edge, rr.residentEntries...)
		rres.resident = map[string]bool{}
		for _, k := range rr.resident {
			rres.resident[k] = true
		}
		rres.created = map[string]time.Time{}
		for _, op := range rres.ops {
			if op.Kind == "provision" && op.Acked() {
				rres.created[op.Key] = op.End
			}
		}
		res.Regions = append(res.Regions, rres)
		c := chaos.NewChecker(w.View(rr.r, rr.r.EdgeURLs))
		// below the edges' 30 s revalidation ceiling: the stream, not the ceiling, converges them
		c.Converge = 15 * time.Second
		if err := c.Settle(ctx, time.Minute); err != nil {
			res.Checks = append(res.Checks, chaos.Check{Name: rr.r.Spec.Name + ": outbox drained", Failed: []string{err.Error()}})
		}
		for _, ch := range c.All(ctx, rres.ops) {
			ch.Name = rr.r.Spec.Name + ": " + ch.Name
			res.Checks = append(res.Checks, ch)
		}
		res.Checks = append(res.Checks, monotonic(rres), never404(rres), lagsSeen(rres, res.window("partition")))
	}
	res.Checks = append(res.Checks, res.scenarioChecks(o)...)
	res.Checks = append(res.Checks, res.bgChecks...)
	return res, nil
}

// heal removes the black holes from every link of r, failing when that takes longer than
// bound (the run fails instead of hanging).
func heal(r *Region, bound time.Duration) error {
	done := make(chan error, 1)
	go func() {
		var err error
		for _, l := range r.Links() {
			if e := l.Blackhole(false); e != nil && err == nil {
				err = e
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(bound):
		return fmt.Errorf("%s: the links did not heal within %v", r.Spec.Name, bound)
	}
}

// probeLag measures invalidation lag: an activation of a new instance of the region's lag
// key at the writer (from the centre), then both edges of the region polled every 5 ms
// until they answer it activated (an edge that is not running is not waited for); the
// instance is deactivated afterwards.
func (rr *regionRun) probeLag(ctx context.Context, w *World, hc *http.Client, o Options) {
	timeout := o.Partition + 30*time.Second
	for i := 0; ctx.Err() == nil; i++ {
		inst := fmt.Sprintf("https://lag-%s-%d.example.net", rr.r.Spec.Name, i)
		body, _ := json.Marshal(map[string]string{"license_key": rr.lagKey, "product": rr.lagProduct, "instance": inst})
		path := "/v1/public/" + w.Brand + "/licenses/" + url.PathEscape(rr.lagKey) + "/status?product=" + rr.lagProduct + "&instance=" + url.QueryEscape(inst)
		for _, e := range rr.r.EdgeURLs { // warm: the edges now hold the old answer
			_, _ = harness.Activated(ctx, hc, e+path)
		}
		if err := post(ctx, hc, w.WriterURL+"/v1/public/"+w.Brand+"/activations", body); err != nil {
			rr.mu.Lock()
			rr.probeErrs++
			if rr.probeErrs == 1 {
				rr.firstErr = err.Error()
			}
			rr.mu.Unlock()
		} else {
			committed := time.Now()
			var wg sync.WaitGroup
			lags := make([]time.Duration, len(rr.r.EdgeURLs))
			for j, e := range rr.r.EdgeURLs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					lags[j] = -1
					for ctx.Err() == nil && time.Since(committed) < timeout {
						if !rr.r.Edges[j].Running() {
							lags[j] = skipped // a killed edge has nothing to show (edge-loss)
							return
						}
						if ok, _ := harness.Activated(ctx, hc, e+path); ok {
							lags[j] = time.Since(committed)
							return
						}
						_ = sleep(ctx, 5*time.Millisecond)
					}
				}()
			}
			wg.Wait()
			if ctx.Err() != nil {
				return
			}
			worst, seen := time.Duration(0), 0
			for _, l := range lags {
				if l == skipped {
					continue
				}
				if l < 0 {
					worst = -1
					break
				}
				worst, seen = max(worst, l), seen+1
			}
			if seen == 0 && worst == 0 {
				worst = -1
			}
			rr.mu.Lock()
			rr.lags = append(rr.lags, LagSample{Region: rr.r.Spec.Name, At: committed, Lag: worst})
			rr.mu.Unlock()
			_ = post(ctx, hc, w.WriterURL+"/v1/public/"+w.Brand+"/deactivations", body)
		}
		_ = sleep(ctx, o.LagEvery)
	}
}

// skipped marks an edge the lag probe did not wait for: it was not running.
const skipped = time.Duration(-2)

// Resident is the number of keys per region provisioned before the load and never
// changed: the region holds them when a fault begins, whatever the load was doing.
const Resident = 20

// checkResident asks the region's edges, in turn, for the status of its resident keys
// (a client that gets no answer tries the other edge), journaling every answer.
func (rr *regionRun) checkResident(ctx context.Context, w *World, o Options) {
	hc := &http.Client{Timeout: o.Load.CheckTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	if hc.Timeout == 0 {
		hc.Timeout = 2 * time.Second
	}
	for i := 0; ctx.Err() == nil; i++ {
		key := rr.resident[i%len(rr.resident)]
		e := chaos.Entry{Kind: "status", Key: key, Start: time.Now()}
		for try := range len(rr.r.EdgeURLs) {
			e.Target = rr.r.EdgeURLs[(i+try)%len(rr.r.EdgeURLs)]
			e.Failover = try > 0
			req, _ := http.NewRequestWithContext(ctx, "GET", e.Target+"/v1/public/"+w.Brand+"/licenses/"+url.PathEscape(key)+"/status", nil)
			resp, err := hc.Do(req)
			if err != nil {
				e.Status, e.Err = 0, err.Error()
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			e.Status, e.Err = resp.StatusCode, ""
			e.Stale = resp.Header.Get("X-Cache-Stale") == "true"
			e.Version, _ = strconv.ParseInt(resp.Header.Get("X-License-Version"), 10, 64)
			break
		}
		e.Latency = time.Since(e.Start)
		if ctx.Err() != nil {
			return
		}
		rr.mu.Lock()
		rr.residentEntries = append(rr.residentEntries, e)
		rr.mu.Unlock()
		_ = sleep(ctx, 20*time.Millisecond)
	}
}

// probeWrites activates a new instance of the region's lag key at each of its edges in
// turn, one attempt a second until ctx ends, journaling every answer as an activation at
// the edge (the scenario checks want a clean 503 within the write deadline while the
// region is cut off). No attempt starts once ctx has ended; one under way runs to its
// answer or its timeout, the write deadline plus a second.
func (rr *regionRun) probeWrites(ctx context.Context, w *World, o Options) {
	hc := &http.Client{Timeout: o.WriteDeadline + time.Second}
	for i := 0; ; i++ {
		if sleep(ctx, time.Second) != nil {
			return
		}
		inst := fmt.Sprintf("https://cut-%s-%d.example.net", rr.r.Spec.Name, i)
		body, _ := json.Marshal(map[string]string{"license_key": rr.lagKey, "product": rr.lagProduct, "instance": inst})
		e := chaos.Entry{Kind: "activate", Target: rr.r.EdgeURLs[i%len(rr.r.EdgeURLs)], Key: rr.lagKey, Product: rr.lagProduct, Instance: inst, Start: time.Now()}
		req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), "POST", e.Target+"/v1/public/"+w.Brand+"/activations", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		e.Latency = time.Since(e.Start)
		if err != nil {
			e.Err = err.Error()
		} else {
			var p struct {
				Code string `json:"code"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			e.Status, e.Code = resp.StatusCode, p.Code
		}
		rr.mu.Lock()
		rr.residentEntries = append(rr.residentEntries, e)
		rr.mu.Unlock()
	}
}

func post(ctx context.Context, hc *http.Client, u string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %d %s", u, resp.StatusCode, b)
	}
	return nil
}

// streamResumed waits until every edge of r has applied a relay heartbeat it had not
// applied at t0 (the change stream reaches it again) and returns how long after t0.
func streamResumed(ctx context.Context, r *Region, t0 time.Time, bound time.Duration) (time.Duration, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	base := make([]float64, len(r.EdgeURLs))
	for i, u := range r.EdgeURLs {
		base[i], _ = chaos.Metric(ctx, hc, u, "license_edge_heartbeats_applied_total")
	}
	for time.Since(t0) < bound {
		all := true
		for i, u := range r.EdgeURLs {
			v, err := chaos.Metric(ctx, hc, u, "license_edge_heartbeats_applied_total")
			all = all && err == nil && v > base[i]
		}
		if all {
			return time.Since(t0), nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("no heartbeat applied by every edge within %v", bound)
}

// caughtUp waits until the region's replica replayed the primary's WAL position at t0
// and returns how long after t0 that was.
func caughtUp(ctx context.Context, w *World, r *Region, t0 time.Time) (time.Duration, error) {
	p, err := pgx.Connect(ctx, w.AdminURL)
	if err != nil {
		return 0, err
	}
	defer p.Close(ctx)
	var lsn string
	if err := p.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return 0, err
	}
	rc, err := pgx.Connect(ctx, r.ReplicaURL)
	if err != nil {
		return 0, err
	}
	defer rc.Close(ctx)
	for time.Since(t0) < 2*time.Minute {
		var done bool
		if err := rc.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", lsn).Scan(&done); err == nil && done {
			return time.Since(t0), nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("not caught up after 2 minutes")
}

// replayDelay is how far the region's replica is behind, as the primary sees it
// (pg_stat_replication.replay_lag: from a local flush to the standby's replay of it).
func replayDelay(ctx context.Context, w *World, r *Region) (time.Duration, error) {
	p, err := pgx.Connect(ctx, w.AdminURL)
	if err != nil {
		return 0, err
	}
	defer p.Close(ctx)
	var secs *float64
	err = p.QueryRow(ctx, `SELECT extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication WHERE application_name = $1`,
		r.Spec.Name).Scan(&secs)
	if err != nil || secs == nil {
		return 0, err
	}
	return time.Duration(*secs * float64(time.Second)), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// ------------------------------------------------------------------- checks

// monotonic: no edge goes backwards. For each edge and key, an answer that began after
// another answer of the same edge ended carries a version at least as new.
func monotonic(rr *RegionResult) chaos.Check {
	ch := chaos.Check{Name: rr.Name + ": no edge goes backwards (X-License-Version per edge and key never decreases)"}
	type k struct{ target, key string }
	by := map[k][]chaos.Entry{}
	for _, e := range rr.Edge {
		if e.Kind == "status" && e.Status == 200 && e.Version > 0 {
			by[k{e.Target, e.Key}] = append(by[k{e.Target, e.Key}], e)
		}
	}
	for key, es := range by {
		byStart := append([]chaos.Entry(nil), es...)
		sort.Slice(byStart, func(i, j int) bool { return byStart[i].Start.Before(byStart[j].Start) })
		byEnd := append([]chaos.Entry(nil), es...)
		end := func(e chaos.Entry) time.Time { return e.Start.Add(e.Latency) }
		sort.Slice(byEnd, func(i, j int) bool { return end(byEnd[i]).Before(end(byEnd[j])) })
		var done int64
		var doneAt time.Time
		j := 0
		for _, e := range byStart {
			for j < len(byEnd) && end(byEnd[j]).Before(e.Start) {
				if byEnd[j].Version > done {
					done, doneAt = byEnd[j].Version, end(byEnd[j])
				}
				j++
			}
			ch.Checked++
			if e.Version < done {
				if len(ch.Failed) < 10 {
					ch.Failed = append(ch.Failed, fmt.Sprintf("%s key %s: v%d at %s after v%d answered by %s",
						key.target, key.key, e.Version, e.Start.Format("15:04:05.000"), done, doneAt.Format("15:04:05.000")))
				} else {
					ch.Failed[9] = "… and more"
				}
			}
		}
	}
	return ch
}

// never404: an acknowledged key is never answered 404 at the region's edges.
func never404(rr *RegionResult) chaos.Check {
	ch := chaos.Check{Name: rr.Name + ": acknowledged keys never answered 404 at an edge"}
	for _, e := range rr.Edge {
		if e.Kind != "status" {
			continue
		}
		ch.Checked++
		if e.Status == 404 && len(ch.Failed) < 10 {
			ch.Failed = append(ch.Failed, fmt.Sprintf("%s key %s at %s", e.Target, e.Key, e.Start.Format("15:04:05.000")))
		}
	}
	return ch
}

// LagBound bounds the invalidation lag outside a partition: well under the edges' 30 s
// revalidation ceiling, so a change that arrived in time came through the stream.
const LagBound = 10 * time.Second

// lagsSeen: every invalidation reached both edges of the region, within LagBound unless
// the region was partitioned when it was made (then within the probe's timeout: the
// partition plus 30 s).
func lagsSeen(rr *RegionResult, p Window) chaos.Check {
	ch := chaos.Check{Name: fmt.Sprintf("%s: every change reached both edges of the region (within %v outside its partition)", rr.Name, LagBound)}
	for _, l := range rr.Lags {
		ch.Checked++
		cut := p.Region == rr.Name && l.At.After(p.From.Add(-LagBound)) && l.At.Before(p.To)
		switch {
		case l.Lag < 0:
			ch.Failed = append(ch.Failed, fmt.Sprintf("change at %s never seen", l.At.Format("15:04:05.000")))
		case l.Lag > LagBound && !cut:
			ch.Failed = append(ch.Failed, fmt.Sprintf("change at %s seen after %v", l.At.Format("15:04:05.000"), l.Lag))
		}
	}
	if ch.Checked == 0 {
		ch.Failed = append(ch.Failed, "no lag sample")
	}
	return ch
}

func (res *Result) window(name string) Window {
	for _, w := range res.Windows {
		if w.Scenario == name {
			return w
		}
	}
	return Window{}
}

func (res *Result) region(name string) *RegionResult {
	for _, r := range res.Regions {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// scenarioChecks: what each fault must leave intact while it lasts.
func (res *Result) scenarioChecks(o Options) []chaos.Check {
	var out []chaos.Check
	p := res.window("partition")
	a := res.region(p.Region)
	if a != nil {
		avail := chaos.Check{Name: fmt.Sprintf("%s partitioned: status of the keys it held is answered (≥ 99%% 200 for %d resident keys)", a.Name, Resident)}
		stale := chaos.Check{Name: fmt.Sprintf("%s partitioned: status answers marked X-Cache-Stale once its edges heard nothing from the centre for %v", a.Name, StaleWithoutStream)}
		acts := chaos.Check{Name: fmt.Sprintf("%s partitioned: activations and deactivations at its edges fail with a clean 503 within %v", a.Name, o.WriteDeadline)}
		ok, marked := 0, 0
		cutOff, cutOffMarked := 0, 0 // answers that began once the edges knew they were cut off
		other := map[string]int{}    // the load's keys: answer → count
		for _, e := range a.Edge {
			if e.Start.Before(p.From) || !e.Start.Before(p.To) {
				continue
			}
			if e.Kind == "status" {
				if !a.resident[e.Key] {
					// the load's keys: created or changed just before or during the
					// partition, the region may not have them (its replica had not replayed
					// them, or the edge knew of a newer version than the replica's and
					// must ask the primary, which it cannot reach): 503, never 404
					other[fmt.Sprintf("%d%s", e.Status, map[bool]string{true: " stale"}[e.Stale])]++
					continue
				}
				avail.Checked++
				if e.Status == 200 {
					ok++
					if e.Stale {
						marked++
					}
					if !e.Start.Before(p.From.Add(StaleWithoutStream + time.Second)) {
						cutOff++
						if e.Stale {
							cutOffMarked++
						}
					}
				} else if len(avail.Failed) < 10 {
					avail.Failed = append(avail.Failed, fmt.Sprintf("%s key %s at %s: %d %s %s after %v", e.Target, e.Key, e.Start.Format("15:04:05.000"),
						e.Status, e.Code, e.Err, e.Latency.Round(time.Millisecond)))
				}
				continue
			}
			if (e.Kind != "activate" && e.Kind != "deactivate") || !e.Start.Add(e.Latency).Before(p.To) {
				continue
			}
			acts.Checked++
			if e.Status != 503 || e.Latency > o.WriteDeadline {
				if len(acts.Failed) < 10 {
					acts.Failed = append(acts.Failed, fmt.Sprintf("%s at %s: %d %s %s after %v", e.Target, e.Start.Format("15:04:05.000"), e.Status, e.Code, e.Err, e.Latency.Round(time.Millisecond)))
				}
			}
		}
		if avail.Checked > 0 && float64(ok) < 0.99*float64(avail.Checked) {
			avail.Failed = append([]string{fmt.Sprintf("%d of %d answered 200", ok, avail.Checked)}, avail.Failed...)
		} else {
			avail.Failed = nil // under 1 % refused: reported in the table
		}
		res.Notes = append(res.Notes, fmt.Sprintf("%s partitioned: status of the load's keys (created and changed all the time, also just before it), by answer: %v", a.Name, other))
		if avail.Checked == 0 {
			avail.Failed = append(avail.Failed, "no status check during the partition")
		}
		if acts.Checked == 0 {
			acts.Failed = append(acts.Failed, "no activation during the partition")
		}
		stale.Checked = cutOff
		res.Notes = append(res.Notes, fmt.Sprintf("%s partitioned: %d of %d status answers (200) marked X-Cache-Stale; %d of the %d that began %v after the cut or later",
			a.Name, marked, ok, cutOffMarked, cutOff, StaleWithoutStream+time.Second))
		if (cutOff == 0 || cutOffMarked < cutOff) && o.RequireStale {
			stale.Failed = append(stale.Failed, fmt.Sprintf("%d of %d answers that began %v after the cut or later marked stale",
				cutOffMarked, cutOff, StaleWithoutStream+time.Second))
		}
		out = append(out, avail, acts)
		if o.RequireStale {
			out = append(out, stale)
		}
	}
	d := res.window("edge-loss")
	if b := res.region(d.Region); b != nil {
		avail := chaos.Check{Name: fmt.Sprintf("%s lost an edge: status answered by the other (≥ 99%% 200)", b.Name)}
		ok := 0
		for _, e := range b.Edge {
			if e.Kind == "status" && !e.Start.Before(d.From) && e.Start.Before(d.To) {
				avail.Checked++
				if e.Status == 200 {
					ok++
				}
			}
		}
		if avail.Checked == 0 || float64(ok) < 0.99*float64(avail.Checked) {
			avail.Failed = append(avail.Failed, fmt.Sprintf("%d of %d answered 200", ok, avail.Checked))
		}
		out = append(out, avail)
	}
	return out
}
