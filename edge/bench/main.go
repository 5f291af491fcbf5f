// Command bench measures the edge's status checks served from each read tier — L1
// (memory), L2 (Redis, L1 disabled), the replica (L1 and L2 disabled) — against a
// constant-response fasthttp server returning a body of the same size, with the same
// in-process load generator (fixed concurrency and duration), and prints a markdown
// table. The "signed L1" row asks the same questions with Accept: application/jose
// (offline leases: Ed25519-signed, reused within the iat second), and the table ends with
// its rate over the plain L1 rate of the same run (target ≥ 0.5). A second table compares, on each tier, status checks with instance= on licenses
// holding one activation with those on licenses holding -big activations (100 000 by
// default): the cost of an answer must not grow with the license. It creates its own
// database on the test Postgres (LICENSE_TEST_PG_URL, its replica
// LICENSE_TEST_REPLICA_URL, Redis LICENSE_TEST_REDIS_ADDR), seeds it, and drops it at the
// end. Run it through edge/bench/run.sh.
package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/edge/app"
	"github.com/licensing/licensing/migrations"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/license"
	"github.com/valyala/fasthttp"
)

func main() {
	var (
		conc     = flag.Int("concurrency", 64, "concurrent client connections")
		duration = flag.Duration("duration", 5*time.Second, "load duration per scenario")
		nkeys    = flag.Int("keys", 10000, "distinct license keys requested (uniformly at random)")
		pgURL    = flag.String("pg", os.Getenv("LICENSE_TEST_PG_URL"), "superuser URL of the Postgres primary")
		repURL   = flag.String("replica", os.Getenv("LICENSE_TEST_REPLICA_URL"), "superuser URL of its streaming replica")
		redis    = flag.String("redis", os.Getenv("LICENSE_TEST_REDIS_ADDR"), "Redis address")
		dbConns  = flag.Int("db-conns", 8, "edge connections to the replica")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		bigActs  = flag.Int("big", 100000, "activations of each big license (0: skip the big-license table)")
		only     = flag.String("only", "", "run only the scenarios whose name matches this regular expression (e.g. 'L1 \\(')")
	)
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *pgURL == "" || *repURL == "" || *redis == "" {
		fmt.Fprintln(os.Stderr, "bench: set LICENSE_TEST_PG_URL, LICENSE_TEST_REPLICA_URL and LICENSE_TEST_REDIS_ADDR (make services-test-up; eval \"$(deploy/local/services.sh env test)\")")
		os.Exit(2)
	}
	filter, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -only:", err)
		os.Exit(2)
	}
	if err := run(*pgURL, *repURL, *redis, *conc, *duration, *nkeys, *dbConns, *bigActs, filter); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type result struct {
	name     string
	reqs     int
	errs     int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r result) rps() float64 { return float64(r.reqs) / r.elapsed.Seconds() }

