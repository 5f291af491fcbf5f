package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfilesCopyWhatTheBinariesImport: each Dockerfile copies only some top-level
// folders; every folder of this module the binary imports must be among them, or the
// image build fails (deploy/README.md, "Images").
func TestDockerfilesCopyWhatTheBinariesImport(t *testing.T) {
	const module = "github.com/licensing/licensing/"
	copyLine := regexp.MustCompile(`(?m)^COPY ([a-z0-9_-]+)/ `)
	buildLine := regexp.MustCompile(`go build .* (\./[a-z0-9_/-]+)\s*$`)
	for _, name := range []string{"Dockerfile.writer", "Dockerfile.edge"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(root, "deploy", "docker", name))
			if err != nil {
				t.Fatal(err)
			}
			copied := map[string]bool{}
			for _, m := range copyLine.FindAllStringSubmatch(string(b), -1) {
				copied[m[1]] = true
			}
			var pkg string
			for _, line := range strings.Split(string(b), "\n") {
				if m := buildLine.FindStringSubmatch(line); m != nil {
					pkg = m[1]
				}
			}
			if pkg == "" || len(copied) == 0 {
				t.Fatalf("no go build line or no COPY of a folder (copied %v)", copied)
			}
			cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list %s: %v", pkg, err)
			}
			need := map[string]bool{}
			for _, p := range strings.Fields(string(out)) {
				if rest, ok := strings.CutPrefix(p, module); ok {
					need[strings.SplitN(rest, "/", 2)[0]] = true
				}
			}
			if len(need) == 0 {
				t.Fatalf("%s imports nothing of this module?", pkg)
			}
			for dir := range need {
				if !copied[dir] {
					t.Errorf("%s imports %s%s/..., which %s does not copy", pkg, module, dir, name)
				}
			}
		})
	}
}
