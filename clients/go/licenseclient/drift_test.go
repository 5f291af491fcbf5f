package licenseclient_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ogenArgs are the Makefile's client-go arguments after -target and before the document.
var ogenArgs = []string{"-config", "clients/go/ogen.yml", "-package", "licenseapi", "-clean", "-loglevel", "error"}

// TestGeneratedClientIsUpToDate runs the generator (the go.mod tool) into a temporary
// directory and compares its files byte for byte with the committed clients/go/licenseapi.
func TestGeneratedClientIsUpToDate(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to run the generator: %v", err)
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	args := append([]string{"tool", "ogen", "-target", tmp}, ogenArgs...)
	cmd := exec.Command(goBin, append(args, "writer/openapi/openapi.yaml")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	committed := filepath.Join(root, "clients/go/licenseapi")
	want, got := generated(t, tmp), generated(t, committed)
	if !slices.Equal(want, got) {
		t.Fatalf("clients/go/licenseapi holds %v, the generator writes %v: run make client-go", got, want)
	}
	for _, name := range want {
		a, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("clients/go/licenseapi/%s differs from what ogen generates from writer/openapi/openapi.yaml: run make client-go", name)
		}
	}
}

// generated lists the generator's files in dir (ogen -clean removes only these).
func generated(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "oas_") && strings.HasSuffix(e.Name(), "_gen.go") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatalf("no generated files in %s", dir)
	}
	return names
}
