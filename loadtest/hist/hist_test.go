package hist

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestBucketBoundsCoverEveryValue(t *testing.T) {
	vals := []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, math.MaxInt64 / 3, math.MaxInt64}
	for i := 0; i < 10000; i++ {
		vals = append(vals, rand.Int64N(1<<40))
	}
	for _, v := range vals {
		i := index(v)
		if i < 0 || i >= buckets {
			t.Fatalf("index(%d) = %d out of range", v, i)
		}
		lo, hi := lowerBound(i), upperBound(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if v >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/float64(subCount/2)+1e-12 {
			t.Fatalf("bucket [%d, %d] wider than the precision promise", lo, hi)
		}
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	for i := 1; i < buckets-1; i++ {
		if lowerBound(i) != upperBound(i-1)+1 {
			t.Fatalf("gap between bucket %d (hi %d) and %d (lo %d)", i-1, upperBound(i-1), i, lowerBound(i))
		}
	}
}

func TestQuantilesWithinRelativeError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := New()
	var exact []int64
	for i := 0; i < 200000; i++ {
		// log-normal-ish latencies around 1 ms with a long tail
		v := int64(math.Exp(r.NormFloat64()*1.2) * 1e6)
		h.Record(v)
		exact = append(exact, v)
	}
	sort.Slice(exact, func(a, b int) bool { return exact[a] < exact[b] })
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999} {
		want := exact[int(math.Ceil(q*float64(len(exact))))-1]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/64 {
			t.Errorf("p%v = %d, exact %d (relative error %.4f > 1/64)", q*100, got, want, rel)
		}
	}
	if h.Min() != exact[0] || h.Max() != exact[len(exact)-1] {
		t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), exact[0], exact[len(exact)-1])
	}
}

func TestSmallValuesAreExact(t *testing.T) {
	h := New()
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	if got := h.Quantile(0.5); got != 50 {
		t.Errorf("p50 = %d, want 50", got)
	}
	if got := h.Quantile(0.99); got != 99 {
		t.Errorf("p99 = %d, want 99", got)
	}
	if got := h.Quantile(1); got != 100 {
		t.Errorf("p100 = %d, want 100", got)
	}
	if got := h.Mean(); got != 50.5 {
		t.Errorf("mean = %v, want 50.5", got)
	}
}

func TestEmptyAndMerge(t *testing.T) {
	a, b := New(), New()
	if a.Quantile(0.99) != 0 || a.Min() != 0 || a.Max() != 0 || a.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	a.Record(10)
	b.Record(1000)
	b.Record(-5) // counts as 0
	a.Merge(b)
	if a.Count() != 3 || a.Min() != 0 || a.Max() != 1000 {
		t.Fatalf("merged count/min/max = %d/%d/%d", a.Count(), a.Min(), a.Max())
	}
	if cdf := a.CDF(); len(cdf) != 3 || cdf[len(cdf)-1].Fraction != 1 {
		t.Fatalf("cdf = %+v", cdf)
	}
	var n uint64
	for _, bk := range a.Buckets() {
		n += bk.Count
	}
	if n != 3 {
		t.Fatalf("buckets hold %d values, want 3", n)
	}
}
