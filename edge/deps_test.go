// Package edge_test holds the dependency rules of the edge and of shared/ (STYLE.md,
// after tailscale's tstest/deptest): no edge package imports the writer, and shared/
// imports neither binary nor any driver. The edge has no code at this level; its packages
// live in the subfolders.
package edge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/licensing/licensing"

type pkg struct {
	ImportPath string
	Deps       []string
}

func list(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	args := append([]string{"list", "-deps=false", "-json=ImportPath,Deps"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", patterns, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list %v: no packages", patterns)
	}
	return pkgs
}

// violations lists "pkg depends on dep" for every dep matching a forbidden prefix.
func violations(pkgs []pkg, prefixes ...string) []string {
	var out []string
	for _, p := range pkgs {
		for _, d := range p.Deps {
			for _, f := range prefixes {
				if d == f || strings.HasPrefix(d, f+"/") {
					out = append(out, p.ImportPath+" depends on "+d)
				}
			}
		}
	}
	return out
}

func TestEdgeDoesNotImportWriter(t *testing.T) {
	for _, v := range violations(list(t, module+"/edge/..."), module+"/writer") {
		t.Error(v)
	}
}

func TestSharedImportsNoBinaryAndNoDriver(t *testing.T) {
	for _, v := range violations(list(t, module+"/shared/..."),
		module+"/writer", module+"/edge",
		"github.com/jackc/pgx", "github.com/redis/go-redis", "github.com/nats-io",
		"github.com/valyala/fasthttp", "github.com/dgraph-io/ristretto", "github.com/lib/pq") {
		t.Error(v)
	}
}

func TestViolationsReportsAForbiddenImport(t *testing.T) {
	pkgs := []pkg{{ImportPath: module + "/edge/x", Deps: []string{"fmt", module + "/writer/licensing", module + "/writerish"}}}
	got := violations(pkgs, module+"/writer")
	if len(got) != 1 || !strings.Contains(got[0], "/writer/licensing") {
		t.Fatalf("violations = %v, want exactly the writer/licensing import", got)
	}
}
