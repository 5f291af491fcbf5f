package harness

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/licensing/licensing/loadtest/scenario"
)

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var progressLine = regexp.MustCompile(`^  t: [\d.]+m?s of 1s, (\d+) requests, (\d+) errors, (\d+) req/s now \(target 100/s\), \d+ dropped$`)

func TestProgressLinesWhileRunning(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // every request is an error
	}))
	defer srv.Close()
	sc := scenario.Scenario{Name: "t", Executor: scenario.ConstantArrivalRate, Rate: 100, Duration: "1s", MaxInFlight: 50,
		Target: "edges", Mix: map[string]float64{"status": 1}, Thresholds: scenario.Thresholds{P95Ms: 1000, P99Ms: 1000, ErrorRate: 1}}

	r := NewRunner(Targets{Writer: srv.URL, Edges: []string{srv.URL}}, manifest(), 16)
	var out syncBuffer
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
	var quiet syncBuffer
	r.Progress, r.ProgressEvery = &quiet, time.Minute
	if _, err := r.Run(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	if quiet.String() != "" {
		t.Fatalf("a run shorter than the interval printed %q", quiet.String())
	}
}
