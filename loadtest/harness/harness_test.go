package harness

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensing/licensing/loadtest/scenario"
	"github.com/licensing/licensing/loadtest/seed"
)

func manifest() *seed.Manifest {
	lim := 3
	t := seed.Target{Brand: "b", Key: "K", Product: "p", LicenseID: "L", Status: "valid", SeatLimit: &lim, Instance: "x.example.com", Raw: "https://x.example.com/"}
	return &seed.Manifest{Brands: []seed.ManifestBrand{{Slug: "b", APIKey: "lsk_a_b"}},
		Status: []seed.Target{t}, Free: []seed.Target{t}, NearFull: []seed.Target{t}, Unlimited: []seed.Target{t},
		Active: []seed.Target{t}, Lifecycle: []seed.Target{t}}
}

// TestOpenModelKeepsTheRateAndDropsWhenFull: a server slower than max_in_flight allows
// must not slow the arrivals down; the excess iterations are counted as dropped.
func TestOpenModelKeepsTheRateAndDropsWhenFull(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(100 * time.Millisecond) // the slow server under test
		w.WriteHeader(200)
	}))
	defer srv.Close()
	r := NewRunner(Targets{Writer: srv.URL, Edges: []string{srv.URL}}, manifest(), 16)
	sc := scenario.Scenario{Name: "t", Executor: scenario.ConstantArrivalRate, Rate: 200, Duration: "1s", MaxInFlight: 5,
		Target: "edges", Mix: map[string]float64{"status": 1}, Thresholds: scenario.Thresholds{P95Ms: 1000, P99Ms: 1000, ErrorRate: 0.01}}
	res, err := r.Run(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	// 200 arrivals; 5 slots of 100 ms serve about 50
	if res.Iterations+res.Dropped < 190 || res.Iterations+res.Dropped > 201 {
		t.Fatalf("%d iterations + %d dropped, want about 200 arrivals", res.Iterations, res.Dropped)
	}
	if res.Dropped < 100 || res.Iterations > 80 {
		t.Fatalf("%d iterations, %d dropped: the in-flight limit did not hold", res.Iterations, res.Dropped)
	}
	if res.Latency.P50Ms < 100 {
		t.Fatalf("p50 %.1f ms below the server's 100 ms", res.Latency.P50Ms)
	}
	if !res.Pass {
		t.Fatalf("failed: %v", res.Failed)
	}
}

func TestErrorsCountedByStatusAndCode(t *testing.T) {
	var i atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/activations"):
			if i.Add(1)%2 == 0 {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(409)
				w.Write([]byte(`{"status":409,"code":"seat_limit_reached"}`))
				return
			}
			w.WriteHeader(201)
		default:
			w.WriteHeader(503)
			w.Write([]byte(`{"status":503,"code":"unavailable"}`))
		}
	}))
	defer srv.Close()
	r := NewRunner(Targets{Writer: srv.URL, Edges: []string{srv.URL}}, manifest(), 8)
	sc := scenario.Scenario{Name: "t", Executor: scenario.ConstantVUs, VUs: 2, Duration: "300ms", Target: "edges",
		Mix: map[string]float64{"activate_hot": 1, "status": 1}, Thresholds: scenario.Thresholds{ErrorRate: 0.01}}
	res, err := r.Run(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorsBy["status 503 unavailable"] == 0 {
		t.Fatalf("503s not counted as errors: %v", res.ErrorsBy)
	}
	if res.ErrorsBy["activate_hot 409 seat_limit_reached"] != 0 || res.Outcomes["activate_hot 409 seat_limit_reached"] == 0 {
		t.Fatalf("409 seat_limit_reached is an expected answer of a storm: errors %v outcomes %v", res.ErrorsBy, res.Outcomes)
	}
	if res.Pass {
		t.Fatal("a run with 50 % errors passed its 1 % threshold")
	}
	var out bytes.Buffer
	WriteTable(&out, []*Result{res})
	if !strings.Contains(out.String(), "status 503 unavailable") || !strings.Contains(out.String(), "FAIL") {
		t.Fatalf("table:\n%s", out.String())
	}
}

func TestPgbenchLogAndReports(t *testing.T) {
	dir := t.TempDir()
	// pgbench --log lines: client_id transaction_no time script_no time_epoch time_us
	log := "0 1 1500 0 1700000000 1\n0 2 2500 0 1700000000 2\n1 1 failed 0 1700000000 3\n"
	p := filepath.Join(dir, "log.1")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := FromPgbenchLog("pg", "x.sql", 1, []string{p})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 2 || res.Errors != 1 || res.Latency.MaxMs < 2.49 || res.Latency.MaxMs > 2.51 {
		t.Fatalf("requests %d errors %d max %.3f", res.Requests, res.Errors, res.Latency.MaxMs)
	}
	saved, err := Save(dir, "pg", res)
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadResult(saved)
	if err != nil {
		t.Fatal(err)
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, "t", []*Result{res, back}); err != nil {
		t.Fatal(err)
	}
	h := html.String()
	if !strings.Contains(h, "<svg") || !strings.Contains(h, "<polyline") || strings.Contains(h, "<script") || strings.Contains(h, "https://") {
		t.Fatalf("chart is not a self-contained inline SVG page:\n%s", h)
	}
	var md bytes.Buffer
	WriteMarkdown(&md, "100k", []*Result{back})
	if !strings.HasPrefix(md.String(), "| 100k | pg | pgbench |") {
		t.Fatalf("markdown row %q", md.String())
	}
}
