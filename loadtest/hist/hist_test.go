package hist

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestBucketsCoverEveryValueWithinPrecision(t *testing.T) {
	vals := []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, Highest - 1, Highest}
	for i := 0; i < 10000; i++ {
		vals = append(vals, rand.Int64N(Highest))
	}
	h := New()
	for _, v := range vals {
		h.Record(v)
	}
	b := h.Buckets()
	var n uint64
	for i, bk := range b {
		n += bk.Count
		if i > 0 && bk.Low <= b[i-1].High {
			t.Fatalf("buckets overlap or are out of order: %+v then %+v", b[i-1], bk)
		}
		// three significant digits: a bucket is at most 1/1000 of its low end wide
		if w := bk.High - bk.Low + 1; bk.Low >= 2048 && float64(w)/float64(bk.Low) > 1.0/1000 {
			t.Fatalf("bucket [%d, %d] wider than the precision promise", bk.Low, bk.High)
		}
	}
	if n != uint64(len(vals)) {
		t.Fatalf("buckets hold %d values, recorded %d", n, len(vals))
	}
	for _, v := range vals {
		i := sort.Search(len(b), func(i int) bool { return b[i].High >= v })
		if i == len(b) || v < b[i].Low {
			t.Fatalf("value %d in no bucket", v)
		}
	}
}

func TestBeyondHighestKeepsExactMax(t *testing.T) {
	h := New()
	h.Record(2 * Highest)
	if h.Count() != 1 || h.Max() != 2*Highest || h.Quantile(1) != 2*Highest {
		t.Fatalf("count %d max %d p100 %d", h.Count(), h.Max(), h.Quantile(1))
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
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/500 {
			t.Errorf("p%v = %d, exact %d (relative error %.4f > 0.2 %%)", q*100, got, want, rel)
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
