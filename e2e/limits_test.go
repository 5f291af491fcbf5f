package e2e

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/ratelimit"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/resource"
	writerapp "github.com/licensing/licensing/writer/app"
)

// The rate limits of API.md's table, through the writers and edges (app.Run, as the
// binaries run it) and the real Redis: per row, the burst is served, the next request is
// 429 with Retry-After and the RateLimit headers, the budget is shared by two instances,
// and with Redis stopped each instance still limits alone and nothing answers 5xx. The
// test clients connect from their own loopback addresses (127.0.0.x) so that each row
// starts with a fresh per-IP budget; each test's Redis keys carry a prefix of its own.

// clientFrom is a client whose connections come from the local address src.
func clientFrom(base, src string) *client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &client{base: base, hc: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}}
}

// limitTimeout bounds the limiters' Redis calls in these tests. At the default 100 ms a
// loaded machine (go test -race on 2 cores) times a few calls out, the limiter decides
// locally and skips Redis for a while, and two instances then grant two budgets: the
// sharing these tests check would not be what they measure.
const limitTimeout = time.Second

func limitPrefix(t *testing.T) string {
	return fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
}

// checkBurst sends n requests (8 at a time) and checks them against row p: at least the
// burst is served, at most the burst plus what refilled meanwhile (+1 for rounding), the
// others are 429 rate_limited with Retry-After and p's headers, none is 5xx. send gets
// the request's number.
func checkBurst(t *testing.T, p ratelimit.Policy, n int, send func(i int) (resp, error)) {
	t.Helper()
	var (
		mu       sync.Mutex
		allowed  int
		problems []string
		wg       sync.WaitGroup
	)
	next := make(chan int)
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, err := send(i)
				mu.Lock()
				switch {
				case err != nil:
					problems = append(problems, fmt.Sprintf("request %d: %v", i, err))
				case r.Status >= 500:
					problems = append(problems, fmt.Sprintf("request %d: %d %s", i, r.Status, r.Body))
				case r.Status == http.StatusTooManyRequests:
					ra, _ := strconv.Atoi(r.Header.Get("Retry-After"))
					if r.Code() != "rate_limited" || ra < 1 || r.Header.Get("RateLimit-Policy") != p.PolicyHeader() ||
						!strings.HasPrefix(r.Header.Get("RateLimit"), strconv.Quote(p.Name)+";r=0;t=") {
						problems = append(problems, fmt.Sprintf("request %d: 429 %s Retry-After %q RateLimit-Policy %q RateLimit %q",
							i, r.Body, r.Header.Get("Retry-After"), r.Header.Get("RateLimit-Policy"), r.Header.Get("RateLimit")))
					}
				default:
					allowed++
					if r.Header.Get("RateLimit-Policy") != p.PolicyHeader() || r.Header.Get("RateLimit") == "" {
						problems = append(problems, fmt.Sprintf("request %d: %d without the row's headers: %q %q",
							i, r.Status, r.Header.Get("RateLimit-Policy"), r.Header.Get("RateLimit")))
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	for _, p := range problems {
		t.Error(p)
	}
	most := p.Burst + int(math.Ceil(float64(p.Rate)/p.Period.Seconds()*took.Seconds())) + 1
	if allowed < p.Burst || allowed > most {
		t.Errorf("%s: %d of %d served in %v; want %d to %d", p.Name, allowed, n, took, p.Burst, most)
	}
}

// limited starts writers with the limits on, sharing Redis and a key prefix.
func (w *world) limitedWriters(t testing.TB, n int, redisAddr, prefix string, extra ...func(*writerapp.Config)) []*client {
	var out []*client
	for range n {
		out = append(out, w.writer(t, append([]func(*writerapp.Config){func(c *writerapp.Config) {
			c.RateLimits, c.RedisAddr, c.LimitKeyPrefix, c.LimitTimeout = "on", redisAddr, prefix, limitTimeout
		}}, extra...)...))
	}
	return out
}

// TestWriterRateLimits: every row of the table on two writers sharing Redis.
func TestWriterRateLimits(t *testing.T) {
	w := newWorld(t)
	ws := w.limitedWriters(t, 2, w.redis, limitPrefix(t))
	a := ws[0]
	apiKey := a.brand(t, "lim", "pro")
	lk := a.licenseKey(t, apiKey, map[string]any{"product": "pro", "seat_limit": 1000})
	from := func(src string) []*client {
		return []*client{clientFrom(ws[0].base, src), clientFrom(ws[1].base, src)}
	}

	t.Run("brand API key", func(t *testing.T) {
		var fresh resource.APIKey
		a.must(t, 201, "POST", "/v1/brands/lim/api-keys", operatorToken, map[string]any{}).JSON(t, &fresh)
		checkBurst(t, ratelimit.Brand, 130, func(i int) (resp, error) {
			return ws[i%2].do("GET", "/v1/products", fresh.Secret, nil)
		})
		// the operator sets the brand's own limit: the next request of every key of the
		// brand is counted against it
		var b resource.Brand
		a.must(t, 200, "PATCH", "/v1/brands/lim", operatorToken, map[string]any{"rate_limit": map[string]int{"per_second": 1, "burst": 5}}).JSON(t, &b)
		if b.RateLimit == nil || *b.RateLimit != (resource.RateLimit{PerSecond: 1, Burst: 5}) {
			t.Fatalf("brand after PATCH: %+v", b)
		}
		var key3 resource.APIKey
		a.must(t, 201, "POST", "/v1/brands/lim/api-keys", operatorToken, map[string]any{}).JSON(t, &key3)
		own := ratelimit.Policy{Name: ratelimit.Brand.Name, Rate: 1, Period: time.Second, Burst: 5}
		checkBurst(t, own, 10, func(i int) (resp, error) { return ws[i%2].do("GET", "/v1/products", key3.Secret, nil) })
		a.must(t, 200, "PATCH", "/v1/brands/lim", operatorToken, map[string]any{"rate_limit": nil}).JSON(t, &b)
		if b.RateLimit != nil {
			t.Fatalf("rate_limit not cleared: %+v", b)
		}
		for _, bad := range []any{map[string]any{}, map[string]any{"rate_limit": map[string]int{"per_second": 0, "burst": 5}},
			map[string]any{"rate_limit": map[string]int{"per_second": 5}}, map[string]any{"rate_limit": 5}} {
			if r := a.call(t, "PATCH", "/v1/brands/lim", operatorToken, bad); r.Status/100 != 4 || r.Code() != "invalid_request" {
				t.Errorf("PATCH %v: %d %s", bad, r.Status, r.Body)
			}
		}
		if r := a.call(t, "PATCH", "/v1/brands/nope", operatorToken, map[string]any{"rate_limit": nil}); r.Status != 404 {
			t.Errorf("PATCH unknown brand: %d", r.Status)
		}
	})

	t.Run("status per IP", func(t *testing.T) {
		cs := from("127.0.0.11")
		path := "/v1/public/lim/licenses/" + lk.Key + "/status"
		checkBurst(t, ratelimit.Status, 140, func(i int) (resp, error) { return cs[i%2].do("GET", path, "", nil) })
		// another address has its own budget
		clientFrom(a.base, "127.0.0.12").must(t, 200, "GET", path, "", nil)
	})

	t.Run("public writes per IP", func(t *testing.T) {
		cs := from("127.0.0.13")
		checkBurst(t, ratelimit.PublicWrite, 30, func(i int) (resp, error) {
			return cs[i%2].do("POST", "/v1/public/lim/activations", "", map[string]string{
				"license_key": lk.Key, "product": "pro", "instance": fmt.Sprintf("site%d.example.com", i)})
		})
	})

	t.Run("404 answers per IP", func(t *testing.T) {
		cs := from("127.0.0.14")
		for i := range ratelimit.NotFound.Burst {
			cs[i%2].must(t, 404, "GET", "/v1/public/lim/licenses/"+license.NewKey()+"/status", "", nil)
		}
		// past the budget every public request from the address is refused, known keys
		// included, on both writers
		for _, c := range cs {
			r := c.must(t, 429, "GET", "/v1/public/lim/licenses/"+lk.Key+"/status", "", nil)
			if r.Header.Get("RateLimit-Policy") != ratelimit.NotFound.PolicyHeader() || r.Header.Get("Retry-After") == "" {
				t.Fatalf("known key after the 404 budget: %q %q", r.Header.Get("RateLimit-Policy"), r.Header.Get("Retry-After"))
			}
			c.must(t, 429, "POST", "/v1/public/lim/deactivations", "", map[string]string{"license_key": lk.Key, "product": "pro", "instance": "x.example.com"})
		}
		// brand calls from that address are not public requests
		cs[0].must(t, 200, "GET", "/v1/products", apiKey, nil)
	})

	t.Run("401 answers per IP", func(t *testing.T) {
		cs := from("127.0.0.15")
		for i := range ratelimit.Unauthorized.Burst {
			cs[i%2].must(t, 401, "GET", "/v1/products", "lsk_wrong_"+strconv.Itoa(i), nil)
		}
		for _, c := range cs {
			r := c.must(t, 429, "GET", "/v1/products", apiKey, nil) // a valid key too
			if r.Header.Get("RateLimit-Policy") != ratelimit.Unauthorized.PolicyHeader() {
				t.Fatalf("after the 401 budget: %q", r.Header.Get("RateLimit-Policy"))
			}
			c.must(t, 429, "GET", "/v1/brands", operatorToken, nil)
			// requests without a credential are not refused by this row
			c.must(t, 200, "GET", "/v1/public/lim/licenses/"+lk.Key+"/status", "", nil)
		}
	})
}

// TestWriterLimitsWithoutRedis: with the limits' Redis gone, each writer limits alone with
// the same numbers, quickly, and nothing answers 5xx.
func TestWriterLimitsWithoutRedis(t *testing.T) {
	w := newWorld(t)
	var redisP *proxy
	addr := newProxyFor(t, &redisP, w.redis)
	ws := w.limitedWriters(t, 2, addr, limitPrefix(t))
	apiKey := ws[0].brand(t, "nored", "pro")
	redisP.Stop()
	for _, wr := range ws {
		var k resource.APIKey
		wr.must(t, 201, "POST", "/v1/brands/nored/api-keys", operatorToken, map[string]any{}).JSON(t, &k)
		checkBurst(t, ratelimit.Brand, 130, func(int) (resp, error) { return wr.do("GET", "/v1/products", k.Secret, nil) })
	}
	lk := ws[0].licenseKey(t, apiKey, map[string]any{"product": "pro", "seat_limit": 10})
	c := clientFrom(ws[0].base, "127.0.0.16")
	checkBurst(t, ratelimit.Status, 130, func(int) (resp, error) {
		return c.do("GET", "/v1/public/nored/licenses/"+lk.Key+"/status", "", nil)
	})
}

// TestWriterLimitsWithRedisOff: a writer configured without the limits' Redis
// (WRITER_REDIS_ADDR=off, or empty) limits alone and answers every credentialed request
// (a typed nil client handed to the limiter once made each of them a 500).
func TestWriterLimitsWithRedisOff(t *testing.T) {
	w := newWorld(t)
	for _, addr := range []string{"off", ""} {
		wr := w.limitedWriters(t, 1, addr, limitPrefix(t))[0]
		slug := "off" + map[string]string{"off": "a", "": "b"}[addr]
		apiKey := wr.brand(t, slug, "pro")
		wr.must(t, 200, "GET", "/v1/products", apiKey, nil)
		var k resource.APIKey
		wr.must(t, 201, "POST", "/v1/brands/"+slug+"/api-keys", operatorToken, map[string]any{}).JSON(t, &k)
		checkBurst(t, ratelimit.Brand, 130, func(int) (resp, error) { return wr.do("GET", "/v1/products", k.Secret, nil) })
	}
}

// TestEdgeRateLimits: the per-IP rows on two edges sharing their region's Redis; relayed
// writes are charged at the edge only; with Redis gone each edge limits alone.
func TestEdgeRateLimits(t *testing.T) {
	w := newWorld(t)
	prefix := limitPrefix(t)
	// the writer trusts the edges' source address only
	wr := w.writer(t, func(c *writerapp.Config) {
		c.RateLimits, c.RedisAddr, c.LimitKeyPrefix, c.TrustedProxies = "on", w.redis, prefix, "127.0.0.2/32"
		c.LimitTimeout = limitTimeout
	})
	apiKey := wr.brand(t, "elim", "pro")
	lk := wr.licenseKey(t, apiKey, map[string]any{"product": "pro", "seat_limit": 1000})
	var redisP *proxy
	redisAddr := newProxyFor(t, &redisP, w.redis)
	var edges []*edge
	for i := range 2 {
		cfg := w.edgeConfig(fmt.Sprintf("edge-%d", i), wr.base)
		cfg.RateLimits, cfg.LimitKeyPrefix, cfg.WriterSourceIP, cfg.RedisAddr = "on", prefix, "127.0.0.2", redisAddr
		cfg.LimitTimeout = limitTimeout
		edges = append(edges, w.edge(t, cfg))
	}
	from := func(src string) []*client {
		return []*client{clientFrom(edges[0].base, src), clientFrom(edges[1].base, src)}
	}
	status := "/v1/public/elim/licenses/" + lk.Key + "/status"

	t.Run("status per IP, shared by the edges", func(t *testing.T) {
		cs := from("127.0.0.21")
		checkBurst(t, ratelimit.Status, 140, func(i int) (resp, error) { return cs[i%2].do("GET", status, "", nil) })
	})

	t.Run("relayed writes per IP, charged at the edge only", func(t *testing.T) {
		cs := from("127.0.0.22")
		checkBurst(t, ratelimit.PublicWrite, 30, func(i int) (resp, error) {
			return cs[i%2].do("POST", "/v1/public/elim/activations", "", map[string]string{
				"license_key": lk.Key, "product": "pro", "instance": fmt.Sprintf("e%d.example.com", i)})
		})
		// the writer counted none of them against the address: its own budget is whole
		direct := clientFrom(wr.base, "127.0.0.22")
		checkBurst(t, ratelimit.PublicWrite, 25, func(i int) (resp, error) {
			return direct.do("POST", "/v1/public/elim/activations", "", map[string]string{
				"license_key": lk.Key, "product": "pro", "instance": fmt.Sprintf("d%d.example.com", i)})
		})
	})

	t.Run("404 answers per IP", func(t *testing.T) {
		cs := from("127.0.0.23")
		for i := range ratelimit.NotFound.Burst {
			cs[i%2].must(t, 404, "GET", "/v1/public/elim/licenses/"+license.NewKey()+"/status", "", nil)
		}
		for _, c := range cs {
			if r := c.must(t, 429, "GET", status, "", nil); r.Header.Get("RateLimit-Policy") != ratelimit.NotFound.PolicyHeader() {
				t.Fatalf("known key after the 404 budget: %q", r.Header.Get("RateLimit-Policy"))
			}
		}
		// a 404 the writer gives to a relayed write counts too (fewer than the write
		// budget's burst, the rest of the 404 budget spent on status checks)
		c := from("127.0.0.24")[0]
		writes := ratelimit.PublicWrite.Burst - 1
		for range writes {
			c.must(t, 404, "POST", "/v1/public/elim/activations", "", map[string]string{
				"license_key": license.NewKey(), "product": "pro", "instance": "g.example.com"})
		}
		for range ratelimit.NotFound.Burst - writes {
			c.must(t, 404, "GET", "/v1/public/elim/licenses/"+license.NewKey()+"/status", "", nil)
		}
		c.must(t, 429, "GET", status, "", nil)
	})

	t.Run("Redis gone: each edge limits alone", func(t *testing.T) {
		redisP.Stop()
		for i, e := range edges {
			c := clientFrom(e.base, "127.0.0.2"+strconv.Itoa(5+i))
			checkBurst(t, ratelimit.Status, 130, func(int) (resp, error) { return c.do("GET", status, "", nil) })
		}
	})
}

// TestClientIPFromTrustedProxiesOnly: a forged X-Forwarded-For sent straight to the writer
// changes neither the audit actor nor the per-IP budget; through an edge the writer trusts
// (which itself trusts the test client as its proxy) it names the client.
func TestClientIPFromTrustedProxiesOnly(t *testing.T) {
	w := newWorld(t)
	prefix := limitPrefix(t)
	wr := w.writer(t, func(c *writerapp.Config) {
		c.RateLimits, c.RedisAddr, c.LimitKeyPrefix, c.TrustedProxies = "on", w.redis, prefix, "127.0.0.2/32"
		c.LimitTimeout = limitTimeout
	})
	apiKey := wr.brand(t, "ipx", "pro")
	lk := wr.licenseKey(t, apiKey, map[string]any{"product": "pro", "seat_limit": 100})
	cfg := w.edgeConfig("edge-ip", wr.base)
	cfg.RateLimits, cfg.LimitKeyPrefix, cfg.WriterSourceIP, cfg.TrustedProxies = "on", prefix, "127.0.0.2", "127.0.0.31/32"
	cfg.LimitTimeout = limitTimeout
	e := w.edge(t, cfg)

	activate := func(c *client, instance, xff string) {
		t.Helper()
		c.must(t, 201, "POST", "/v1/public/ipx/activations", "", map[string]string{
			"license_key": lk.Key, "product": "pro", "instance": instance}, "X-Forwarded-For", xff)
	}
	activate(clientFrom(wr.base, "127.0.0.31"), "direct.example.com", "203.0.113.7")
	activate(clientFrom(e.base, "127.0.0.31"), "edge.example.com", "198.51.100.7, 203.0.113.8")

	var lic resource.License
	wr.must(t, 200, "GET", "/v1/licenses/"+lk.Licenses[0].ID, apiKey, nil).JSON(t, &lic)
	var events resource.List[resource.Event]
	wr.must(t, 200, "GET", "/v1/licenses/"+lic.ID+"/events?limit=100", apiKey, nil).JSON(t, &events)
	actors := map[string]bool{}
	for _, ev := range events.Data {
		actors[ev.Actor] = true
	}
	if !actors["public:127.0.0.31"] || !actors["public:203.0.113.8"] || actors["public:203.0.113.7"] || actors["public:198.51.100.7"] {
		t.Fatalf("audit actors %v: want public:127.0.0.31 (direct, header ignored) and public:203.0.113.8 (via the edge)", actors)
	}

	// a new forged address per request buys no new budget at the writer
	direct := clientFrom(wr.base, "127.0.0.32")
	checkBurst(t, ratelimit.PublicWrite, 30, func(i int) (resp, error) {
		return direct.do("POST", "/v1/public/ipx/activations", "", map[string]string{
			"license_key": lk.Key, "product": "pro", "instance": fmt.Sprintf("f%d.example.com", i)},
			"X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
	})
}
