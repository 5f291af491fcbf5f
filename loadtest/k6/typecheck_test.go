package k6

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool finds a command the k6 tests need: missing, it fails the test under
// LICENSE_TEST_REQUIRE=1 (make test) and skips it, with the reason, otherwise.
func tool(t *testing.T, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
			t.Fatalf("%s is not installed (deploy/local/deps.sh installs it): %s", name, why)
		}
		t.Skipf("%s is not installed (deploy/local/deps.sh installs it): %s", name, why)
	}
	return p
}

// TestScriptsTypeCheck runs typecheck.sh: tsc --checkJs over every script against the
// pinned @types/k6 (the first run npm-installs it into ./node_modules).
func TestScriptsTypeCheck(t *testing.T) {
	tool(t, "npm", "the k6 scripts are type-checked with TypeScript from npm")
	out, err := exec.Command("bash", "typecheck.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("typecheck.sh: %v\n%s", err, out)
	}
}

// TestTypeCheckCatchesMisuse: the same configuration refuses a script that misuses
// k6's API (an unknown http method, a misspelt scenario option, a wrong metric value),
// so a passing TestScriptsTypeCheck means something.
func TestTypeCheckCatchesMisuse(t *testing.T) {
	tool(t, "npm", "the k6 scripts are type-checked with TypeScript from npm")
	// after the install: TestScriptsTypeCheck runs first in this file's order
	tsc, err := filepath.Abs(filepath.Join("node_modules", ".bin", "tsc"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tsc); err != nil {
		if out, err := exec.Command("bash", "typecheck.sh").CombinedOutput(); err != nil {
			t.Fatalf("typecheck.sh: %v\n%s", err, out)
		}
	}
	// inside node_modules, so that 'k6/http' resolves to ./node_modules/@types/k6
	dir := filepath.Join("node_modules", ".probe")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	files := map[string]string{
		"tsconfig.json": `{"extends": "../../tsconfig.json", "include": [], "files": ["bad.js", "../../k6-globals.d.ts"]}`,
		"bad.js": `import http from 'k6/http';
import { Rate } from 'k6/metrics';

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: { s: { executor: 'constant-arrival-rate', rate: 1, timeUnit: '1s', duration: '1s', preAllocatedVUs: 1, maxVus: 1 } },
};

const r = new Rate('r');

export default function () {
  http.gett('http://x');
  r.add('yes');
}
`,
	}
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(tsc, "-p", filepath.Join(dir, "tsconfig.json")).CombinedOutput()
	if err == nil {
		t.Fatalf("tsc accepted a script that misuses k6:\n%s", out)
	}
	for _, want := range []string{"maxVus", "gett", "bad.js(13,"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tsc output does not mention %q:\n%s", want, out)
		}
	}
}
