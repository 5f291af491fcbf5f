package deptest

import (
	"strings"
	"testing"
)

func TestViolationsReportsAForbiddenImport(t *testing.T) {
	pkgs := []Pkg{{ImportPath: Module + "/edge/x", Deps: []string{"fmt", Module + "/writer/licensing", Module + "/writerish", "net/http"}}}
	got := Violations(pkgs, Module+"/writer", "net/http")
	if len(got) != 2 || !strings.Contains(got[0], "/writer/licensing") || !strings.Contains(got[1], "net/http") {
		t.Fatalf("violations = %v, want the writer/licensing and net/http imports", got)
	}
}
