package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	writerapp "github.com/licensing/licensing/writer/app"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// external are the series the rules and the dashboard read from other exporters
// (Prometheus itself, kube-state-metrics); every other name must be exported by a writer
// or an edge.
var external = map[string]bool{
	"up": true,
	"kube_deployment_status_replicas_available": true,
	"kube_pod_status_ready":                     true,
}

// reference is one metric name an alert, a recording rule or a dashboard panel uses.
type reference struct{ name, where string }

// ruleFile is the part of a Prometheus rule file the check reads.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// selectors parses a PromQL expression and returns the metric names its selectors name.
func selectors(t *testing.T, expr, where string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v\n%s", where, err, expr)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if v, ok := n.(*parser.VectorSelector); ok {
			if v.Name == "" {
				t.Errorf("%s: a selector without a metric name: %s", where, v)
			}
			names = append(names, v.Name)
		}
		return nil
	})
	return names
}

// grafanaVars replaces Grafana's interval variables by durations PromQL parses (the
// dashboard's own variables only appear inside label matchers' strings).
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// referenced reads every metric name deploy/prometheus/rules.yaml and the Grafana
// dashboards use, and the names of the recording rules.
func referenced(t *testing.T) (refs []reference, recorded map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	recorded = map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			where := "rules.yaml " + g.Name + " " + r.Record + r.Alert
			for _, n := range selectors(t, r.Expr, where) {
				refs = append(refs, reference{n, where})
			}
		}
	}
	dashboards, err := filepath.Glob("../deploy/grafana/*.json")
	if err != nil || len(dashboards) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	labelValues := regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)
	for _, f := range dashboards {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s is not valid JSON: %v", f, err)
		}
		exprs := 0
		var walk func(v any, title string)
		walk = func(v any, title string) {
			switch v := v.(type) {
			case map[string]any:
				if s, ok := v["title"].(string); ok {
					title = s
				}
				for k, x := range v {
					s, ok := x.(string)
					switch {
					case k == "expr" && ok:
						exprs++
						where := filepath.Base(f) + " panel " + title
						for _, n := range selectors(t, grafanaVars.Replace(s), where) {
							refs = append(refs, reference{n, where})
						}
					case (k == "query" || k == "definition") && ok:
						for _, m := range labelValues.FindAllStringSubmatch(s, -1) {
							refs = append(refs, reference{m[1], filepath.Base(f) + " variable query"})
						}
					default:
						walk(x, title)
					}
				}
			case []any:
				for _, x := range v {
					walk(x, title)
				}
			}
		}
		walk(d, "")
		if exprs < 10 {
			t.Errorf("%s: only %d expressions found; the dashboard's layout changed?", f, exprs)
		}
	}
	return refs, recorded
}

// scrape reads a /metrics answer into its families.
func scrape(t *testing.T, c *client) map[string]*dto.MetricFamily {
	t.Helper()
	r := c.must(t, 200, "GET", "/metrics", "", nil, "X-Test-Undocumented", "true")
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(r.Body)))
	if err != nil {
		t.Fatalf("%s/metrics: %v", c.base, err)
	}
	return mfs
}

// family finds the family a referenced series name belongs to (a histogram's _bucket,
// _sum and _count series belong to the histogram).
func family(mfs map[string]*dto.MetricFamily, name string) *dto.MetricFamily {
	if mf, ok := mfs[name]; ok {
		return mf
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if mf, ok := mfs[base]; ok && (mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY) {
				return mf
			}
		}
	}
	return nil
}

func label(m *dto.Metric, name string) (string, bool) {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue(), true
		}
	}
	return "", false
}

