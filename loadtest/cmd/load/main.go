// Command load is the Go load harness: it runs the scenarios of loadtest/scenarios.json
// (the same ones the k6 scripts run) against the writer and the edges, measures
// invalidation lag, turns pgbench logs into comparable results, and prints reports.
//
//	load run  -scenario status,mix [-manifest F] [-writer URL] [-edges URL,URL] [-out DIR]
//	load lag  -samples 200 [-manifest F] [-writer URL] [-edges URL,URL] [-out DIR]
//	load big  [-vus 8] [-rate 0] [-checks 1000] [-duration 20s] [-p99 5ms] [-manifest F] ...
//	load pgbench -name NAME [-label L] -script FILE -seconds S [-out DIR] LOGFILE...
//	load report [-md LABEL] [-html FILE] RESULT.json...
//
// run exits 1 when a scenario misses a threshold. load -h lists the commands; load help
// COMMAND (or load COMMAND -h) describes one with its flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/licensing/licensing/loadtest/harness"
	"github.com/licensing/licensing/loadtest/scenario"
	"github.com/licensing/licensing/loadtest/seed"
)

// command is one subcommand: its one-line summary, its synopsis and what it does, shown by
// load -h and load COMMAND -h.
type command struct {
	name, summary, synopsis, about string
	// do runs the command with flags parsed into fs; failed is a missed threshold (exit 1).
	do func(ctx context.Context, fs *flag.FlagSet, args []string) (failed bool, err error)
}

var commands = []command{
	{"run", "run scenarios of loadtest/scenarios.json against the writer and the edges",
		"load run [-scenario status,mix] [-rate N] [-duration D] [-manifest F] [-writer URL] [-edges URL,URL] [-out DIR]",
		"Runs each named scenario (the same ones the k6 scripts run) at its open arrival rate, prints\n" +
			"a latency table, writes JSON and an HTML chart under -out, and exits 1 when a scenario\n" +
			"misses a threshold. The targets must run with rate limits off (make up RATE_LIMITS=off);\n" +
			"the seeder's manifest (make seed) names the keys to use. Runs longer than a few seconds\n" +
			"print progress to stderr every 5 s.", run},
	{"lag", "measure invalidation lag: a change at the writer until every edge answers it",
		"load lag [-samples 200] [-poll 1ms] [-timeout 35s] [-manifest F] [-writer URL] [-edges URL,URL] [-out DIR]",
		"Makes -samples changes at the writer, one at a time, and polls every edge until it answers\n" +
			"the new state; prints the lag distribution and writes JSON and HTML under -out. Prints\n" +
			"the samples done to stderr every 5 s.",
		func(ctx context.Context, fs *flag.FlagSet, args []string) (bool, error) {
			return false, lag(ctx, fs, args)
		}},
	{"big", "the big-license test: activations on one key while its status is checked",
		"load big [-vus 8] [-rate 0] [-checks 1000] [-duration 20s] [-p99 5ms] [-control] [-manifest F] ...",
		"Measures the writer's activation rate on the seeder's big license alone and while each\n" +
			"edge answers -checks status checks per second on it; exits 1 when an edge's status p99\n" +
			"passes -p99. Each phase prints its requests so far to stderr every 5 s.", big},
	{"pgbench", "turn pgbench per-transaction logs into a result comparable with run's",
		"load pgbench -name NAME [-label L] -script FILE -seconds S [-out DIR] LOGFILE...",
		"Reads pgbench --log files and saves one result (latency histogram, rate) under -out.",
		func(_ context.Context, fs *flag.FlagSet, args []string) (bool, error) {
			return false, pgbench(fs, args)
		}},
	{"report", "print saved results as a table or markdown rows, optionally an HTML chart",
		"load report [-md LABEL] [-header] [-html FILE] RESULT.json...",
		"Loads results written by run, lag or pgbench and prints them side by side.",
		func(_ context.Context, fs *flag.FlagSet, args []string) (bool, error) { return false, report(fs, args) }},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli runs one command line and returns the exit code: 0, 1 for a missed threshold, 2 for
// a usage or run error. Help (-h, --help, help [COMMAND]) goes to stdout and exits 0.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			c, ok := lookup(args[1])
			if !ok {
				fmt.Fprintf(stderr, "load: unknown command %q\n", args[1])
				usage(stderr)
				return 2
			}
			c.flags(stdout).Usage()
			return 0
		}
		usage(stdout)
		return 0
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "load: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	out := stderr
	for _, a := range args[1:] {
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			out = stdout
		}
	}
	failed, err := c.do(ctx, c.flags(out), args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "load:", err)
		return 2
	case failed:
		return 1
	}
	return 0
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprint(w, "load is the Go load harness: it runs the scenarios of loadtest/scenarios.json against the\n"+
		"writer and the edges of make up (make seed first), measures invalidation lag and prints reports.\n\n"+
		"usage: load COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nload help COMMAND (or load COMMAND -h) describes a command and its flags.\n")
}

