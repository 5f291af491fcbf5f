package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/resource"
)

// LoadConfig shapes the load: brand backends provisioning keys and changing licenses on
// the writers, plugins activating and deactivating sites and checking status on the edges.
type LoadConfig struct {
	Provisioners int // workers provisioning license keys (default 2)
	Activators   int // workers activating, deactivating and changing licenses (default 4)
	Checkers     int // workers checking status (default 4)
	// Pacing per worker between operations (defaults 40ms, 20ms, 2ms).
	ProvisionEvery, ActivateEvery, CheckEvery time.Duration
	// Instances is the number of site names used per key (default 4; seat limits are 2–3,
	// so some activations are refused).
	Instances int
	// RetryFor bounds the retries of one write (default 90s).
	RetryFor time.Duration
	// WriteTimeout and CheckTimeout bound one request (defaults 5s, 2s).
	WriteTimeout, CheckTimeout time.Duration
}

func (c *LoadConfig) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Provisioners, 2)
	def(&c.Activators, 4)
	def(&c.Checkers, 4)
	def(&c.Instances, 4)
	defd(&c.ProvisionEvery, 40*time.Millisecond)
	defd(&c.ActivateEvery, 20*time.Millisecond)
	defd(&c.CheckEvery, 2*time.Millisecond)
	defd(&c.RetryFor, 90*time.Second)
	defd(&c.WriteTimeout, 5*time.Second)
	defd(&c.CheckTimeout, 2*time.Second)
}

// keyRec is an acknowledged license key.
type keyRec struct {
	Key      string
	Products []string
	Licenses map[string]string // product → license id
}

// Load runs the workers and journals everything.
type Load struct {
	t    *Topology
	j    *Journal
	cfg  LoadConfig
	run  string
	hc   *http.Client
	w, e *balancer

	mu    sync.Mutex
	keys  []*keyRec
	owned [][]*keyRec // per activator: the keys only it changes (per-key order is known)

	stopped atomic.Bool
	wg      sync.WaitGroup
	seq     atomic.Int64
}

// NewLoad prepares a load against t, journaling into j; run prefixes every name it makes.
func NewLoad(t *Topology, j *Journal, run string, cfg LoadConfig) *Load {
	cfg.defaults()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	return &Load{t: t, j: j, cfg: cfg, run: run, hc: &http.Client{Transport: tr},
		w: newBalancer(t.WriterURLs), e: newBalancer(t.EdgeURLs), owned: make([][]*keyRec, cfg.Activators)}
}

// Start starts the workers.
func (l *Load) Start(ctx context.Context) {
	for i := range l.cfg.Provisioners {
		l.spawn(ctx, func(ctx context.Context) { l.provision(ctx, i) }, l.cfg.ProvisionEvery)
	}
	for i := range l.cfg.Activators {
		l.spawn(ctx, func(ctx context.Context) { l.change(ctx, i) }, l.cfg.ActivateEvery)
	}
	for range l.cfg.Checkers {
		l.spawn(ctx, l.check, l.cfg.CheckEvery)
	}
}

func (l *Load) spawn(ctx context.Context, step func(context.Context), every time.Duration) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for !l.stopped.Load() && ctx.Err() == nil {
			step(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
	}()
}

// Stop stops the workers after the op each is on has a definitive answer (or its retries
// ran out).
func (l *Load) Stop() {
	l.stopped.Store(true)
	l.wg.Wait()
}

// Keys returns the acknowledged keys.
func (l *Load) Keys() []*keyRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*keyRec(nil), l.keys...)
}

