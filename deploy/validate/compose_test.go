package validate

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

var composeFile = filepath.Join(root, "deploy", "compose", "compose.yaml")

// loadCompose loads compose.yaml as `docker compose config` does (schema validation,
// interpolation, merging of the YAML anchors), with env as the shell's environment.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: b}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("licensing", true) })
	if err != nil {
		t.Fatalf("compose: %v", err)
	}
	return p
}

// TestComposeFile: the compose file is valid compose, runs the services deploy/README.md
// describes, and every WRITER_/EDGE_ variable it sets is a setting of the binaries.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t, map[string]string{})
	for _, name := range []string{"postgres-primary", "postgres-replica", "redis", "nats", "migrate", "db-roles", "writer", "edge-1", "edge-2"} {
		if _, err := p.GetService(name); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
	}
	known := knownEnv(t)
	for _, s := range p.Services {
		for k := range s.Environment {
			if (strings.HasPrefix(k, "WRITER_") || strings.HasPrefix(k, "EDGE_")) && !known[k] {
				t.Errorf("service %s sets %s, which no binary reads", s.Name, k)
			}
		}
	}
	// the writer trusts exactly the edges' fixed addresses as proxies
	w, _ := p.GetService("writer")
	trusted := deref(w.Environment["WRITER_TRUSTED_PROXIES"])
	for _, e := range []string{"edge-1", "edge-2"} {
		s, _ := p.GetService(e)
		var addr string
		for _, n := range s.Networks {
			if n != nil {
				addr = n.Ipv4Address
			}
		}
		if addr == "" || !strings.Contains(trusted, addr+"/32") {
			t.Errorf("%s at %q is not in WRITER_TRUSTED_PROXIES %q", e, addr, trusted)
		}
		if deref(s.Environment["EDGE_REGION"]) == "" {
			t.Errorf("%s: no EDGE_REGION", e)
		}
	}
	if deref(w.Environment["WRITER_REGION"]) == "" {
		t.Error("writer: no WRITER_REGION")
	}
	// RATE_LIMITS=off reaches every binary
	off := loadCompose(t, map[string]string{"RATE_LIMITS": "off"})
	for _, s := range off.Services {
		for k, v := range s.Environment {
			if strings.HasSuffix(k, "_RATE_LIMITS") && deref(v) != "off" {
				t.Errorf("RATE_LIMITS=off: %s %s=%s", s.Name, k, deref(v))
			}
		}
	}
}

// TestComposeRejectsInvalid: the loader does check the schema.
func TestComposeRejectsInvalid(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(bad, []byte("services:\n  a:\n    image: x\n    restart: sometimes-maybe\n    no_such_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir: dir, ConfigFiles: []types.ConfigFile{{Filename: bad}}, Environment: map[string]string{},
	}, func(o *loader.Options) { o.SetProjectName("x", true) })
	if err == nil || !regexp.MustCompile(`no_such_key|additional properties`).MatchString(err.Error()) {
		t.Fatalf("invalid compose file: err %v", err)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
