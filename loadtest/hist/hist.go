// Package hist is a log-linear latency histogram in the spirit of HdrHistogram: values are
// grouped by their power of two, and each power of two is split into 2^SubBits equal
// buckets of equal width, so every recorded value is kept with a relative error below
// 2^-(SubBits-1) (0.8 % with SubBits = 8) over the whole int64 range, in fixed memory
// (about 58 KiB). It exists because hdrhistogram-go is not available from this project's module
// proxy; the percentile arithmetic is the same.
package hist

import (
	"math"
	"math/bits"
	"sort"
	"time"
)

// SubBits is the number of bits of precision inside each power of two.
const SubBits = 8

const (
	subCount = 1 << SubBits
	// values below subCount get their own bucket each (exact); above, one row of
	// subCount/2 buckets per power of two.
	rows    = 64 - SubBits
	buckets = subCount + rows*(subCount/2)
)

// Histogram counts non-negative int64 values (for latencies: nanoseconds). The zero value
// is not usable; call New. A Histogram is not safe for concurrent use; give each goroutine
// its own and Merge them, or guard it with a mutex.
type Histogram struct {
	counts   []uint64
	total    uint64
	min, max int64
	sum      float64
}

// New returns an empty histogram.
func New() *Histogram {
	return &Histogram{counts: make([]uint64, buckets), min: math.MaxInt64}
}

// index returns the bucket of v (v >= 0).
func index(v int64) int {
	if v < subCount {
		return int(v)
	}
	// exponent e: v in [2^e, 2^(e+1)), e >= SubBits
	e := 63 - bits.LeadingZeros64(uint64(v))
	shift := e - SubBits + 1 // keep SubBits-1 bits below the leading one
	sub := int(v>>shift) - subCount/2
	return subCount + (shift-1)*(subCount/2) + sub
}

// lowerBound is the smallest value of bucket i; upperBound the largest.
func lowerBound(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	i -= subCount
	shift := i/(subCount/2) + 1
	sub := i%(subCount/2) + subCount/2
	return int64(sub) << shift
}

func upperBound(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	i -= subCount
	shift := i/(subCount/2) + 1
	sub := i%(subCount/2) + subCount/2
	return (int64(sub+1) << shift) - 1
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[index(v)]++
	h.total++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// RecordDuration adds a duration in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() int64 {
	if h.total == 0 {
		return 0
	}
	return h.min
}

// Max is the largest recorded value.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact arithmetic mean.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q in [0, 1]: the highest value of the bucket
// holding the ceil(q*count)-th smallest value (as HdrHistogram reports it), clamped to the
// exact min and max. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(upperBound(i), h.min), h.max)
		}
	}
	return h.max
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
	for i, c := range h.counts {
		if c > 0 {
			out = append(out, Bucket{Low: lowerBound(i), High: upperBound(i), Count: c})
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

// CDF returns the cumulative distribution at each non-empty bucket's upper bound.
func (h *Histogram) CDF() []CDFPoint {
	var out []CDFPoint
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		out = append(out, CDFPoint{Value: min(upperBound(i), h.max), Fraction: float64(seen) / float64(h.total)})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Value < out[b].Value })
	return out
}
