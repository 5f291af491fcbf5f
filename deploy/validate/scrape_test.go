package validate

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	yaml2 "go.yaml.in/yaml/v2"
	yaml3 "go.yaml.in/yaml/v3"
)

var scrapeConfig = filepath.Join(promDir, "scrape-config.yaml")

// scrapeJob is one job of scrape-config.yaml, its relabeling parsed by Prometheus's own
// types.
type scrapeJob struct {
	JobName       string            `yaml:"job_name"`
	Relabel       []*relabel.Config `yaml:"relabel_configs"`
	MetricRelabel []*relabel.Config `yaml:"metric_relabel_configs"`
	SD            []struct {
		Role       string `yaml:"role"`
		Namespaces struct {
			Names []string `yaml:"names"`
		} `yaml:"namespaces"`
	} `yaml:"kubernetes_sd_configs"`
}

func scrapeJobs(t *testing.T) []scrapeJob {
	t.Helper()
	raw, err := os.ReadFile(scrapeConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ScrapeConfigs []scrapeJob `yaml:"scrape_configs"`
	}
	if err := yaml2.UnmarshalStrict(raw, &doc); err != nil {
		t.Fatalf("%s: %v", scrapeConfig, err)
	}
	for _, j := range doc.ScrapeConfigs {
		for i, c := range append(append([]*relabel.Config(nil), j.Relabel...), j.MetricRelabel...) {
			if err := c.Validate(model.UTF8Validation); err != nil {
				t.Errorf("%s: relabeling rule %d: %v", j.JobName, i+1, err)
			}
		}
	}
	return doc.ScrapeConfigs
}

