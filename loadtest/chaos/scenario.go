package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scenario is one fault injected into the running topology under load, between a period
// of load before it and a period after it.
type Scenario struct {
	Name        string
	Description string
	Before      time.Duration
	After       time.Duration
	// Fault injects the fault and heals it (it returns when the fault is over).
	Fault func(ctx context.Context, r *Run) error
	// MinDuring is the status availability the edges must keep while the fault lasts
	// (0: reported, not required). After the fault it must be at least MinAfter.
	MinDuring float64
	// NeedsPostgres: the fault acts on Postgres, which the topology must own.
	NeedsPostgres bool
}

// MinAfter is the status availability required after every fault healed.
const MinAfter = 0.99

// Run is a scenario in progress: the fault records its own measurements here.
type Run struct {
	T     *Topology
	Logf  func(format string, args ...any)
	Notes []string
	Extra []Check
}

// Note records a measurement shown under the scenario's table.
func (r *Run) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
	r.Logf(format, args...)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// PhaseStats summarises one phase of a scenario.
type PhaseStats struct {
	Phase    string
	Duration time.Duration
	// status checks at the edges
	Checks, OK, Stale, NotFound, Unavailable, Other int
	P50, P99, Max                                   time.Duration
	// write requests (attempts) and how many had no answer or a 5xx
	Writes, WriteFailed int
	WriteP50, WriteP99  time.Duration
}

// Availability is the share of status checks answered 200.
func (p PhaseStats) Availability() float64 {
	if p.Checks == 0 {
		return 1
	}
	return float64(p.OK) / float64(p.Checks)
}

// Report is a scenario's outcome.
type Report struct {
	Scenario Scenario
	Phases   []PhaseStats
	Checks   []Check
	Notes    []string
	Ops      int
	Err      error

	ops []*Op
}

// OK reports whether every check held.
func (r *Report) OK() bool {
	if r.Err != nil {
		return false
	}
	for _, c := range r.Checks {
		if !c.OK() {
			return false
		}
	}
	return true
}

// RunScenario runs s on t under load and checks the invariants afterwards.
func RunScenario(ctx context.Context, t *Topology, s Scenario, load LoadConfig, logf func(string, ...any)) *Report {
	rep := &Report{Scenario: s}
	if s.NeedsPostgres && !t.OwnsPostgres() {
		rep.Err = fmt.Errorf("%s acts on Postgres, which this topology does not own", s.Name)
		return rep
	}
	if err := t.EnsureUp(ctx); err != nil {
		rep.Err = err
		return rep
	}
	run := &Run{T: t, Logf: logf}
	j := &Journal{}
	l := NewLoad(t, j, fmt.Sprintf("%s-%d", s.Name, time.Now().UnixNano()%1e9), load)
	logf("%s: %s", s.Name, s.Description)
	start := time.Now()
	l.Start(ctx)
	_ = sleep(ctx, s.Before)
	faultStart := time.Now()
	ferr := s.Fault(ctx, run)
	faultEnd := time.Now()
	if ferr != nil {
		logf("%s: fault: %v", s.Name, ferr)
	}
	_ = sleep(ctx, s.After)
	end := time.Now()
	l.Stop()
	logf("%s: load stopped; checking", s.Name)
	if err := t.EnsureUp(ctx); err != nil {
		rep.Err = errors.Join(ferr, err)
		return rep
	}
	c := NewChecker(t)
	if err := c.Settle(ctx, time.Minute); err != nil {
		rep.Checks = append(rep.Checks, Check{Name: "outbox drained", Failed: []string{err.Error()}})
	}
	ops := j.Ops()
	rep.Ops, rep.ops = len(ops), ops
	rep.Checks = append(rep.Checks, c.All(ctx, ops)...)
	rep.Checks = append(rep.Checks, run.Extra...)
	rep.Notes = run.Notes
	rep.Err = ferr
	for _, ph := range []struct {
		name     string
		from, to time.Time
	}{{"before", start, faultStart}, {"during", faultStart, faultEnd}, {"after", faultEnd, end}} {
		rep.Phases = append(rep.Phases, phaseStats(ph.name, ph.from, ph.to, j.Entries(ph.from, ph.to)))
	}
	never404 := Check{Name: "acknowledged keys never answered 404 at an edge"}
	avail := Check{Name: "status availability"}
	for _, p := range rep.Phases {
		never404.Checked += p.Checks
		if p.NotFound > 0 {
			never404.fail("%s: %d answers 404", p.Phase, p.NotFound)
		}
		avail.Checked += p.Checks
		switch {
		case p.Phase == "during" && p.Availability() < s.MinDuring:
			avail.fail("during: %.2f%% < %.2f%%", 100*p.Availability(), 100*s.MinDuring)
		case p.Phase != "during" && p.Availability() < MinAfter:
			avail.fail("%s: %.2f%% < %.2f%%", p.Phase, 100*p.Availability(), 100*MinAfter)
		}
	}
	rep.Checks = append(rep.Checks, never404, avail)
	if err := j.WriteFile(t.Dir() + "/journal-" + s.Name + ".jsonl"); err != nil {
		logf("journal: %v", err)
	}
	return rep
}

