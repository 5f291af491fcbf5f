// Package deptest checks import directions (after tailscale's tstest/deptest): a test
// lists the packages of a pattern with their transitive imports and fails on any import of
// a forbidden package.
package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// Module is this repository's module path.
const Module = "github.com/licensing/licensing"

// Pkg is one package with its transitive imports.
type Pkg struct {
	ImportPath string
	Deps       []string
}

// List runs go list on patterns.
func List(t testing.TB, patterns ...string) []Pkg {
	t.Helper()
	args := append([]string{"list", "-deps=false", "-json=ImportPath,Deps"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", patterns, err, stderr.String())
	}
	var pkgs []Pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Pkg
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

// Violations lists "pkg depends on dep" for every dep that is one of the forbidden
// packages or inside one.
func Violations(pkgs []Pkg, forbidden ...string) []string {
	var out []string
	for _, p := range pkgs {
		for _, d := range p.Deps {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					out = append(out, p.ImportPath+" depends on "+d)
				}
			}
		}
	}
	return out
}

// Forbid fails t for every violation.
func Forbid(t testing.TB, pkgs []Pkg, forbidden ...string) {
	t.Helper()
	for _, v := range Violations(pkgs, forbidden...) {
		t.Error(v)
	}
}
