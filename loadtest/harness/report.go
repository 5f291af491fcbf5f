package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/licensing/licensing/loadtest/hist"
	"github.com/licensing/licensing/loadtest/scenario"
)

// WriteTable prints a readable summary of results.
func WriteTable(w io.Writer, results []*Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\toperation\trequests\treq/s\tp50 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\tdropped\tpass\t")
	for _, r := range results {
		pass := "PASS"
		if !r.Pass {
			pass = "FAIL"
		}
		s := r.Latency
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t\n", r.displayName(), "all", s.Count, r.RPS,
			s.P50Ms, s.P95Ms, s.P99Ms, s.P999Ms, s.MaxMs, r.Errors, r.Dropped, pass)
		ops := make([]string, 0, len(r.ByOp))
		for op := range r.ByOp {
			ops = append(ops, op)
		}
		sort.Strings(ops)
		if len(ops) > 1 {
			for _, op := range ops {
				s := r.ByOp[op]
				fmt.Fprintf(tw, "\t%s\t%d\t\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\t\t\t\n", op, s.Count, s.P50Ms, s.P95Ms, s.P99Ms, s.P999Ms, s.MaxMs)
			}
		}
	}
	tw.Flush()
	for _, r := range results {
		keys := make([]string, 0, len(r.Outcomes))
		for k := range r.Outcomes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "\n%s outcomes (operation status code):", r.Scenario.Name)
		for _, k := range keys {
			mark := ""
			if r.ErrorsBy[k] > 0 {
				mark = " [error]"
			}
			fmt.Fprintf(w, "\n  %-40s %d%s", strings.TrimSpace(k), r.Outcomes[k], mark)
		}
		for _, f := range r.Failed {
			fmt.Fprintf(w, "\n  threshold failed: %s", f)
		}
		if r.Note != "" {
			fmt.Fprintf(w, "\n  note: %s", r.Note)
		}
		fmt.Fprintln(w)
	}
}

func (r *Result) displayName() string {
	if r.Variant != "" {
		return r.Scenario.Name + " (" + r.Variant + ")"
	}
	return r.Scenario.Name
}

// WriteMarkdown prints one markdown table row per result (bench.sh collects them).
func WriteMarkdown(w io.Writer, label string, results []*Result) {
	for _, r := range results {
		s := r.Latency
		pass := "pass"
		if !r.Pass {
			pass = "FAIL: " + strings.Join(r.Failed, "; ")
		}
		rate := fmt.Sprintf("%.0f", r.RPS)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %d | %d | %s |\n", label, r.displayName(), r.Tool, rate,
			s.Count, s.P50Ms, s.P95Ms, s.P99Ms, s.MaxMs, r.Errors, r.Dropped, pass)
	}
}

// MarkdownHeader is the header of WriteMarkdown's rows.
const MarkdownHeader = "| data | scenario | tool | req/s | requests | p50 ms | p95 ms | p99 ms | max ms | errors | dropped | thresholds |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"

// Save writes r as JSON into dir/<name>.json.
func Save(dir, name string, r *Result) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name+".json")
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, b, 0o644)
}

// LoadResult reads a result saved by Save, rebuilding its histogram from the buckets.
func LoadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.hist = hist.New()
	for _, bk := range r.Buckets {
		for i := uint64(0); i < bk.Count; i++ {
			r.hist.Record(bk.High)
		}
	}
	return &r, nil
}

// FromPgbenchLog builds a result from pgbench per-transaction logs (--log): the third
// field of each line is the transaction's latency in microseconds, the second its
// client; a fifth field present and non-zero... is ignored. Failed transactions (pgbench
// 15 logs "failed" in the latency column) count as errors.
func FromPgbenchLog(name, script string, seconds float64, files []string) (*Result, error) {
	h := hist.New()
	var errs int64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				errs++
				continue
			}
			h.Record(us * 1000)
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	r := &Result{Scenario: scenario.Scenario{Name: name, Description: "pgbench " + script}, Tool: "pgbench", Seconds: seconds,
		Started: time.Now().UTC(), Iterations: int64(h.Count()), ErrorsBy: map[string]int64{}, Outcomes: map[string]int64{"ok": int64(h.Count())},
		ByOp: map[string]hist.Summary{}, hist: h}
	if errs > 0 {
		r.ErrorsBy["failed"] = errs
	}
	r.finish()
	r.Iterations += errs
	return r, nil
}