func (l *Load) provision(ctx context.Context, worker int) {
	n := l.seq.Add(1)
	products := []string{"pro"}
	if n%2 == 0 {
		products = append(products, "addon")
	}
	var lics []map[string]any
	for _, p := range products {
		lics = append(lics, map[string]any{"product": p, "seat_limit": 2 + n%2,
			"expires_at": time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)})
	}
	email := fmt.Sprintf("p%d-%s@chaos.example", n, l.run)
	op := l.j.newOp(&Op{Kind: "provision", Email: email, IdemKey: fmt.Sprintf("%s-provision-%d", l.run, n), Start: time.Now()})
	body := map[string]any{"customer_email": email, "licenses": lics}
	b := l.write(ctx, op, l.w, "POST", "/v1/license-keys", body)
	if !op.Acked() {
		return
	}
	var k resource.LicenseKey
	if err := json.Unmarshal(b, &k); err != nil {
		op.Code = "harness: undecodable answer: " + err.Error()
		return
	}
	op.Key = k.Key
	op.Keys = append(op.Keys, k.Key)
	op.Licenses = map[string]string{}
	rec := &keyRec{Key: k.Key, Licenses: op.Licenses}
	for _, lic := range k.Licenses {
		op.Licenses[lic.Product] = lic.ID
		rec.Products = append(rec.Products, lic.Product)
	}
	l.mu.Lock()
	l.keys = append(l.keys, rec)
	a := len(l.keys) % l.cfg.Activators
	l.owned[a] = append(l.owned[a], rec)
	l.mu.Unlock()
}

// change makes one change to a key this activator owns: mostly activations and
// deactivations through the edges, sometimes a lifecycle change on a writer.
func (l *Load) change(ctx context.Context, worker int) {
	l.mu.Lock()
	own := l.owned[worker]
	var k *keyRec
	if len(own) > 0 {
		k = own[rand.IntN(len(own))]
	}
	l.mu.Unlock()
	if k == nil {
		return
	}
	product := k.Products[rand.IntN(len(k.Products))]
	lic := k.Licenses[product]
	n := l.seq.Add(1)
	idem := fmt.Sprintf("%s-change-%d", l.run, n)
	switch r := rand.Float64(); {
	case r < 0.9:
		kind, path := "activate", "/activations"
		if r >= 0.55 {
			kind, path = "deactivate", "/deactivations"
		}
		// one instance in five is a staging copy of a site: a development instance, which
		// takes no seat
		site := rand.IntN(l.cfg.Instances)
		raw := fmt.Sprintf("site-%d.example", site)
		if rand.IntN(5) == 0 {
			raw = fmt.Sprintf("https://staging.site-%d.example.com/", site)
		}
		inst, _ := license.NormalizeInstance(raw)
		op := l.j.newOp(&Op{Kind: kind, Key: k.Key, Product: product, LicenseID: lic, Instance: inst, IdemKey: idem,
			Dev: license.IsDevelopmentInstance(raw, nil), Start: time.Now()})
		b := l.write(ctx, op, l.e, "POST", "/v1/public/"+l.t.Brand+path,
			map[string]string{"license_key": k.Key, "product": product, "instance": raw})
		if kind == "activate" && op.Acked() {
			var out resource.ActivationResult
			if json.Unmarshal(b, &out) == nil {
				op.AnsweredDev = out.Activation.Development
			}
		}
	default:
		kinds := []string{"suspend", "resume", "renew"}
		kind := kinds[rand.IntN(len(kinds))]
		var body any
		if kind == "renew" {
			body = map[string]string{"expires_at": time.Now().AddDate(1, 0, int(n%300)).UTC().Format(time.RFC3339)}
		}
		op := l.j.newOp(&Op{Kind: kind, Key: k.Key, Product: product, LicenseID: lic, IdemKey: idem, Start: time.Now()})
		b := l.write(ctx, op, l.w, "POST", "/v1/licenses/"+lic+"/"+kind, body)
		if op.Acked() {
			var out resource.License
			if json.Unmarshal(b, &out) == nil {
				op.LicenseStatus = out.Status
			}
		}
	}
}

// check asks an edge for the status of an acknowledged key.
func (l *Load) check(ctx context.Context) {
	l.mu.Lock()
	var k *keyRec
	if len(l.keys) > 0 {
		k = l.keys[rand.IntN(len(l.keys))]
	}
	l.mu.Unlock()
	if k == nil {
		return
	}
	q := url.Values{}
	e := Entry{Kind: "status", Key: k.Key}
	if r := rand.IntN(3); r > 0 {
		e.Product = k.Products[rand.IntN(len(k.Products))]
		q.Set("product", e.Product)
		if r == 2 {
			e.Instance = fmt.Sprintf("site-%d.example", rand.IntN(l.cfg.Instances))
			q.Set("instance", e.Instance)
		}
	}
	path := "/v1/public/" + l.t.Brand + "/licenses/" + url.PathEscape(k.Key) + "/status"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	e, _ = l.do(ctx, e, l.e, "GET", path, nil, l.cfg.CheckTimeout)
	l.j.add(e)
}