// flags is the command's flag set: errors are returned (ErrHelp for -h), the usage is the
// synopsis, the description and every flag with its default.
func (c command) flags(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n%s\n\nflags:\n", c.synopsis, c.about)
		fs.PrintDefaults()
	}
	return fs
}

type common struct {
	manifest, writer, edges, out, scenarios string
}

func (c *common) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.manifest, "manifest", envOr("MANIFEST", ".data/loadtest/manifest.json"), "seeder manifest (env MANIFEST)")
	fs.StringVar(&c.writer, "writer", envOr("WRITER_URL", "http://127.0.0.1:8080"), "writer base URL (env WRITER_URL)")
	fs.StringVar(&c.edges, "edges", envOr("EDGE_URLS", "http://127.0.0.1:8081,http://127.0.0.1:8082"), "comma-separated edge base URLs (env EDGE_URLS)")
	fs.StringVar(&c.out, "out", ".data/loadtest/results", "directory for JSON and HTML results")
	fs.StringVar(&c.scenarios, "scenarios", "loadtest/scenarios.json", "scenario file shared with k6")
}

func (c *common) runner() (*harness.Runner, error) {
	m, err := seed.ReadManifest(c.manifest)
	if err != nil {
		return nil, fmt.Errorf("read manifest (run the seeder first): %w", err)
	}
	var edges []string
	for _, e := range strings.Split(c.edges, ",") {
		if e = strings.TrimSpace(e); e != "" {
			edges = append(edges, strings.TrimRight(e, "/"))
		}
	}
	r := harness.NewRunner(harness.Targets{Writer: strings.TrimRight(c.writer, "/"), Edges: edges}, m, 256)
	r.Progress = os.Stderr // a line every 5 s on runs longer than that
	return r, nil
}

// limitsOff checks that the targets run without rate limits (the harness loads them from
// one address, so it must measure the service, not the limiter): a limited route answers
// with RateLimit-Policy.
func limitsOff(ctx context.Context, bases []string) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, b := range bases {
		if b = strings.TrimRight(strings.TrimSpace(b), "/"); b == "" {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b+"/v1/public/load-preflight/licenses/NOT-A-KEY/status", nil)
		if err != nil {
			return err
		}
		res, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("preflight %s: %w", b, err)
		}
		res.Body.Close()
		if res.Header.Get("RateLimit-Policy") != "" {
			return fmt.Errorf("%s runs with rate limits on: bring the topology up with 'make up RATE_LIMITS=off' (make load does)", b)
		}
	}
	fmt.Fprintln(os.Stderr, "rate limits: off on the writer and every edge (make up RATE_LIMITS=off)")
	return nil
}

func run(ctx context.Context, fs *flag.FlagSet, args []string) (bool, error) {
	var c common
	c.flags(fs)
	names := fs.String("scenario", "status,activation_storm,mix", "comma-separated scenario names")
	label := fs.String("label", "", "prefix of result file names (e.g. 100k)")
	rate := fs.Int("rate", 0, "override the arrival rate (the run is then not comparable with k6)")
	dur := fs.String("duration", "", "override the duration (idem)")
	variant := fs.String("variant", "", "tag shown next to the scenario name (e.g. cold)")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	all, err := scenario.Load(c.scenarios)
	if err != nil {
		return false, err
	}
	r, err := c.runner()
	if err != nil {
		return false, err
	}
	if err := limitsOff(ctx, append([]string{c.writer}, strings.Split(c.edges, ",")...)); err != nil {
		return false, err
	}
	var results []*harness.Result
	failed := false
	for _, n := range strings.Split(*names, ",") {
		sc, ok := all[strings.TrimSpace(n)]
		if !ok {
			return false, fmt.Errorf("no scenario %q in %s", n, c.scenarios)
		}
		if *rate > 0 {
			sc.Rate = *rate
		}
		if *dur != "" {
			sc.Duration = *dur
		}
		fmt.Fprintf(os.Stderr, "running %s: %s\n", sc.Name, sc.Description)
		res, err := r.Run(ctx, sc)
		if err != nil {
			return false, err
		}
		res.Variant = *variant
		name := sc.Name
		if *variant != "" {
			name += "-" + *variant
		}
		if *label != "" {
			name = *label + "-" + name
		}
		p, err := harness.Save(c.out, name, res)
		if err != nil {
			return false, err
		}
		fmt.Fprintf(os.Stderr, "  wrote %s\n", p)
		failed = failed || !res.Pass
		results = append(results, res)
	}
	harness.WriteTable(os.Stdout, results)
	return failed, writeHTML(c.out, *label, results)
}