func run(pgURL, repURL, redisAddr string, conc int, d time.Duration, nkeys, dbConns, bigActs int, only *regexp.Regexp) error {
	ctx := context.Background()
	dbName := fmt.Sprintf("edge_bench_%d", os.Getpid())
	admin, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return err
	}
	if os.Getenv("BENCH_KEEP_DB") == "" {
		defer admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)") //nolint:errcheck
	}
	adminDB := withDB(pgURL, dbName, "")
	if err := migrations.Up(ctx, adminDB); err != nil {
		return err
	}
	keys, err := seed(ctx, adminDB, nkeys)
	if err != nil {
		return err
	}
	// instance= on one-site licenses (the keys above, one activation each) and on big
	// licenses (two keys, bigActs activations each), the same number of distinct
	// (key, instance) entries in each set
	var smallPaths, bigPaths []string
	if bigActs > 0 {
		fmt.Fprintf(os.Stderr, "seeding %d one-site licenses and 2 licenses of %d activations\n", nkeys, bigActs)
		bigKeys, err := seedInstances(ctx, adminDB, keys, bigActs)
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(7, 7))
		for i, k := range keys {
			smallPaths = append(smallPaths, "/v1/public/bench/licenses/"+k+"/status?product=pro&instance=site-"+strconv.Itoa(i)+".example")
			bk := bigKeys[i%len(bigKeys)]
			bigPaths = append(bigPaths, "/v1/public/bench/licenses/"+bk+"/status?product=pro&instance=big-"+strconv.Itoa(rng.IntN(bigActs))+".example")
		}
	}
	if err := waitReplay(ctx, adminDB, withDB(repURL, dbName, "")); err != nil {
		return err
	}
	paths := make([]string, len(keys))
	for i, k := range keys {
		paths[i] = "/v1/public/bench/licenses/" + k + "/status?product=pro"
	}

	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	signingKey, err := lease.GenerateKey() // a configured key: no ephemeral-key warning
	if err != nil {
		return err
	}
	base := app.Config{
		Addr: "127.0.0.1:0", NodeID: "bench", ReplicaURL: withDB(repURL, dbName, "license_edge"),
		PrimaryURL: withDB(pgURL, dbName, "license_edge"), RedisAddr: redisAddr, NATSURL: "off", WriterURL: "off",
		L1Bytes: 256 << 20, Ceiling: time.Hour, NegativeTTL: 5 * time.Second, StaleIfError: time.Minute,
		StatusMaxAge: time.Minute, DBMaxConns: dbConns, DBTimeout: 5 * time.Second, BackendRate: 0,
		BackendConc: 64, VersionRetain: time.Hour, ShutdownTimeout: 5 * time.Second,
		SigningKey: base64.StdEncoding.EncodeToString(signingKey.Seed()),
	}
	type row struct{ tier, base result }
	var rows []row
	type sizeRow struct {
		tier       string
		small, big []result
	}
	var sizeRows []sizeRow
	var baseSrv *fasthttp.Server
	var baseHC *fasthttp.HostClient
	scenarios := []struct {
		name   string
		l1     bool
		redis  bool
		limits bool
		signed bool
	}{
		{"L1 (memory)", true, true, false, false},
		// the same keys asked for signed answers (Accept: application/jose)
		{"signed L1 (memory, application/jose)", true, true, false, true},
		// the same with the rate limits on (numbers too high to refuse anything): what the
		// two Redis calls of a limited public request cost; every other row runs with the
		// limits off, as every load tool does
		{"L1, rate limits on", true, true, true, false},
		{"L2 (Redis, L1 off)", false, true, false, false},
		{"replica (L1, L2 off)", false, false, false, false},
	}
	var plainL1, signedL1 float64
	bodySize := 0
	for _, s := range scenarios {
		if !only.MatchString(s.name) {
			continue
		}
		cfg := base
		if !s.l1 {
			cfg.L1Bytes = 0
		}
		if !s.redis {
			cfg.RedisAddr = "off"
		}
		if s.limits {
			cfg.RateLimits, cfg.LimitStatus, cfg.LimitNotFound = "on", "1000000000/1s:1000000000", "1000000000/1s:1000000000"
			cfg.LimitKeyPrefix = fmt.Sprintf("bench-%d:", time.Now().UnixNano())
		}
		addr, stop, err := startEdge(cfg, log)
		if err != nil {
			return err
		}
		hc := client(addr, conc)
		accept := ""
		if s.signed {
			accept = "application/jose"
		}
		// warm: every key once (fills L1/L2), and learn the body size
		for i, p := range paths {
			n, err := get(hc, p, accept)
			if err != nil {
				stop()
				return fmt.Errorf("%s warm-up of key %d: %w", s.name, i, err)
			}
			if !s.signed {
				bodySize = n
			}
		}
		if baseSrv == nil {
			// the baseline: a constant answer of the same size, same client, same load
			body := make([]byte, bodySize)
			for i := range body {
				body[i] = 'x'
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				stop()
				return err
			}
			baseSrv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
				ctx.SetContentType("application/json")
				ctx.SetBody(body)
			}}
			go baseSrv.Serve(ln)     //nolint:errcheck
			defer baseSrv.Shutdown() //nolint:errcheck
			baseHC = client(ln.Addr().String(), conc)
		}
		// the baseline runs right before each tier, so both see the same machine load
		b := load("constant fasthttp", baseHC, paths, "", conc, d)
		tier := load(s.name, hc, paths, accept, conc, d)
		rows = append(rows, row{tier: tier, base: b})
		switch {
		case s.signed:
			signedL1 = tier.rps()
		case s.l1 && !s.limits:
			plainL1 = tier.rps()
		}
		if bigActs > 0 && !s.limits && !s.signed {
			for _, set := range [][]string{smallPaths, bigPaths} {
				for i, p := range set {
					if _, err := get(hc, p, ""); err != nil {
						stop()
						return fmt.Errorf("%s warm-up of instance path %d: %w", s.name, i, err)
					}
				}
			}
			sr := sizeRow{tier: s.name}
			for range 2 { // alternate, so drift on a shared machine hits both sets alike
				sr.small = append(sr.small, load("1 activation", hc, smallPaths, "", conc, d))
				sr.big = append(sr.big, load(fmt.Sprintf("%d activations", bigActs), hc, bigPaths, "", conc, d))
			}
			sizeRows = append(sizeRows, sr)
		}
		stop()
	}

	fmt.Printf("Edge status checks: %d connections, %v per run, %d keys, body %d bytes, GOMAXPROCS %d (%s)\n\n",
		conc, d, nkeys, bodySize, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	fmt.Println("Each tier is run right after a constant-response fasthttp server (same body size, same client); ratios are tier / constant.")
	fmt.Println()
	fmt.Println("| served from | req/s | p50 | p99 | errors | constant req/s | constant p50 | constant p99 | req/s ratio | p50 ratio | p99 ratio |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		t, b := r.tier, r.base
		fmt.Printf("| %s | %.0f | %v | %v | %d | %.0f | %v | %v | %.2f | %.2f | %.2f |\n", t.name, t.rps(),
			t.p50.Round(time.Microsecond), t.p99.Round(time.Microsecond), t.errs, b.rps(), b.p50.Round(time.Microsecond),
			b.p99.Round(time.Microsecond), t.rps()/b.rps(), float64(t.p50)/float64(b.p50), float64(t.p99)/float64(b.p99))
	}
	if plainL1 > 0 {
		fmt.Printf("\nSigned from L1 / plain from L1: %.2f (target ≥ 0.5; signed answers are reused within their iat second, so the ratio falls as distinct keys per second grow: %d keys here)\n",
			signedL1/plainL1, nkeys)
	}
	if len(sizeRows) > 0 {
		fmt.Printf("\nStatus with instance= on a license of %d activations vs a license of 1 activation (%d distinct (key, instance) each,\n", bigActs, nkeys)
		fmt.Println("two alternating runs per set, summed); cost ratio = small req/s ÷ big req/s (target ≤ 1.2).")
		fmt.Println()
		fmt.Println("| served from | 1 activation req/s | p50 | p99 | big req/s | p50 | p99 | errors | cost ratio |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range sizeRows {
			sm, bg := merge(r.small), merge(r.big)
			fmt.Printf("| %s | %.0f | %v | %v | %.0f | %v | %v | %d | %.2f |\n", r.tier, sm.rps(), sm.p50.Round(time.Microsecond),
				sm.p99.Round(time.Microsecond), bg.rps(), bg.p50.Round(time.Microsecond), bg.p99.Round(time.Microsecond),
				sm.errs+bg.errs, sm.rps()/bg.rps())
		}
	}
	return nil
}

