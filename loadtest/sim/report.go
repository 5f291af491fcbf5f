package sim

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/licensing/licensing/loadtest/chaos"
)

// Row is one region's figures over one scenario's window.
type Row struct {
	Scenario string
	// status checks at the region's edges
	Checks               int
	StatusP50, StatusP99 time.Duration
	OK, Stale            int
	// activation attempts through the edges' relay
	Acts                 int
	ActP99               time.Duration
	Act2xx, Act503, Act0 int
	// invalidation lag samples (writer 2xx → both edges)
	Lags           int
	LagP50, LagP99 time.Duration
	// the same calls to the central writer through the region's link
	DirectChecks, DirectActs int
	DirectP50, DirectP99     time.Duration
	DirectActP99             time.Duration
}

// Rows computes a region's figures per window.
func (res *Result) Rows(rr *RegionResult) []Row {
	var rows []Row
	for _, w := range res.Windows {
		in := func(t time.Time) bool { return !t.Before(w.From) && t.Before(w.To) }
		row := Row{Scenario: w.Scenario}
		var st, act, dst, dact, lag []time.Duration
		for _, e := range rr.Edge {
			if !in(e.Start) {
				continue
			}
			switch e.Kind {
			case "status":
				row.Checks++
				st = append(st, e.Latency)
				if e.Status == 200 {
					row.OK++
					if e.Stale {
						row.Stale++
					}
				}
			case "activate":
				row.Acts++
				act = append(act, e.Latency)
				switch {
				case e.Status/100 == 2:
					row.Act2xx++
				case e.Status == 503:
					row.Act503++
				case e.Status == 0:
					row.Act0++
				}
			}
		}
		for _, e := range rr.Direct {
			if !in(e.Start) {
				continue
			}
			switch e.Kind {
			case "status":
				row.DirectChecks++
				dst = append(dst, e.Latency)
			case "activate":
				row.DirectActs++
				dact = append(dact, e.Latency)
			}
		}
		for _, l := range rr.Lags {
			if in(l.At) && l.Lag >= 0 {
				lag = append(lag, l.Lag)
			}
		}
		row.Lags = len(lag)
		row.StatusP50, row.StatusP99 = q(st, 0.5), q(st, 0.99)
		row.ActP99 = q(act, 0.99)
		row.LagP50, row.LagP99 = q(lag, 0.5), q(lag, 0.99)
		row.DirectP50, row.DirectP99 = q(dst, 0.5), q(dst, 0.99)
		row.DirectActP99 = q(dact, 0.99)
		rows = append(rows, row)
	}
	return rows
}

func q(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)]
}

func ms(d time.Duration) string {
	switch {
	case d < 0:
		return "–"
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
}

func pct(n, of int) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f %%", 100*float64(n)/float64(of))
}

