package validate

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/syncbuf"
)

// TestLeafLinkTLSAndAuth runs the rendered hub and leaf configurations in local
// nats-server processes on loopback (ports moved, the hub's cluster routes dropped, the
// TLS Secrets replaced by a generated CA and certificate): the leaf joins over TLS with
// its client certificate and the password; a leaf with the wrong password, and one
// without a client certificate, are refused.
func TestLeafLinkTLSAndAuth(t *testing.T) {
	bin := requireTool(t, "nats-server", "nats-server")
	central, edges := regionOverlays(t)
	hubData, _ := configMapData(t, render(t, central), "nats-config")
	leafData, _ := configMapData(t, render(t, edges[0]), "nats-leaf-config")
	dir := t.TempDir()
	writeTLS(t, dir)

	hubPorts := freePorts(t, 3) // client, monitor, leafnodes
	hubConf := dropBlock(hubData["nats.conf"], "cluster")
	hubConf = strings.NewReplacer(
		"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", hubPorts[0]),
		"http: 0.0.0.0:8222", fmt.Sprintf("http: 127.0.0.1:%d", hubPorts[1]),
		"listen: 0.0.0.0:7422", fmt.Sprintf("listen: 127.0.0.1:%d", hubPorts[2]),
	).Replace(hubConf)
	hubLog := startNATS(t, bin, dir, "hub", hubConf, map[string]string{"SERVER_NAME": "hub", "LEAF_PASSWORD": "s3cret"})
	waitFor(t, 10*time.Second, "hub monitor", func() bool { _, err := leafCount(hubPorts[1]); return err == nil })

	leaf := func(name, password string, conf string) {
		ports := freePorts(t, 2)
		conf = strings.NewReplacer(
			"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", ports[0]),
			"http: 0.0.0.0:8222", fmt.Sprintf("http: 127.0.0.1:%d", ports[1]),
		).Replace(conf)
		startNATS(t, bin, dir, name, conf, map[string]string{
			"SERVER_NAME":     name,
			"LEAF_REMOTE_URL": fmt.Sprintf("tls://leaf:%s@127.0.0.1:%d", password, hubPorts[2]),
		})
	}
	leafConf := leafData["nats-leaf.conf"]

	// a leaf with the wrong password: the hub refuses it
	leaf("leaf-badpass", "wrong", leafConf)
	waitFor(t, 15*time.Second, "the hub to refuse the wrong password", func() bool {
		return strings.Contains(hubLog.String(), "Authentication Failure")
	})

	// a leaf without a client certificate (TLS with the CA only): the handshake fails
	noCert := strings.NewReplacer("cert_file: /etc/nats-tls/tls.crt", "", "key_file: /etc/nats-tls/tls.key", "").Replace(leafConf)
	leaf("leaf-nocert", "s3cret", noCert)
	waitFor(t, 15*time.Second, "the hub to refuse a leaf without a client certificate", func() bool {
		return strings.Contains(hubLog.String(), "client didn't provide a certificate")
	})
	if n, _ := leafCount(hubPorts[1]); n != 0 {
		t.Fatalf("%d leaf nodes joined before the right one started", n)
	}

	// the real thing joins
	leaf("leaf-good", "s3cret", leafConf)
	waitFor(t, 15*time.Second, "the leaf to join the hub", func() bool { n, _ := leafCount(hubPorts[1]); return n == 1 })
}

// dropBlock removes `name { ... }` (balanced braces) from a NATS configuration.
func dropBlock(conf, name string) string {
	i := strings.Index(conf, "\n"+name+" {")
	if i < 0 {
		return conf
	}
	depth := 0
	for j := i + 1; j < len(conf); j++ {
		switch conf[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return conf[:i+1] + conf[j+1:]
			}
		}
	}
	return conf
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startNATS runs nats-server with conf (TLS, pid and store paths moved into dir) until the
// test ends, and returns its log.
func startNATS(t *testing.T, bin, dir, name, conf string, env map[string]string) *syncbuf.Buffer {
	t.Helper()
	sub := filepath.Join(dir, name)
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	conf = strings.NewReplacer("/etc/nats-tls/", dir+"/", "/var/run/nats/", sub+"/", "/data/jetstream", sub+"/js").Replace(conf)
	path := filepath.Join(sub, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-c", path)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	log := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, log.String())
		}
	})
	return log
}

func leafCount(monitorPort int) (int, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/leafz", monitorPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var v struct {
		Leafs int `json:"leafnodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, err
	}
	return v.Leafs, nil
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
