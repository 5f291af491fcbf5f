package validate

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var readme = filepath.Join(root, "deploy", "README.md")

// TestReadmeEnvVars: every WRITER_/EDGE_ variable deploy/README.md names is a setting of
// a binary or a variable compose.yaml reads (host ports such as WRITER_PORT).
func TestReadmeEnvVars(t *testing.T) {
	known := knownEnv(t)
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	composeVars := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllStringSubmatch(string(cb), -1) {
		composeVars[m[1]] = true
	}
	n := 0
	for _, v := range regexp.MustCompile(`\b(?:WRITER|EDGE)_[A-Z0-9_]*[A-Z0-9]\b`).FindAllString(string(b), -1) {
		n++
		if !known[v] && !composeVars[v] {
			t.Errorf("deploy/README.md names %s: no binary reads it and compose.yaml does not use it", v)
		}
	}
	if n < 10 {
		t.Errorf("found only %d variable names in deploy/README.md", n)
	}
}

// TestReadmePaths: every file or folder deploy/README.md names in backquotes exists, looked
// up from deploy/, deploy/k8s/, deploy/k8s/overlays/ and the repository root.
func TestReadmePaths(t *testing.T) {
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	pathLike := regexp.MustCompile(`^[a-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*/?$`)
	ext := regexp.MustCompile(`\.(yaml|yml|sh|json|conf|md|go)$`)
	bases := []string{filepath.Join(root, "deploy"), k8sDir, overlays, root}
	// files of other projects, and build output a fresh clone does not have
	external := map[string]bool{"pg_hba.conf": true, "api/openapi-spec/swagger.json": true, "bin/": true}
	n := 0
	for _, m := range regexp.MustCompile("`([^`\\s]+)`").FindAllStringSubmatch(string(b), -1) {
		p := m[1]
		if external[p] || !pathLike.MatchString(p) || (!strings.Contains(p, "/") && !ext.MatchString(p)) {
			continue
		}
		first := strings.SplitN(p, "/", 2)[0]
		if strings.Contains(first, ".") && !ext.MatchString(first) {
			continue // a domain or label prefix: licensing.example.com/region
		}
		n++
		found := false
		for _, base := range bases {
			if _, err := os.Stat(filepath.Join(base, p)); err == nil {
				found = true
				break
			}
		}
		if !found && ext.MatchString(p) && !strings.Contains(p, "/") {
			// a bare file name: anywhere under deploy/
			found = findFile(t, filepath.Join(root, "deploy"), p)
		}
		if !found {
			t.Errorf("deploy/README.md names `%s`, which does not exist", p)
		}
	}
	if n < 10 {
		t.Errorf("found only %d paths in deploy/README.md", n)
	}
}

func findFile(t *testing.T, dir, name string) bool {
	t.Helper()
	found := false
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == name {
			found = true
		}
		return nil
	})
	return found
}