// TestScrapeConfigLoads: scrape-config.yaml is a configuration Prometheus loads (promtool
// check config). Debian's promtool is built without Kubernetes service discovery, so the
// check runs on a copy whose kubernetes_sd_configs is a static target: everything else
// (job names, relabeling, metric relabeling) is checked as written.
func TestScrapeConfigLoads(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	raw, err := os.ReadFile(scrapeConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml3.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	jobs, _ := doc["scrape_configs"].([]any)
	if len(jobs) == 0 {
		t.Fatal("no scrape_configs")
	}
	for _, j := range jobs {
		m := j.(map[string]any)
		if _, ok := m["kubernetes_sd_configs"]; !ok {
			t.Fatalf("job %v: no kubernetes_sd_configs", m["job_name"])
		}
		delete(m, "kubernetes_sd_configs")
		m["static_configs"] = []any{map[string]any{"targets": []any{"pod.example:8080"}}}
	}
	b, err := yaml3.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "config", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// TestScrapeConfigFindsThePods: scrape-config.yaml's jobs are the ones the rules and the
// dashboard select by name, and applied to the pods the overlays render (their labels and
// container ports, as Kubernetes service discovery presents them), each job keeps exactly
// its binary's pods on their http port, with the pod's region label as region; the
// binary's own copy of the label (exported_region after the collision) is dropped.
func TestScrapeConfigFindsThePods(t *testing.T) {
	jobs := scrapeJobs(t)
	byName := map[string]scrapeJob{}
	for _, j := range jobs {
		byName[j.JobName] = j
	}
	// every job a rule or a panel names exists
	rules, err := os.ReadFile(filepath.Join(promDir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dashboards, _ := filepath.Glob(filepath.Join(root, "deploy", "grafana", "*.json"))
	texts := []string{string(rules)}
	for _, d := range dashboards {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(b))
	}
	named := 0
	for _, text := range texts {
		for _, m := range regexp.MustCompile(`job=(~?)\\?"([^"\\]+)\\?"`).FindAllStringSubmatch(text, -1) {
			if strings.Contains(m[2], "$") {
				continue // a dashboard variable, whose values come from the scraped jobs
			}
			named++
			if m[1] == "" {
				if _, ok := byName[m[2]]; !ok {
					t.Errorf("job %q is selected by a rule or panel but not scraped", m[2])
				}
				continue
			}
			re := regexp.MustCompile("^(?:" + m[2] + ")$")
			matched := false
			for name := range byName {
				matched = matched || re.MatchString(name)
			}
			if !matched {
				t.Errorf("job=~%q matches no scraped job", m[2])
			}
		}
	}
	if named == 0 {
		t.Fatal("no job selector found in the rules or dashboards: the check looked at nothing")
	}

	central, edges := regionOverlays(t)
	pods := map[string][]string{central: {"Deployment/writer"}}
	for _, e := range edges {
		pods[e] = []string{"Deployment/edge"}
	}
	checked := 0
	for dir, workloads := range pods {
		objs := render(t, dir)
		for _, w := range workloads {
			kind, name, _ := strings.Cut(w, "/")
			o := must(t, objs, kind, name)
			region := str(o.M, "spec", "template", "metadata", "labels", regionLabel)
			for _, target := range discovered(o) {
				for _, j := range jobs {
					lb := labels.NewBuilder(target)
					keep := relabel.ProcessBuilder(lb, j.Relabel...)
					got := lb.Labels()
					port := target.Get("__meta_kubernetes_pod_container_port_name")
					want := j.JobName == "license-"+name && port == "http"
					where := fmt.Sprintf("%s %s port %s, job %s", filepath.Base(dir), w, port, j.JobName)
					switch {
					case keep != want:
						t.Errorf("%s: kept %v, want %v", where, keep, want)
					case keep && got.Get("region") != region:
						t.Errorf("%s: region %q, want the pod's %q", where, got.Get("region"), region)
					case keep && (got.Get("pod") == "" || got.Get("namespace") == ""):
						t.Errorf("%s: pod or namespace label missing: %v", where, got)
					}
					checked++
					if !keep {
						continue
					}
					ns := target.Get("__meta_kubernetes_namespace")
					found := false
					for _, sd := range j.SD {
						for _, n := range sd.Namespaces.Names {
							found = found || (sd.Role == "pod" && n == ns)
						}
					}
					if !found {
						t.Errorf("%s: the job discovers pods in %+v, the pod is in namespace %q", where, j.SD, ns)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no pod checked")
	}
	for _, j := range jobs {
		series := labels.FromStrings("__name__", "license_edge_requests_total", "region", "eu-west-1", "exported_region", "eu-west-1", "route", "status")
		lb := labels.NewBuilder(series)
		if !relabel.ProcessBuilder(lb, j.MetricRelabel...) {
			t.Errorf("%s: metric relabeling drops the series", j.JobName)
		}
		if got := lb.Labels(); got.Has("exported_region") || got.Get("region") != "eu-west-1" || got.Get("route") != "status" {
			t.Errorf("%s: after metric relabeling %v", j.JobName, got)
		}
	}
}

// discovered is what Kubernetes pod discovery presents for a workload's pod: one target
// per container port, with the pod template's labels as __meta_kubernetes_pod_label_*
// (the name sanitized to [a-zA-Z0-9_]), its namespace, a pod name and the port's name.
func discovered(o obj) []labels.Labels {
	meta := map[string]string{
		"__meta_kubernetes_namespace": str(o.M, "metadata", "namespace"),
		"__meta_kubernetes_pod_name":  str(o.M, "metadata", "name") + "-5d9c7b6f4-x2x7q",
	}
	sanitize := regexp.MustCompile(`[^a-zA-Z0-9_]`)
	labelsOf, _ := get(o.M, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range labelsOf {
		meta["__meta_kubernetes_pod_label_"+sanitize.ReplaceAllString(k, "_")] = fmt.Sprint(v)
	}
	var out []labels.Labels
	containers, _ := get(o.M, "spec", "template", "spec", "containers").([]any)
	for i := range containers {
		ports, _ := get(containers[i], "ports").([]any)
		for _, p := range ports {
			m := map[string]string{"__address__": fmt.Sprintf("10.0.0.7:%v", get(p, "containerPort")),
				"__meta_kubernetes_pod_container_port_name": str(p, "name")}
			for k, v := range meta {
				m[k] = v
			}
			out = append(out, labels.FromMap(m))
		}
	}
	return out
}