// merge sums runs (requests and time; the percentiles are the runs' mean).
func merge(rs []result) result {
	var out result
	for _, r := range rs {
		out.reqs += r.reqs
		out.errs += r.errs
		out.elapsed += r.elapsed
		out.p50 += r.p50 / time.Duration(len(rs))
		out.p99 += r.p99 / time.Duration(len(rs))
	}
	return out
}

func startEdge(cfg app.Config, log *slog.Logger) (string, func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, log, ready) }()
	select {
	case addr := <-ready:
		return addr, func() { cancel(); <-done }, nil
	case err := <-done:
		cancel()
		return "", nil, err
	}
}

func client(addr string, conc int) *fasthttp.HostClient {
	return &fasthttp.HostClient{Addr: addr, MaxConns: conc, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
}

func get(hc *fasthttp.HostClient, path, accept string) (int, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(path)
	req.Header.SetHost("edge")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if err := hc.Do(req, resp); err != nil {
		return 0, err
	}
	if resp.StatusCode() != 200 {
		return 0, fmt.Errorf("status %d (from %s): %s", resp.StatusCode(), resp.Header.Peek("X-Cache"), resp.Body())
	}
	if ct := string(resp.Header.ContentType()); accept != "" && ct != accept {
		return 0, fmt.Errorf("content type %q, want %q", ct, accept)
	}
	return len(resp.Body()), nil
}

// load runs conc workers for d, each sending requests back to back (with an Accept
// header when accept is set).
func load(name string, hc *fasthttp.HostClient, paths []string, accept string, conc int, d time.Duration) result {
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := range conc {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			lat := make([]time.Duration, 0, 1<<16)
			e := 0
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			req.Header.SetHost("edge")
			if accept != "" {
				req.Header.Set("Accept", accept)
			}
			for {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				req.SetRequestURI(paths[rng.IntN(len(paths))])
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					e++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += e
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	r := result{name: name, reqs: len(all), errs: errs, elapsed: elapsed}
	if len(all) > 0 {
		r.p50 = all[len(all)/2]
		r.p99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

// seed creates brand "bench" with product "pro" and n keys with one license each.
func seed(ctx context.Context, url string, n int) ([]string, error) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = license.NewKey()
	}
	_, err = c.Exec(ctx, `
WITH b AS (INSERT INTO brands (id, slug, name) VALUES (gen_random_uuid(), 'bench', 'Bench') RETURNING id),
     p AS (INSERT INTO products (id, brand_id, code, name) SELECT gen_random_uuid(), b.id, 'pro', 'Pro' FROM b RETURNING id, brand_id),
     k AS (INSERT INTO license_keys (id, brand_id, key, customer_email)
           SELECT gen_random_uuid(), p.brand_id, key, 'bench@example.com' FROM p, unnest($1::text[]) AS key RETURNING id, brand_id)
INSERT INTO licenses (id, brand_id, license_key_id, product_id, status, expires_at, seat_limit, seats_used)
SELECT gen_random_uuid(), k.brand_id, k.id, p.id, 'valid', now() + interval '1 year', 3, 0 FROM k, p`, keys)
	return keys, err
}

// seedInstances gives keys[i] one activation ("site-<i>.example") and creates two more
// keys whose license holds n activations each ("big-<j>.example"); it returns those two.
func seedInstances(ctx context.Context, url string, keys []string, n int) ([]string, error) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `
INSERT INTO activations (id, brand_id, license_id, instance, version)
SELECT gen_random_uuid(), l.brand_id, l.id, 'site-' || (k.n - 1) || '.example', 2
FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n)
JOIN license_keys lk ON lk.key = k.key JOIN licenses l ON l.license_key_id = lk.id`, keys); err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, `UPDATE licenses SET seats_used = 1`); err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, `UPDATE license_keys SET version = 2`); err != nil {
		return nil, err
	}
	big := []string{license.NewKey(), license.NewKey()}
	for _, k := range big {
		if _, err := c.Exec(ctx, `
WITH b AS (SELECT id FROM brands WHERE slug = 'bench'), p AS (SELECT id FROM products WHERE code = 'pro'),
     k AS (INSERT INTO license_keys (id, brand_id, key, customer_email, version)
           SELECT gen_random_uuid(), b.id, $1, 'big@example.com', $2::bigint + 1 FROM b RETURNING id, brand_id),
     l AS (INSERT INTO licenses (id, brand_id, license_key_id, product_id, status, expires_at, seat_limit, seats_used)
           SELECT gen_random_uuid(), k.brand_id, k.id, p.id, 'valid', NULL, NULL, $2 FROM k, p RETURNING id, brand_id)
INSERT INTO activations (id, brand_id, license_id, instance, version)
SELECT gen_random_uuid(), l.brand_id, l.id, 'big-' || g || '.example', g + 2 FROM l, generate_series(0, $2 - 1) AS g`, k, n); err != nil {
			return nil, err
		}
	}
	_, err = c.Exec(ctx, "VACUUM ANALYZE activations")
	return big, err
}

func waitReplay(ctx context.Context, primary, replica string) error {
	p, err := pgx.Connect(ctx, primary)
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	var lsn string
	if err := p.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if r, err := pgx.Connect(ctx, replica); err == nil {
			var ok bool
			err = r.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
			r.Close(ctx)
			if err == nil && ok {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("replica did not replay %s", lsn)
}

func withDB(base, db, user string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Path = "/" + db
	if user != "" {
		u.User = url.UserPassword(user, user)
	}
	return u.String()
}
