package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/licensing/licensing/internal/apitest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/edge/app"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/internal/natstest"
	"github.com/licensing/licensing/shared/resource"
	writerapp "github.com/licensing/licensing/writer/app"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const operatorToken = "op-secret-token"

// testLog is a JSON logger that writes warnings to the test log in -v mode.
func testLog(t testing.TB, name string) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name)
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// run starts fn (an app.Run) and returns its address; it is stopped when the test ends
// or when stop is called.
func run(t testing.TB, name string, fn func(ctx context.Context, ready chan<- string) error) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- fn(ctx, ready) }()
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("%s did not start: %v", name, err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("%s did not start in time", name)
	}
	var stopped atomic.Bool
	stop = func() {
		if !stopped.CompareAndSwap(false, true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s exited with %v", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not shut down", name)
		}
	}
	t.Cleanup(stop)
	return addr, stop
}

// world is one test's backing services. Its methods take the t of the (sub)test that
// calls them: a failure stops that test, and what they start stops when it ends.
type world struct {
	db    dbtest.DB
	nats  *natstest.Server
	redis string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	redis := dbtest.Env(t, dbtest.EnvRedis)
	db := dbtest.New(t)
	if db.ReplicaAppURL == "" {
		dbtest.Env(t, dbtest.EnvReplica)
	}
	waitReplay(t, db.AppURL, db.ReplicaAppURL)
	return &world{db: db, nats: natstest.Start(t), redis: redis}
}

