package app_test

// Webhook benchmarks (make bench-webhooks; figures in docs/benchmarks.md). Each runs a
// fixed workload per iteration against an in-process writer over the test-profile
// Postgres and reports its own metrics; run them with -benchtime 1x.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensing/licensing/writer/app"
)

// pathReceiver is one HTTP server behind many endpoints (/ep/<n>); endpoints whose n is
// in failing answer 500.
type pathReceiver struct {
	*httptest.Server
	failing func(n int) bool
	first   sync.Map // webhook-id + path → struct{}
	firsts  atomic.Int64
	ok      atomic.Int64
}

func newPathReceiver(tb testing.TB, failing func(int) bool) *pathReceiver {
	r := &pathReceiver{failing: failing}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/ep/"))
		if _, seen := r.first.LoadOrStore(req.Header.Get("webhook-id")+req.URL.Path, struct{}{}); !seen {
			r.firsts.Add(1)
		}
		if r.failing != nil && r.failing(n) {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		r.ok.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	r.Config.SetKeepAlivesEnabled(true)
	r.Start()
	tb.Cleanup(r.Close)
	return r
}

func benchWriter(b *testing.B, extra ...func(*app.Config)) (*env, string) {
	b.Helper()
	opts := []option{withConfig(hooksConfig(webhookKey())), withConfig(func(c *app.Config) {
		c.WebhookSchedule = nil // the contract's: 5 s before the first retry
		c.WebhookTimeout = 15 * time.Second
		c.WebhookRescueAfter = time.Minute
		c.WebhookWorkers, c.WebhookPerEndpoint = 0, 0 // the defaults: 50 and 4
	})}
	for _, f := range extra {
		opts = append(opts, withConfig(f))
	}
	e := start(b, opts...)
	return e, e.brand(b, "bench", "pro")
}

// Delivery throughput: 10 changes to 1 000 endpoints (10 000 deliveries), all healthy and
// with 10 % of the endpoints failing (answering 500: each failure is retried 5 s later,
// outside the measured first attempts), in the same run.
func BenchmarkWebhookThroughput(b *testing.B) {
	const endpoints, events = 1000, 10
	for _, c := range []struct {
		name    string
		failing func(int) bool
	}{
		{"healthy", nil},
		{"10pct-failing", func(n int) bool { return n%10 == 0 }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				e, api := benchWriter(b)
				r := newPathReceiver(b, c.failing)
				for i := range endpoints {
					e.must(b, 201, "POST", "/v1/webhook-endpoints", api, map[string]any{"url": fmt.Sprintf("%s/ep/%d", r.URL, i),
						"events": []string{"license_key.created"}})
				}
				b.ResetTimer()
				start := time.Now()
				for i := range events {
					e.must(b, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": fmt.Sprintf("c%d@example.com", i),
						"licenses": []map[string]any{{"product": "pro"}}})
				}
				deadline := time.Now().Add(5 * time.Minute)
				for r.firsts.Load() < endpoints*events {
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d first attempts after 5 min", r.firsts.Load(), endpoints*events)
					}
					time.Sleep(5 * time.Millisecond)
				}
				took := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(endpoints*events)/took.Seconds(), "attempts/s")
				b.ReportMetric(float64(r.ok.Load())/took.Seconds(), "succeeded/s")
				b.ReportMetric(took.Seconds(), "s/10k-deliveries")
				e.stop()
			}
		})
	}
}

// From a change's 2xx to its delivery's first attempt at the receiver: 200 changes, one
// every 50 ms, one endpoint.
func BenchmarkWebhookLatency(b *testing.B) {
	for range b.N {
		e, api := benchWriter(b)
		var mu sync.Mutex
		arrived := map[string]time.Time{}
		r := newReceiver(b, nil)
		r.respond = func(_ int, h hook) int {
			mu.Lock()
			defer mu.Unlock()
			arrived[string(h.Body)] = h.At
			return http.StatusNoContent
		}
		e.subscribe(b, api, r.URL, "license_key.created")
		const n = 200
		acked := make(map[string]time.Time, n)
		b.ResetTimer()
		for i := range n {
			var k provisioned
			e.must(b, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": fmt.Sprintf("c%d@example.com", i),
				"licenses": []map[string]any{{"product": "pro"}}}).JSON(b, &k)
			acked[k.Key] = time.Now()
			time.Sleep(50 * time.Millisecond) // a paced, open load: the latency of one change, not of a queue
		}
		r.waitFor(b, time.Minute, "every delivery", func(hs []hook) bool { return len(hs) >= n })
		b.StopTimer()
		var lat []time.Duration
		mu.Lock()
		for body, at := range arrived {
			for key, ack := range acked {
				if strings.Contains(body, key) {
					lat = append(lat, at.Sub(ack))
				}
			}
		}
		mu.Unlock()
		slices.Sort(lat)
		if len(lat) != n {
			b.Fatalf("%d latencies for %d changes", len(lat), n)
		}
		b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[n-1].Microseconds())/1000, "max-ms")
		e.stop()
	}
}