// WriteHTML writes a self-contained page (inline SVG, no script, no CDN) with the latency
// percentile spectrum of each result: x is the percentile on a log scale of 1/(1-q)
// (50, 90, 99, 99.9, 99.99), y the latency in milliseconds on a log scale.
func WriteHTML(w io.Writer, title string, results []*Result) error {
	const W, H, L, B, T, R = 860.0, 420.0, 70.0, 50.0, 20.0, 200.0
	type series struct {
		name string
		pts  [][2]float64
	}
	var ss []series
	maxY, minY := 0.0, math.Inf(1)
	for _, r := range results {
		hs := map[string]*hist.Histogram{"all": r.hist}
		if len(r.opHists) > 1 {
			for op, h := range r.opHists {
				hs[op] = h
			}
		}
		names := make([]string, 0, len(hs))
		for n := range hs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			h := hs[n]
			if h == nil || h.Count() == 0 {
				continue
			}
			s := series{name: r.displayName() + " / " + n}
			for _, p := range h.CDF() {
				x := math.Log10(1 / math.Max(1-p.Fraction+1/float64(h.Count()+1), 1e-5))
				y := math.Max(float64(p.Value)/1e6, 0.001)
				s.pts = append(s.pts, [2]float64{x, y})
				maxY, minY = math.Max(maxY, y), math.Min(minY, y)
			}
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		minY, maxY = 0.1, 1
	}
	lo, hi := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
	if hi <= lo {
		hi = lo + 1
	}
	maxX := 5.0
	px := func(x float64) float64 { return L + (W-L-R)*math.Min(x, maxX)/maxX }
	py := func(y float64) float64 { return H - B - (H-B-T)*(math.Log10(y)-lo)/(hi-lo) }
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html><html><head><meta charset=\"utf-8\"><title>%s</title><style>body{font:14px sans-serif;margin:20px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}</style></head><body><h1>%s</h1>\n",
		html.EscapeString(title), html.EscapeString(title))
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-size=\"11\">\n", W, H)
	fmt.Fprintf(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#999\"/>\n", L, T, W-L-R, H-B-T)
	for e := lo; e <= hi; e++ {
		y := py(math.Pow(10, e))
		fmt.Fprintf(&b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g ms</text>\n", L, W-R, y, y, L-5, y+4, math.Pow(10, e))
	}
	for i, lab := range []string{"0", "90", "99", "99.9", "99.99", "99.999"} {
		x := px(float64(i))
		fmt.Fprintf(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">p%s</text>\n", x, x, T, H-B, x, H-B+15, lab)
	}
	fmt.Fprintf(&b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">percentile</text>\n", L+(W-L-R)/2, H-10)
	for i, s := range ss {
		c := colors[i%len(colors)]
		var pts []string
		for _, p := range s.pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		fmt.Fprintf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"%s\"/>\n", c, strings.Join(pts, " "))
		ly := T + 14*float64(i) + 10
		fmt.Fprintf(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n", W-R+10, ly-9, c, W-R+24, ly, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n<table><tr><th>scenario</th><th>tool</th><th>requests</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>errors</th><th>dropped</th><th>thresholds</th></tr>\n")
	for _, r := range results {
		s := r.Latency
		pass := "pass"
		if !r.Pass {
			pass = "FAIL: " + strings.Join(r.Failed, "; ")
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%d</td><td>%.0f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%d</td><td>%d</td><td>%s</td></tr>\n",
			html.EscapeString(r.displayName()), r.Tool, s.Count, r.RPS, s.P50Ms, s.P95Ms, s.P99Ms, s.P999Ms, s.MaxMs, r.Errors, r.Dropped, html.EscapeString(pass))
	}
	b.WriteString("</table></body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