func writeHTML(dir, label string, results []*harness.Result) error {
	name := "report"
	if label != "" {
		name = label + "-report"
	}
	if len(results) == 1 {
		name = results[0].Scenario.Name
		if label != "" {
			name = label + "-" + name
		}
	}
	p := filepath.Join(dir, name+".html")
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := harness.WriteHTML(f, "licensing load test "+label, results); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "chart: %s\n", p)
	return nil
}

func lag(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var c common
	c.flags(fs)
	samples := fs.Int("samples", 200, "changes to observe")
	poll := fs.Duration("poll", time.Millisecond, "poll interval per edge")
	timeout := fs.Duration("timeout", 35*time.Second, "give up on one observation after this")
	label := fs.String("label", "", "prefix of the result file name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := c.runner()
	if err != nil {
		return err
	}
	res, err := r.Lag(ctx, *samples, *poll, *timeout)
	if err != nil {
		return err
	}
	name := "invalidation_lag"
	if *label != "" {
		name = *label + "-" + name
	}
	if _, err := harness.Save(c.out, name, res); err != nil {
		return err
	}
	harness.WriteTable(os.Stdout, []*harness.Result{res})
	return writeHTML(c.out, *label, []*harness.Result{res})
}

func big(ctx context.Context, fs *flag.FlagSet, args []string) (bool, error) {
	var c common
	c.flags(fs)
	vus := fs.Int("vus", 8, "closed-loop workers activating on the big license")
	checks := fs.Int("checks", 1000, "status checks per second per edge")
	actRate := fs.Int("rate", 0, "activations per second during the checks (0: as fast as the vus go)")
	control := fs.Bool("control", false, "activate the second big license while the first is checked (same load, none on the checked key)")
	dur := fs.Duration("duration", 20*time.Second, "duration of each phase")
	p99 := fs.Duration("p99", 5*time.Millisecond, "status p99 bound per edge")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	r, err := c.runner()
	if err != nil {
		return false, err
	}
	res, err := r.BigLicense(ctx, *vus, *actRate, *checks, *dur, *p99, *control)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return false, err
	}
	b, _ := json.MarshalIndent(res, "", " ")
	p := filepath.Join(c.out, "big_license.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return false, err
	}
	fmt.Printf("big license: %d activations; writer maximum on it %.0f activations/s; %.0f/s while each edge got %d checks/s\n",
		r.Manifest.Big[0].SeatsUsed, res.MaxRate, res.RateUnderChecks, res.CheckRate)
	harness.WriteTable(os.Stdout, append(res.Edges, res.Activations))
	fmt.Fprintf(os.Stderr, "wrote %s (pass: %v)\n", p, res.Pass)
	return !res.Pass, nil
}

func pgbench(fs *flag.FlagSet, args []string) error {
	name := fs.String("name", "pgbench", "result name")
	script := fs.String("script", "", "the pgbench script that ran")
	secs := fs.Float64("seconds", 0, "run duration")
	out := fs.String("out", ".data/loadtest/results", "result directory")
	label := fs.String("label", "", "prefix of the result file name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := harness.FromPgbenchLog(*name, *script, *secs, fs.Args())
	if err != nil {
		return err
	}
	file := *name
	if *label != "" {
		file = *label + "-" + file
	}
	if _, err := harness.Save(*out, file, res); err != nil {
		return err
	}
	harness.WriteTable(os.Stdout, []*harness.Result{res})
	return nil
}

func report(fs *flag.FlagSet, args []string) error {
	md := fs.String("md", "", "print markdown rows labelled with this data size instead of the table")
	header := fs.Bool("header", false, "print the markdown header first")
	htmlOut := fs.String("html", "", "also write a chart of all results here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var results []*harness.Result
	for _, p := range fs.Args() {
		r, err := harness.LoadResult(p)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if *header {
		fmt.Print(harness.MarkdownHeader)
	}
	if *md != "" {
		harness.WriteMarkdown(os.Stdout, *md, results)
	} else if len(results) > 0 {
		harness.WriteTable(os.Stdout, results)
	}
	if *htmlOut != "" {
		f, err := os.Create(*htmlOut)
		if err != nil {
			return err
		}
		defer f.Close()
		return harness.WriteHTML(f, "licensing benchmarks", results)
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