// Markdown renders the per-region tables, the scenarios, the checks and the notes.
func (res *Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s, %v (partition %v, replica lag +%v for %v, edge loss %v).\n\n", res.Start.UTC().Format(time.RFC3339),
		res.End.Sub(res.Start).Round(time.Second), res.Opts.Partition, res.Opts.ReplicaLag, res.Opts.LagFor, res.Opts.EdgeDown)
	b.WriteString("Scenarios (windows):\n\n")
	for _, w := range res.Windows {
		fmt.Fprintf(&b, "- **%s** (+%.0f s … +%.0f s): %s\n", w.Scenario, w.From.Sub(res.Start).Seconds(), w.To.Sub(res.Start).Seconds(), w.Description)
	}
	for _, rr := range res.Regions {
		fmt.Fprintf(&b, "\n### %s (RTT to the centre %v ± %v)\n\n", rr.Name, rr.RTT, rr.Jitter)
		b.WriteString("| scenario | status at edge p50 / p99 | 200 | stale-marked | activation via edge p99 | activations 2xx / 503 / no answer | invalidation lag p50 / p99 (n) | direct to writer: status p50 / p99 | direct activation p99 |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range res.Rows(rr) {
			fmt.Fprintf(&b, "| %s | %s / %s | %s of %d | %s | %s | %d / %d / %d of %d | %s / %s (%d) | %s / %s | %s |\n", r.Scenario,
				ms(r.StatusP50), ms(r.StatusP99), pct(r.OK, r.Checks), r.Checks, pct(r.Stale, r.OK), ms(r.ActP99),
				r.Act2xx, r.Act503, r.Act0, r.Acts, ms(r.LagP50), ms(r.LagP99), r.Lags, ms(r.DirectP50), ms(r.DirectP99), ms(r.DirectActP99))
		}
	}
	b.WriteString("\n| check | checked | result |\n|---|---|---|\n")
	for _, c := range res.Checks {
		r := "ok"
		if !c.OK() {
			r = "**FAILED**: " + strings.Join(c.Failed[:min(len(c.Failed), 5)], "; ")
		}
		fmt.Fprintf(&b, "| %s | %d | %s |\n", c.Name, c.Checked, strings.ReplaceAll(r, "|", "\\|"))
	}
	if len(res.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// HTML renders the tables and an inline SVG chart of invalidation lag and status latency
// at the edges over time, the scenarios shaded.
func (res *Result) HTML() string {
	var b strings.Builder
	b.WriteString("<!doctype html><meta charset=utf-8><title>make sim</title><style>body{font:14px sans-serif;margin:2em}" +
		"table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f4f4f4}" +
		"td:first-child{text-align:left}</style>\n<h1>Three regions on one machine</h1>\n")
	fmt.Fprintf(&b, "<p>%s</p>\n", html.EscapeString(fmt.Sprintf("Run %s, %v.", res.Start.UTC().Format(time.RFC3339), res.End.Sub(res.Start).Round(time.Second))))
	b.WriteString("<h2>Invalidation lag (writer 2xx → both edges of the region), log scale</h2>\n")
	b.WriteString(res.svg(func(rr *RegionResult) []point {
		var ps []point
		for _, l := range rr.Lags {
			if l.Lag >= 0 {
				ps = append(ps, point{l.At.Sub(res.Start).Seconds(), l.Lag.Seconds()})
			}
		}
		return ps
	}))
	b.WriteString("<h2>Status p99 at the region's edges, per second, log scale</h2>\n")
	b.WriteString(res.svg(func(rr *RegionResult) []point { return perSecond(res.Start, rr.Edge, "status") }))
	b.WriteString("<h2>Activation p99 through the region's edges, per second, log scale</h2>\n")
	b.WriteString(res.svg(func(rr *RegionResult) []point { return perSecond(res.Start, rr.Edge, "activate") }))
	b.WriteString("<h2>Tables</h2>\n")
	for _, rr := range res.Regions {
		fmt.Fprintf(&b, "<h3>%s (RTT %v ± %v)</h3>\n<table><tr><th>scenario<th>status p50<th>status p99<th>200<th>stale<th>activation p99<th>2xx / 503 / none<th>lag p50<th>lag p99<th>direct status p50<th>direct status p99<th>direct activation p99</tr>\n",
			html.EscapeString(rr.Name), rr.RTT, rr.Jitter)
		for _, r := range res.Rows(rr) {
			fmt.Fprintf(&b, "<tr><td>%s<td>%s<td>%s<td>%s<td>%s<td>%s<td>%d / %d / %d<td>%s<td>%s<td>%s<td>%s<td>%s</tr>\n", r.Scenario,
				ms(r.StatusP50), ms(r.StatusP99), pct(r.OK, r.Checks), pct(r.Stale, r.OK), ms(r.ActP99), r.Act2xx, r.Act503, r.Act0,
				ms(r.LagP50), ms(r.LagP99), ms(r.DirectP50), ms(r.DirectP99), ms(r.DirectActP99))
		}
		b.WriteString("</table>\n")
	}
	b.WriteString("<h2>Checks</h2>\n<table><tr><th>check<th>checked<th>result</tr>\n")
	for _, c := range res.Checks {
		r := "ok"
		if !c.OK() {
			r = "FAILED: " + strings.Join(c.Failed[:min(len(c.Failed), 5)], "; ")
		}
		fmt.Fprintf(&b, "<tr><td>%s<td>%d<td>%s</tr>\n", html.EscapeString(c.Name), c.Checked, html.EscapeString(r))
	}
	b.WriteString("</table>\n<ul>\n")
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "<li>%s\n", html.EscapeString(n))
	}
	b.WriteString("</ul>\n")
	return b.String()
}

type point struct{ x, y float64 } // seconds since start, seconds

// perSecond is the p99 latency of the entries of kind per second of the run.
func perSecond(start time.Time, es []chaos.Entry, kind string) []point {
	by := map[int][]time.Duration{}
	for _, e := range es {
		if e.Kind == kind {
			s := int(e.Start.Sub(start).Seconds())
			by[s] = append(by[s], e.Latency)
		}
	}
	var ps []point
	for s, ds := range by {
		ps = append(ps, point{float64(s) + 0.5, q(ds, 0.99).Seconds()})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].x < ps[j].x })
	return ps
}

var colours = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

// svg draws one panel: the scenario windows shaded, one series per region, a log y axis
// from 1 ms to 100 s.
func (res *Result) svg(series func(*RegionResult) []point) string {
	const W, H, L, R, T, B = 1000.0, 280.0, 60.0, 20.0, 10.0, 40.0
	total := math.Max(1, res.End.Sub(res.Start).Seconds())
	x := func(s float64) float64 { return L + (W-L-R)*s/total }
	lo, hi := math.Log10(0.001), math.Log10(100)
	y := func(v float64) float64 {
		l := math.Log10(math.Max(v, 0.001))
		return T + (H-T-B)*(1-(l-lo)/(hi-lo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-size="11">`, W, H)
	for i, w := range res.Windows {
		x0, x1 := x(w.From.Sub(res.Start).Seconds()), x(w.To.Sub(res.Start).Seconds())
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s" opacity="0.12"/><text x="%.1f" y="%.0f">%s</text>`,
			x0, T, x1-x0, H-T-B, []string{"#888", "#e00", "#e90", "#09e"}[i%4], x0+2, T+12, html.EscapeString(w.Scenario))
	}
	for _, v := range []float64{0.001, 0.01, 0.1, 1, 10, 100} {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="4" y="%.1f">%s</text>`, L, W-R, y(v), y(v), y(v)+4, ms(time.Duration(v*1e9)))
	}
	for s := 0.0; s <= total; s += 10 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0f s</text>`, x(s), H-B+15, s)
	}
	for i, rr := range res.Regions {
		c := colours[i%len(colours)]
		var pts []string
		for _, p := range series(rr) {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.x), y(p.y)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.8" fill="%s"/>`, x(p.x), y(p.y), c)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1" opacity="0.6" points="%s"/>`, c, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">● %s</text>`, L+10+float64(i)*160, H-8, c, html.EscapeString(rr.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