// The writer's activation rate without webhooks, with 100 endpoints subscribed to
// activation.created whose deliveries this writer also sends meanwhile (100 deliveries
// per activation, on the same two cores), and with the same 100 endpoints while this
// writer only dispatches (another would send): 8 clients, 1 000 activations per round,
// the three variants interleaved over 3 rounds so that the machine's drift hits them
// alike, each round measured alone (a delivering writer's backlog is drained before the
// next round starts). Reported: each variant's mean rate and its ratio to the baseline.
func BenchmarkActivationWithWebhooks(b *testing.B) {
	const rounds, perRound, clients = 3, 1000, 8
	type variant struct {
		name      string
		endpoints int
		deliver   string
		e         *env
		key       string
		rates     []float64
		r         *pathReceiver
	}
	vs := []*variant{{name: "no-endpoints"}, {name: "100-endpoints-delivering", endpoints: 100, deliver: "on"},
		{name: "100-endpoints-dispatch-only", endpoints: 100, deliver: "off"}}
	for range b.N {
		for _, v := range vs {
			deliver := v.deliver
			e, api := benchWriter(b, func(c *app.Config) { c.WebhookDeliver = deliver })
			v.e, v.r, v.rates = e, newPathReceiver(b, nil), nil
			for i := range v.endpoints {
				e.must(b, 201, "POST", "/v1/webhook-endpoints", api, map[string]any{"url": fmt.Sprintf("%s/ep/%d", v.r.URL, i),
					"events": []string{"activation.created"}})
			}
			var k provisioned
			e.must(b, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": "c@example.com",
				"licenses": []map[string]any{{"product": "pro"}}}).JSON(b, &k)
			v.key = k.Key
		}
		b.ResetTimer()
		for round := range rounds {
			for _, v := range vs {
				var next atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				for range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1)
							if i > perRound {
								return
							}
							r, err := v.e.do(b, "POST", "/v1/public/bench/activations", "", map[string]string{"license_key": v.key,
								"product": "pro", "instance": fmt.Sprintf("https://r%d-%d.example", round, i)})
							if err != nil || r.Status != 201 {
								b.Errorf("activation: %v %d %s", err, r.Status, r.Body)
								return
							}
						}
					}()
				}
				wg.Wait()
				v.rates = append(v.rates, perRound/time.Since(start).Seconds())
				if v.deliver == "on" {
					// drain this writer's deliveries before the next variant runs, so
					// that no variant is measured beside another's background work
					want := int64(v.endpoints * perRound * (round + 1))
					deadline := time.Now().Add(10 * time.Minute)
					for v.r.ok.Load() < want {
						if time.Now().After(deadline) {
							b.Fatalf("%d of %d deliveries after 10 min", v.r.ok.Load(), want)
						}
						time.Sleep(10 * time.Millisecond)
					}
				}
			}
		}
		b.StopTimer()
		mean := func(xs []float64) float64 {
			s := 0.0
			for _, x := range xs {
				s += x
			}
			return s / float64(len(xs))
		}
		base := mean(vs[0].rates)
		for _, v := range vs {
			b.ReportMetric(mean(v.rates), v.name+"-activations/s")
			if v != vs[0] {
				b.ReportMetric(mean(v.rates)/base, v.name+"-ratio")
			}
			b.Logf("%s: rounds %.0f activations/s; %d deliveries received", v.name, v.rates, v.r.ok.Load())
			v.e.stop()
		}
	}
}
