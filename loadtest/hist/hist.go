// Package hist is the load tools' latency histogram: HdrHistogram
// (github.com/HdrHistogram/hdrhistogram-go) with three significant digits, so every
// recorded value is kept with a relative error below 0.1 %, from 1 ns to an hour, in fixed
// memory, plus the exact count, sum, minimum and maximum. The API is the small one the
// harness, its reports and the chaos and simulation tools use; HdrHistogram does the
// bucketing and the percentile arithmetic.
package hist

import (
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	// Highest is the largest value tracked (an hour in nanoseconds); larger values are
	// counted as Highest in the buckets (Max stays exact).
	Highest = int64(time.Hour)
	// SigFigs is HdrHistogram's precision: three significant digits.
	SigFigs = 3
)

// Histogram counts non-negative int64 values (for latencies: nanoseconds). The zero value
// is not usable; call New. A Histogram is not safe for concurrent use; give each goroutine
// its own and Merge them, or guard it with a mutex.
type Histogram struct {
	h        *hdrhistogram.Histogram
	total    uint64
	min, max int64
	sum      float64
}

// New returns an empty histogram.
func New() *Histogram {
	return &Histogram{h: hdrhistogram.New(1, Highest, SigFigs), min: math.MaxInt64}
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	_ = h.h.RecordValue(min(v, Highest)) // in range: cannot fail
	h.total++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// RecordDuration adds a duration in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	h.h.Merge(o.h) // same range and precision: nothing is dropped
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min is the exact smallest value (0 when empty).
func (h *Histogram) Min() int64 {
	if h.total == 0 {
		return 0
	}
	return h.min
}

// Max is the exact largest value.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact arithmetic mean.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q in [0, 1] as HdrHistogram reports it (the
// highest value equivalent to the one at that rank), clamped to the exact min and max. It
// returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	return min(max(h.h.ValueAtQuantile(q*100), h.min), h.max)
}

// Bucket is one non-empty bucket of the distribution: values in [Low, High].
type Bucket struct {
	Low   int64  `json:"low"`
	High  int64  `json:"high"`
	Count uint64 `json:"count"`
}

// Buckets returns the non-empty buckets in ascending order.
func (h *Histogram) Buckets() []Bucket {
	var out []Bucket
	for _, b := range h.h.Distribution() {
		if b.Count > 0 {
			out = append(out, Bucket{Low: b.From, High: b.To, Count: uint64(b.Count)})
		}
	}
	return out
}

// Summary is a histogram reduced to the figures reports print, in milliseconds.
type Summary struct {
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Summarize reads a histogram of nanoseconds.
func (h *Histogram) Summarize() Summary {
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	return Summary{
		Count: h.total, MinMs: ms(h.Min()), MeanMs: h.Mean() / 1e6,
		P50Ms: ms(h.Quantile(0.50)), P90Ms: ms(h.Quantile(0.90)), P95Ms: ms(h.Quantile(0.95)),
		P99Ms: ms(h.Quantile(0.99)), P999Ms: ms(h.Quantile(0.999)), MaxMs: ms(h.Max()),
	}
}

// CDFPoint is one point of the cumulative distribution: the fraction of values <= Value.
type CDFPoint struct {
	Value    int64
	Fraction float64
}

// CDF returns the cumulative distribution at each non-empty bucket's upper bound (the
// last one at the exact maximum).
func (h *Histogram) CDF() []CDFPoint {
	var out []CDFPoint
	var seen uint64
	for _, b := range h.Buckets() {
		seen += b.Count
		out = append(out, CDFPoint{Value: min(b.High, h.max), Fraction: float64(seen) / float64(h.total)})
	}
	return out
}