// waitReplay waits until the replica has replayed the primary's WAL as of now (the fresh
// database's schema), so a test's first reads do not fail on a missing table.
func waitReplay(t testing.TB, primaryURL, replicaURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pgx.Connect(ctx, primaryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var lsn string
	if err := p.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := pgx.Connect(ctx, replicaURL)
		if err == nil {
			var ok bool
			err = r.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
			r.Close(ctx)
			if err == nil && ok {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("replica did not replay %s: %v", lsn, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writer starts a writer and returns a client for it; opts adjust its configuration.
func (w *world) writer(t testing.TB, opts ...func(*writerapp.Config)) *client {
	t.Helper()
	cfg := writerapp.Config{
		Addr: "127.0.0.1:0", DatabaseURL: w.db.AppURL, NATSURL: w.nats.URL(), OperatorToken: operatorToken,
		MaxConns: 20, ShutdownTimeout: 5 * time.Second, StatusMaxAge: time.Minute, OutboxPoll: 200 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	log := testLog(t, "writer")
	addr, stop := run(t, "writer", func(ctx context.Context, ready chan<- string) error {
		return writerapp.Run(ctx, cfg, log, ready)
	})
	c := newClient("http://" + addr)
	c.stop = stop
	return c
}

// edgeConfig is a test edge's configuration over this world's services.
func (w *world) edgeConfig(name, writerURL string) app.Config {
	return app.Config{
		Addr: "127.0.0.1:0", NodeID: name, ReplicaURL: w.db.ReplicaEdgeURL, PrimaryURL: w.db.EdgeURL,
		RedisAddr: w.redis, NATSURL: w.nats.URL(), WriterURL: writerURL,
		L1Bytes: 32 << 20, Ceiling: 30 * time.Second, NegativeTTL: 2 * time.Second, StaleIfError: 10 * time.Minute,
		StatusMaxAge: time.Minute, DBMaxConns: 8, DBTimeout: time.Second, BackendRate: 0, BackendConc: 32,
		WriterTimeout: 5 * time.Second, WriterMaxConns: 64, VersionRetain: time.Hour, ShutdownTimeout: 5 * time.Second,
		Registry: prometheus.NewRegistry(),
	}
}

// edge is a running edge node.
type edge struct {
	*client
	node *app.Node
	cfg  app.Config
}

func (w *world) edge(t testing.TB, cfg app.Config) *edge {
	t.Helper()
	var node *app.Node
	cfg.Started = func(n *app.Node) { node = n }
	log := testLog(t, cfg.NodeID)
	addr, stop := run(t, cfg.NodeID, func(ctx context.Context, ready chan<- string) error {
		return app.Run(ctx, cfg, log, ready)
	})
	c := newClient("http://" + addr)
	c.stop = stop
	return &edge{client: c, node: node, cfg: cfg}
}

// metric sums the samples of a counter (or histogram count) whose labels include want.
func (e *edge) metric(t testing.TB, name string, want ...string) float64 {
	t.Helper()
	mfs, err := e.cfg.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(want); i += 2 {
				if !hasLabel(m, want[i], want[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// client calls one server; the methods that fail the test take the caller's t.
type client struct {
	base string
	hc   *http.Client
	stop func()
}

func newClient(base string) *client {
	return &client{base: base, hc: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// resp is an HTTP answer.
type resp = apitest.Response

// do sends a request; err is a transport error or a missing X-Request-Id.
func (c *client) do(method, path, token string, body any, hdr ...string) (resp, error) {
	_, r, err := apitest.Do(c.hc, c.base, method, path, token, body, hdr...)
	if err == nil && r.Header.Get("X-Request-Id") == "" {
		err = fmt.Errorf("%s %s: no X-Request-Id", method, path)
	}
	return r, err
}

func (c *client) call(t testing.TB, method, path, token string, body any, hdr ...string) resp {
	t.Helper()
	r, err := c.do(method, path, token, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (c *client) must(t testing.TB, want int, method, path, token string, body any, hdr ...string) resp {
	t.Helper()
	r := c.call(t, method, path, token, body, hdr...)
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// brand creates a brand with products and returns its API key.
func (c *client) brand(t testing.TB, slug string, products ...string) string {
	t.Helper()
	var out resource.BrandCreated
	c.must(t, 201, "POST", "/v1/brands", operatorToken, map[string]string{"slug": slug, "name": slug}).JSON(t, &out)
	for _, p := range products {
		c.must(t, 201, "POST", "/v1/products", out.APIKey.Secret, map[string]string{"code": p, "name": p})
	}
	return out.APIKey.Secret
}

// licenseKey provisions a key with one license per product (expiry and seat limit optional).
func (c *client) licenseKey(t testing.TB, apiKey string, licenses ...map[string]any) resource.LicenseKey {
	t.Helper()
	var out resource.LicenseKey
	c.must(t, 201, "POST", "/v1/license-keys", apiKey, map[string]any{
		"customer_email": "buyer@example.com", "licenses": licenses}).JSON(t, &out)
	return out
}

// statusOf is a decoded status answer with its version and cache headers.
type statusOf struct {
	resource.Status
	HTTP    int
	Version int64
	Stale   bool
	Tier    string
	Raw     []byte
}

func (c *client) status(brand, key, query string) (statusOf, error) {
	p := "/v1/public/" + brand + "/licenses/" + url.PathEscape(key) + "/status"
	if query != "" {
		p += "?" + query
	}
	r, err := c.do("GET", p, "", nil)
	if err != nil {
		return statusOf{}, err
	}
	out := statusOf{HTTP: r.Status, Raw: r.Body, Stale: r.Header.Get("X-Cache-Stale") == "true", Tier: r.Header.Get("X-Cache")}
	if v := r.Header.Get("X-License-Version"); v != "" {
		fmt.Sscan(v, &out.Version)
	}
	if r.Status == 200 {
		if err := json.Unmarshal(r.Body, &out.Status); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (c *client) mustStatus(t testing.TB, brand, key, query string) statusOf {
	t.Helper()
	s, err := c.status(brand, key, query)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// eventually polls cond back to back (no sleeps) until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	last := ""
	for {
		ok, info := cond()
		if ok {
			return time.Since(start)
		}
		last = info
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, within, last)
		}
		runtime.Gosched()
	}
}

// withRegistry gives cfg a fresh metrics registry.
func withRegistry(cfg app.Config) app.Config {
	cfg.Registry = prometheus.NewRegistry()
	return cfg
}