// TestMetricsConventions (ARCHITECTURE.md "Metrics conventions"): every metric an alert,
// a recording rule or a dashboard panel uses is exported by a writer or an edge, and the
// exported families follow the conventions: the configured region on every series, code
// (never status) for the status class, _total counters, latency histograms reaching
// 30 s, build_info, pool, NATS, outbox-backlog and consumer-lag metrics.
func TestMetricsConventions(t *testing.T) {
	refs, recorded := referenced(t)
	if len(refs) < 50 {
		t.Fatalf("only %d metric references found in the rules and dashboards", len(refs))
	}

	const region = "eu-test"
	w := newWorld(t)
	prefix := "metrics-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":" // fresh rate-limit budgets
	wr := w.writer(t, func(c *writerapp.Config) {
		c.Region = region
		c.RateLimits, c.LimitNotFound, c.RedisAddr, c.LimitKeyPrefix = "on", "1/1h:1", w.redis, prefix
	})
	cfg := w.edgeConfig("metrics-edge", wr.base)
	cfg.Region = region
	cfg.RateLimits, cfg.LimitNotFound, cfg.LimitKeyPrefix = "on", "1/1h:1", prefix
	ed := w.edge(t, cfg)

	// traffic that creates the labelled series: a write relayed to the writer, and 404s
	// on both until a rate limit refuses one (429)
	api := wr.brand(t, "metrics", "pro")
	key := wr.licenseKey(t, api, map[string]any{"product": "pro"})
	// a known key read through the edge's tiers (the replica may replay it a moment later)
	deadline := time.Now().Add(10 * time.Second)
	for ed.call(t, "GET", "/v1/public/metrics/licenses/"+key.Key+"/status", "", nil).Status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the edge does not find a new key")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ed.call(t, "POST", "/v1/public/metrics/activations", "", map[string]any{"license_key": "NO-SUCH-KEY", "instance": "https://a.example"})
	for _, c := range []*client{ed.client, wr} {
		deadline = time.Now().Add(10 * time.Second)
		for c.call(t, "GET", "/v1/public/metrics/licenses/NO-SUCH-KEY/status", "", nil).Status != 429 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no 429 after repeated 404s", c.base)
			}
		}
	}

	// the edge's NATS connection and consumer come up asynchronously: poll
	var writerMF, edgeMF map[string]*dto.MetricFamily
	deadline = time.Now().Add(15 * time.Second)
	for {
		writerMF, edgeMF = scrape(t, wr), scrape(t, ed.client)
		if gauge(edgeMF, "license_edge_nats_connected") == 1 && gauge(writerMF, "license_writer_nats_connected") == 1 &&
			edgeMF["license_edge_relayed_total"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS connected: writer %v, edge %v", gauge(writerMF, "license_writer_nats_connected"), gauge(edgeMF, "license_edge_nats_connected"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Run("referenced-metrics-exported", func(t *testing.T) {
		checked := map[string]bool{}
		for _, r := range refs {
			switch {
			case strings.Contains(r.name, ":"):
				if !recorded[r.name] {
					t.Errorf("%s uses %s, which no recording rule records", r.where, r.name)
				}
			case external[r.name]:
			case family(writerMF, r.name) == nil && family(edgeMF, r.name) == nil:
				t.Errorf("%s uses %s, which neither the writer nor the edge exports", r.where, r.name)
			default:
				checked[r.name] = true
			}
		}
		t.Logf("%d references, %d distinct exported metrics checked", len(refs), len(checked))
	})

	t.Run("families-follow-conventions", func(t *testing.T) {
		for bin, mfs := range map[string]map[string]*dto.MetricFamily{"writer": writerMF, "edge": edgeMF} {
			for name, mf := range mfs {
				if !strings.HasPrefix(name, "license_") {
					continue
				}
				if mf.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
					t.Errorf("%s: counter %s does not end in _total", bin, name)
				}
				for _, m := range mf.GetMetric() {
					if v, _ := label(m, "region"); v != region {
						t.Errorf("%s: %s has region %q, want %q", bin, name, v, region)
					}
					if _, ok := label(m, "status"); ok {
						t.Errorf("%s: %s has a status label; the status class is code", bin, name)
					}
					if v, ok := label(m, "code"); ok && !regexp.MustCompile(`^([1-5]xx|error)$`).MatchString(v) {
						t.Errorf("%s: %s has code %q, not a status class", bin, name, v)
					}
					if h := m.GetHistogram(); h != nil && strings.HasSuffix(name, "_seconds") {
						if !slices.ContainsFunc(h.GetBucket(), func(b *dto.Bucket) bool { return b.GetUpperBound() == 30 }) {
							t.Errorf("%s: latency histogram %s has no 30 s bucket", bin, name)
						}
					}
				}
			}
		}
	})

	t.Run("build-info", func(t *testing.T) {
		for name, mfs := range map[string]map[string]*dto.MetricFamily{"license_writer_build_info": writerMF, "license_edge_build_info": edgeMF} {
			mf := mfs[name]
			if mf == nil || len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge().GetValue() != 1 {
				t.Fatalf("%s: %v", name, mf)
			}
			for _, l := range []string{"version", "revision", "goversion"} {
				if v, _ := label(mf.GetMetric()[0], l); v == "" {
					t.Errorf("%s has no %s", name, l)
				}
			}
		}
	})

	t.Run("pools", func(t *testing.T) {
		for _, c := range []struct {
			mfs   map[string]*dto.MetricFamily
			name  string
			pools map[string]float64 // pool → max connections
		}{
			{writerMF, "license_writer_db_pool_max_connections", map[string]float64{"primary": 20, "webhooks": -1}},
			{edgeMF, "license_edge_db_pool_max_connections", map[string]float64{"replica": 8, "primary": 8}},
		} {
			got := map[string]float64{}
			for _, m := range c.mfs[c.name].GetMetric() {
				p, _ := label(m, "pool")
				got[p] = m.GetGauge().GetValue()
			}
			for p, want := range c.pools {
				if v, ok := got[p]; !ok || (want > 0 && v != want) || v <= 0 {
					t.Errorf("%s{pool=%q} = %v (present %v), want %v", c.name, p, v, ok, want)
				}
			}
			base := strings.TrimSuffix(c.name, "_max_connections")
			for _, n := range []string{"_acquired_connections", "_idle_connections", "_connections", "_acquires_total",
				"_acquire_duration_seconds_total", "_empty_acquires_total", "_canceled_acquires_total"} {
				if c.mfs[base+n] == nil {
					t.Errorf("%s%s is not exported", base, n)
				}
			}
			if counter(c.mfs, base+"_acquires_total") == 0 {
				t.Errorf("%s_acquires_total is 0 after requests that read Postgres", base)
			}
		}
	})

	t.Run("outbox-backlog-and-consumer-lag", func(t *testing.T) {
		for _, n := range []string{"license_outbox_unsent_rows", "license_outbox_oldest_unsent_age_seconds", "license_outbox_backlog_sampled_timestamp_seconds"} {
			if writerMF[n] == nil {
				t.Errorf("writer does not export %s", n)
			}
		}
		for _, n := range []string{"license_edge_stream_pending_messages", "license_edge_nats_reconnects_total"} {
			if edgeMF[n] == nil {
				t.Errorf("edge does not export %s", n)
			}
		}
	})

	if t.Failed() {
		var names []string
		for n := range writerMF {
			names = append(names, n)
		}
		for n := range edgeMF {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("exported: %s", strings.Join(names, " "))
	}
}

func gauge(mfs map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	for _, m := range mfs[name].GetMetric() {
		v += m.GetGauge().GetValue()
	}
	return v
}

func counter(mfs map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	for _, m := range mfs[name].GetMetric() {
		v += m.GetCounter().GetValue()
	}
	return v
}
