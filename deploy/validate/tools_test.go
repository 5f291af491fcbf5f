package validate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"go/ast"
	"go/parser"
	"go/token"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireTool returns the path of a command; without it the test fails under
// LICENSE_TEST_REQUIRE=1 (make test) and is skipped otherwise, naming the package.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " is not installed (Debian package " + pkg + "; deploy/local/deps.sh installs it)"
	if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var (
	knownOnce sync.Once
	knownVars map[string]bool
	knownErr  error
)

// knownEnv returns every variable the writer and the edge read: the env tags of their
// Config structs (writer/app, edge/app) with the EnvPrefix constant in front. Read from the
// source, so this package does not link the binaries.
func knownEnv(t *testing.T) map[string]bool {
	t.Helper()
	knownOnce.Do(func() {
		knownVars = map[string]bool{}
		for _, dir := range []string{"writer/app", "edge/app"} {
			if knownErr = configEnv(filepath.Join(root, dir), knownVars); knownErr != nil {
				return
			}
		}
	})
	if knownErr != nil {
		t.Fatal(knownErr)
	}
	return knownVars
}

func configEnv(dir string, into map[string]bool) error {
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	var prefix string
	var fields []*ast.Field
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.ValueSpec:
				for i, name := range x.Names {
					if name.Name == "EnvPrefix" && i < len(x.Values) {
						if lit, ok := x.Values[i].(*ast.BasicLit); ok {
							prefix, _ = strconv.Unquote(lit.Value)
						}
					}
				}
			case *ast.TypeSpec:
				if st, ok := x.Type.(*ast.StructType); ok && x.Name.Name == "Config" {
					fields = append(fields, st.Fields.List...)
				}
			}
			return true
		})
	}
	if prefix == "" || len(fields) == 0 {
		return &os.PathError{Op: "find EnvPrefix and Config", Path: dir, Err: os.ErrNotExist}
	}
	for _, f := range fields {
		if f.Tag == nil {
			continue
		}
		tag, _ := strconv.Unquote(f.Tag.Value)
		if env := reflect.StructTag(tag).Get("env"); env != "" {
			into[prefix+strings.Split(env, ",")[0]] = true
		}
	}
	return nil
}

// natsServerCheck runs `nats-server -t` on a configuration with the TLS files the pods
// mount (/etc/nats-tls, a generated CA and certificate here), the pid and store paths
// moved into a temporary folder, and env as the pod's environment.
func natsServerCheck(t *testing.T, conf string, env map[string]string) {
	t.Helper()
	bin := requireTool(t, "nats-server", "nats-server")
	dir := t.TempDir()
	writeTLS(t, dir)
	conf = strings.NewReplacer("/etc/nats-tls/", dir+"/", "/var/run/nats/", dir+"/", "/data/jetstream", dir+"/js").Replace(conf)
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-t", "-c", path)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("nats-server -t: %v\n%s\n--- config ---\n%s", err, out, conf)
	}
}

// writeTLS writes ca.crt, tls.crt and tls.key (a cert-manager Secret's keys) into dir.
func writeTLS(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, b := range map[string][]byte{
		"ca.crt":  cert,
		"tls.crt": cert,
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
