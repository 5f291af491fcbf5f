package k6

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestScriptsParse checks every script with `node --check` (a copy named .mjs, so node
// parses it as the ES module it is). k6 is not installable here; node's parser catches
// syntax errors, not k6 API misuse.
func TestScriptsParse(t *testing.T) {
	node := tool(t, "node", "cannot check the k6 scripts' syntax (apt-get install nodejs)")
	files, err := filepath.Glob("*.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	dir := t.TempDir()
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cp := filepath.Join(dir, f[:len(f)-len(".js")]+".mjs")
			if err := os.WriteFile(cp, src, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(node, "--check", cp).CombinedOutput(); err != nil {
				t.Fatalf("node --check %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestScriptsUseSharedScenarios checks that each scenario script runs a scenario of
// ../scenarios.json under its own name, so k6 and the Go harness run the same numbers.
func TestScriptsUseSharedScenarios(t *testing.T) {
	b, err := os.ReadFile("../scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`optionsFor\('([a-z_]+)'\)`)
	for name := range all {
		if name[0] == '_' {
			continue
		}
		src, err := os.ReadFile(name + ".js")
		if err != nil {
			t.Errorf("scenario %s has no k6 script: %v", name, err)
			continue
		}
		m := re.FindSubmatch(src)
		if m == nil || string(m[1]) != name {
			t.Errorf("%s.js does not call optionsFor('%s')", name, name)
		}
	}
}
