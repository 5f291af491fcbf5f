package validate

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var promDir = filepath.Join(root, "deploy", "prometheus")

// TestPromtoolCheckRules: rules.yaml loads in Prometheus (YAML shape, PromQL, templates,
// no duplicate rule).
func TestPromtoolCheckRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	out, err := exec.Command(promtool, "check", "rules", filepath.Join(promDir, "rules.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules printed no SUCCESS:\n%s", out)
	}
}

// TestPromtoolTestRules: the alerts fire, and stay quiet, as the unit tests in
// deploy/prometheus/tests expect.
func TestPromtoolTestRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	files, err := filepath.Glob(filepath.Join(promDir, "tests", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no rule unit tests in deploy/prometheus/tests")
	}
	out, err := exec.Command(promtool, append([]string{"test", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "FAILED") || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}
