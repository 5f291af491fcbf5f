package harness

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/syncbuf"
	"github.com/licensing/licensing/loadtest/scenario"
)

var progressLine = regexp.MustCompile(`^  t: [\d.]+m?s of 1s, (\d+) requests, (\d+) errors, (\d+) req/s now \(target 100/s\), \d+ dropped$`)

func TestProgressLinesWhileRunning(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // every request is an error
	}))
	defer srv.Close()
	sc := scenario.Scenario{Name: "t", Executor: scenario.ConstantArrivalRate, Rate: 100, Duration: "1s", MaxInFlight: 50,
		Target: "edges", Mix: map[string]float64{"status": 1}, Thresholds: scenario.Thresholds{P95Ms: 1000, P99Ms: 1000, ErrorRate: 1}}

	r := NewRunner(Targets{Writer: srv.URL, Edges: []string{srv.URL}}, manifest(), 16)
	var out syncbuf.Buffer
	r.Progress, r.ProgressEvery = &out, 200*time.Millisecond
	res, err := r.Run(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimRight([]byte(out.String()), "\n"), []byte("\n"))
	if len(lines) < 3 {
		t.Fatalf("%d progress lines in a 1 s run at one per 200 ms:\n%s", len(lines), out.String())
	}
	prev := int64(-1)
	for _, l := range lines {
		m := progressLine.FindSubmatch(l)
		if m == nil {
			t.Fatalf("malformed progress line %q", l)
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		e, _ := strconv.ParseInt(string(m[2]), 10, 64)
		if n < prev || e != n {
			t.Fatalf("line %q: requests %d after %d, errors %d (every request fails)", l, n, prev, e)
		}
		prev = n
	}
	if prev <= 0 || prev > res.Requests {
		t.Fatalf("last progress count %d, run total %d", prev, res.Requests)
	}

	// a run shorter than the interval prints nothing
	var quiet syncbuf.Buffer
	r.Progress, r.ProgressEvery = &quiet, time.Minute
	if _, err := r.Run(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	if quiet.String() != "" {
		t.Fatalf("a run shorter than the interval printed %q", quiet.String())
	}
}

// statusServer answers activations 201 and every status with the instance activated,
// after delay.
func statusServer(delay time.Duration) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code":"valid","instance":{"activated":true}}`))
	}))
}

// progressCounts parses every line of out with re (its first group a count) and checks
// that the counts never decrease; it returns them.
func progressCounts(t *testing.T, out string, re *regexp.Regexp) []int64 {
	t.Helper()
	var counts []int64
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("malformed progress line %q in:\n%s", l, out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		if len(counts) > 0 && n < counts[len(counts)-1] {
			t.Fatalf("count %d after %d in:\n%s", n, counts[len(counts)-1], out)
		}
		counts = append(counts, n)
	}
	return counts
}

// TestLagReportsProgress: the lag measurement prints samples done while it runs.
func TestLagReportsProgress(t *testing.T) {
	srv := statusServer(20 * time.Millisecond) // a sample: warm, activate, observe, deactivate ≈ 80 ms
	defer srv.Close()
	r := NewRunner(Targets{Writer: srv.URL, Edges: []string{srv.URL}}, manifest(), 16)
	var out syncbuf.Buffer
	r.Progress, r.ProgressEvery = &out, 200*time.Millisecond
	res, err := r.Lag(context.Background(), 12, time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcomes["seen"] != 12 {
		t.Fatalf("%d observations of 12 samples on one edge", res.Outcomes["seen"])
	}
	re := regexp.MustCompile(`^  invalidation_lag: [\d.]+m?s, (\d+) of 12 samples, \d+ edge observations, 0 errors$`)
	counts := progressCounts(t, out.String(), re)
	if len(counts) < 2 || counts[len(counts)-1] == 0 || counts[len(counts)-1] >= 12 {
		t.Fatalf("progress of a run of about 1 s at one line per 200 ms:\n%s", out.String())
	}
}

// TestBigLicenseReportsProgress: both phases of the big-license test print their
// progress, with the requests made so far.
func TestBigLicenseReportsProgress(t *testing.T) {
	srv := statusServer(2 * time.Millisecond)
	defer srv.Close()
	m := manifest()
	m.Big = m.Status
	r := NewRunner(Targets{Writer: srv.URL, Edges: []string{srv.URL}}, m, 16)
	var out syncbuf.Buffer
	r.Progress, r.ProgressEvery = &out, 150*time.Millisecond
	if _, err := r.BigLicense(context.Background(), 2, 0, 50, 500*time.Millisecond, time.Second, false); err != nil {
		t.Fatal(err)
	}
	var phases [2]strings.Builder
	for _, l := range strings.SplitAfter(out.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "  big_license maximum rate: "):
			phases[0].WriteString(l)
		case strings.HasPrefix(l, "  big_license under 50 checks/s per edge: "):
			phases[1].WriteString(l)
		case l != "":
			t.Fatalf("unexpected line %q", l)
		}
	}
	for i, p := range phases {
		re := regexp.MustCompile(`^  big_license [^:]+: [\d.]+m?s of 500ms, (\d+) requests, 0 errors, \d+ req/s now$`)
		if counts := progressCounts(t, p.String(), re); len(counts) < 2 || counts[0] == 0 {
			t.Fatalf("phase %d: %d progress lines, first count %v:\n%s", i+1, len(counts), counts, out.String())
		}
	}
}