// write sends op's request until it has a definitive answer (every 2xx and 4xx but
// 409 idempotency_in_progress and 429) or RetryFor passed, and returns the answer's body.
func (l *Load) write(ctx context.Context, op *Op, to *balancer, method, path string, body any) []byte {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	op.Method, op.Path, op.Body = method, path, raw
	for attempt := 1; ; attempt++ {
		e := Entry{Op: op.ID, Kind: op.Kind, Attempt: attempt, IdemKey: op.IdemKey, Key: op.Key, Product: op.Product, Instance: op.Instance}
		e, b := l.do(ctx, e, to, method, path, raw, l.cfg.WriteTimeout)
		l.j.add(e)
		op.Attempts = attempt
		if definitive(e) {
			op.Status, op.Code, op.End = e.Status, e.Code, time.Now()
			return b
		}
		if time.Since(op.Start) > l.cfg.RetryFor || ctx.Err() != nil {
			op.End = time.Now()
			return nil
		}
		backoff := min(time.Second, 50*time.Millisecond<<min(attempt, 5))
		select {
		case <-ctx.Done():
		case <-time.After(backoff/2 + rand.N(backoff/2)):
		}
	}
}

func definitive(e Entry) bool {
	switch {
	case e.Status >= 200 && e.Status < 300:
		return true
	case e.Status == 409 && e.Code == "idempotency_in_progress", e.Status == 429:
		return false
	case e.Status >= 400 && e.Status < 500:
		return true
	}
	return false
}

// do sends one request through the balancer: a node that does not answer at all is
// skipped for a second and the next one is tried (as a load balancer with passive health
// checks would). e is filled in with the answer.
func (l *Load) do(ctx context.Context, e Entry, to *balancer, method, path string, body []byte, timeout time.Duration) (Entry, []byte) {
	e.Start = time.Now()
	first := ""
	for tries := 0; tries < len(to.targets); tries++ {
		target := to.pick()
		if first == "" {
			first = target
		}
		e.Target, e.Failover = target, target != first
		rctx, cancel := context.WithTimeout(ctx, timeout)
		req, _ := http.NewRequestWithContext(rctx, method, target+path, bytes.NewReader(body))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if e.IdemKey != "" {
			req.Header.Set("Idempotency-Key", e.IdemKey)
		}
		if to == l.w {
			req.Header.Set("Authorization", "Bearer "+l.t.APIKey)
		}
		resp, err := l.hc.Do(req)
		if err != nil {
			cancel()
			to.failed(target)
			e.Status, e.Err = 0, err.Error()
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil {
			to.failed(target)
			e.Status, e.Err = 0, err.Error()
			continue
		}
		e.Status, e.Err = resp.StatusCode, ""
		e.Stale = resp.Header.Get("X-Cache-Stale") == "true"
		e.Version, _ = strconv.ParseInt(resp.Header.Get("X-License-Version"), 10, 64)
		if resp.StatusCode >= 400 {
			var p struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(b, &p)
			e.Code = p.Code
		}
		e.Latency = time.Since(e.Start)
		return e, b
	}
	e.Latency = time.Since(e.Start)
	return e, nil
}

// balancer spreads requests over nodes round robin, skipping for a second a node that
// did not answer.
type balancer struct {
	targets []string
	next    atomic.Uint64
	mu      sync.Mutex
	down    map[string]time.Time
}

func newBalancer(targets []string) *balancer {
	return &balancer{targets: targets, down: map[string]time.Time{}}
}

func (b *balancer) pick() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for range b.targets {
		t := b.targets[b.next.Add(1)%uint64(len(b.targets))]
		if now.After(b.down[t]) {
			return t
		}
	}
	return b.targets[b.next.Add(1)%uint64(len(b.targets))]
}

func (b *balancer) failed(t string) {
	b.mu.Lock()
	b.down[t] = time.Now().Add(time.Second)
	b.mu.Unlock()
}