func phaseStats(name string, from, to time.Time, es []Entry) PhaseStats {
	p := PhaseStats{Phase: name, Duration: to.Sub(from)}
	var lat, wlat []time.Duration
	for _, e := range es {
		if e.Kind != "status" {
			p.Writes++
			wlat = append(wlat, e.Latency)
			if e.Status == 0 || e.Status >= 500 {
				p.WriteFailed++
			}
			continue
		}
		p.Checks++
		lat = append(lat, e.Latency)
		switch {
		case e.Status == 200:
			p.OK++
			if e.Stale {
				p.Stale++
			}
		case e.Status == 404:
			p.NotFound++
		case e.Status == 0 || e.Status == 503:
			p.Unavailable++
		default:
			p.Other++
		}
	}
	p.P50, p.P99, p.Max = quantiles(lat)
	p.WriteP50, p.WriteP99, _ = quantiles(wlat)
	return p
}

func quantiles(d []time.Duration) (p50, p99, max time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	q := func(f float64) time.Duration { return d[min(len(d)-1, int(f*float64(len(d))))] }
	return q(0.50), q(0.99), d[len(d)-1]
}

// Table renders the report as a Markdown table with its checks and notes.
func (r *Report) Table() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "#### %s — %s: %s\n\n", r.Scenario.Name, verdict, r.Scenario.Description)
	b.WriteString("| phase | s | status checks | 200 | stale | 404 | unavailable | p50 | p99 | max | writes | failed (retried) | write p50 | write p99 |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "| %s | %.0f | %d | %.2f%% | %d | %d | %d | %s | %s | %s | %d | %d | %s | %s |\n",
			p.Phase, p.Duration.Seconds(), p.Checks, 100*p.Availability(), p.Stale, p.NotFound, p.Unavailable,
			ms(p.P50), ms(p.P99), ms(p.Max), p.Writes, p.WriteFailed, ms(p.WriteP50), ms(p.WriteP99))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "%d writes (ops), each retried until answered. Checks:\n\n", r.Ops)
	for _, c := range r.Checks {
		mark := "ok"
		if !c.OK() {
			mark = "**FAIL**"
		}
		fmt.Fprintf(&b, "- %s %s (%d checked)\n", mark, c.Name, c.Checked)
		for i, f := range c.Failed {
			if i == 5 {
				fmt.Fprintf(&b, "  - … %d more\n", len(c.Failed)-5)
				break
			}
			fmt.Fprintf(&b, "  - %s\n", f)
		}
	}
	if r.Err != nil {
		fmt.Fprintf(&b, "- **FAIL** scenario error: %v\n", r.Err)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

func ms(d time.Duration) string {
	if d >= 100*time.Millisecond {
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.1f ms", float64(d)/1e6)
}
