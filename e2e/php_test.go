package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/app"
	"github.com/licensing/licensing/shared/license"
)

// The PHP client (clients/php) against the real topology: TestPHPClient runs its phpunit
// suite against a writer and two edges started here (real signatures, real rate limits),
// with a control server on loopback through which the suite stops and restarts the main
// edge. TestPHPNormalizeParity compares the client's instance normalization and
// development classification with the service's own functions over a large table.
//
// Both need php (with curl and sodium) and phpunit; a missing tool skips them, or fails
// them under LICENSE_TEST_REQUIRE=1 (make test). LICENSE_TEST_SKIP_PHP=1 skips them on
// purpose.

const phpClientDir = "../clients/php"

// phpLeaseIssuer is the iss the tests' edges sign with (a deployment's configured URL).
const phpLeaseIssuer = "https://licenses.pluginshop-e2e.com"

// needCommands returns the paths of the commands; a missing one fails the test under
// LICENSE_TEST_REQUIRE=1 and skips it otherwise. optOut, when set to 1, skips the test.
func needCommands(t *testing.T, optOut string, names ...string) map[string]string {
	t.Helper()
	if os.Getenv(optOut) == "1" {
		t.Skipf("%s=1: skipped on purpose", optOut)
	}
	paths := map[string]string{}
	var missing []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("missing %s (deploy/local/deps.sh installs them); set %s=1 to skip this test on purpose",
			strings.Join(missing, ", "), optOut)
		if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return paths
}

// needPHPModules fails (or skips, as needCommands) when php lacks a module.
func needPHPModules(t *testing.T, php, optOut string, modules ...string) {
	t.Helper()
	out, err := exec.Command(php, "-m").Output()
	if err != nil {
		t.Fatalf("php -m: %v", err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		have[strings.ToLower(strings.TrimSpace(l))] = true
	}
	for _, m := range modules {
		if !have[m] {
			msg := fmt.Sprintf("php has no %s module (deploy/local/deps.sh installs it); set %s=1 to skip on purpose", m, optOut)
			if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// managedEdge is an edge that the PHP suite stops and restarts, on the same address, with
// the same signing key; errors go back over HTTP rather than to t (a handler goroutine).
type managedEdge struct {
	cfg app.Config
	log *slog.Logger

	mu     sync.Mutex
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func (m *managedEdge) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		return nil
	}
	cfg := withRegistry(m.cfg)
	if m.addr != "" {
		cfg.Addr = m.addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, m.log, ready) }()
	select {
	case a := <-ready:
		if m.addr == "" {
			m.addr = a // a restart listens on the same address
		}
	case err := <-done:
		cancel()
		return fmt.Errorf("edge did not start: %w", err)
	case <-time.After(20 * time.Second):
		cancel()
		return errors.New("edge did not start in time")
	}
	m.cancel, m.done = cancel, done
	return nil
}

func (m *managedEdge) address() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

func (m *managedEdge) stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.done:
		return err
	case <-time.After(20 * time.Second):
		return errors.New("edge did not shut down")
	}
}

// signingKey is an inline signing key (the base64 of a 32-byte Ed25519 seed) for an edge
// that must publish the same key after a restart.
func signingKey(t *testing.T) string {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(seed)
}

func TestPHPClient(t *testing.T) {
	tools := needCommands(t, "LICENSE_TEST_SKIP_PHP", "php", "phpunit")
	needPHPModules(t, tools["php"], "LICENSE_TEST_SKIP_PHP", "curl", "sodium", "json")
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "phpshop", "pro", "lite")

	cfg := w.edgeConfig("edge-php", wr.base)
	cfg.SigningKey, cfg.LeaseIssuer = signingKey(t), phpLeaseIssuer
	main := &managedEdge{cfg: cfg, log: testLog(t, "edge-php")}
	if err := main.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := main.stop(); err != nil {
			t.Error(err)
		}
	})

	// an edge with a tiny public status budget: 3 checks, then one a minute (429)
	lcfg := w.edgeConfig("edge-php-limited", wr.base)
	lcfg.LeaseIssuer = phpLeaseIssuer
	lcfg.RateLimits, lcfg.LimitStatus, lcfg.LimitKeyPrefix, lcfg.LimitTimeout = "on", "1/1m:3", limitPrefix(t), limitTimeout
	limited := w.edge(t, lcfg)

	// an edge cut off from the centre: no NATS, so no relay heartbeat, and every answer is
	// marked X-Cache-Stale (after 1 ms without one)
	scfg := w.edgeConfig("edge-php-stale", wr.base)
	scfg.LeaseIssuer, scfg.NATSURL, scfg.StaleWithoutStream = phpLeaseIssuer, "nats://127.0.0.1:1", time.Millisecond
	stale := w.edge(t, scfg)

	keys := map[string]string{}
	for name, l := range map[string]map[string]any{
		"KEY_MAIN":     {"product": "pro", "seat_limit": 5},
		"KEY_OFFLINE":  {"product": "pro", "seat_limit": 5},
		"KEY_FORGE":    {"product": "pro", "seat_limit": 5},
		"KEY_SEATS":    {"product": "pro", "seat_limit": 1},
		"KEY_PARITY":   {"product": "pro"},
		"KEY_LIMITED":  {"product": "pro", "seat_limit": 5},
		"KEY_EXPIRING": {"product": "pro", "seat_limit": 5, "expires_at": time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)},
		"KEY_OTHER":    {"product": "lite"},
	} {
		keys[name] = wr.licenseKey(t, apiKey, l).Key
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /edge/stop", func(rw http.ResponseWriter, r *http.Request) {
		if err := main.stop(); err != nil {
			http.Error(rw, err.Error(), 500)
			return
		}
		rw.WriteHeader(204)
	})
	mux.HandleFunc("POST /edge/start", func(rw http.ResponseWriter, r *http.Request) {
		if err := main.start(); err != nil {
			http.Error(rw, err.Error(), 500)
			return
		}
		rw.WriteHeader(204)
	})
	// the limited edge's count of status requests (what it received, whatever it answered)
	mux.HandleFunc("GET /limited/status-requests", func(rw http.ResponseWriter, r *http.Request) {
		n := limited.metric(t, "license_edge_request_duration_seconds", "route", "status")
		fmt.Fprintf(rw, `{"count": %d}`, int(n))
	})
	// an "edge" whose every answer is a 5xx
	mux.HandleFunc("/fail503/", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/problem+json")
		rw.WriteHeader(503)
		io.WriteString(rw, `{"type":"about:blank","title":"Service Unavailable","status":503,"code":"unavailable"}`)
	})
	ctl := httptest.NewServer(mux)
	t.Cleanup(ctl.Close)

	env := append(os.Environ(),
		"EDGE_URL=http://"+main.address(),
		"LIMITED_EDGE_URL="+limited.base,
		"STALE_EDGE_URL="+stale.base,
		"WRITER_URL="+wr.base,
		"CONTROL_URL="+ctl.URL,
		"BRAND=phpshop",
		"PRODUCT=pro",
		"API_KEY="+apiKey,
		"LEASE_ISSUER="+phpLeaseIssuer,
	)
	for name, k := range keys {
		env = append(env, name+"="+k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir, _ := filepath.Abs(phpClientDir)
	cmd := exec.CommandContext(ctx, tools["phpunit"], "--configuration", filepath.Join(dir, "phpunit.xml"), "--colors=never")
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("phpunit took %v", time.Since(start).Round(time.Millisecond))
	text := out.String()
	for name, k := range keys {
		if strings.Contains(strings.ToUpper(text), k) {
			t.Errorf("phpunit's output contains the full key %s", name)
			text = strings.ReplaceAll(text, k, license.MaskKey(k))
		}
	}
	if err != nil {
		t.Fatalf("phpunit failed (%v):\n%s", err, text)
	}
	if testing.Verbose() {
		t.Logf("phpunit:\n%s", text)
	}
}

// TestPHPNormalizeParity: for a table of instances (sites as plugins send them, and odd
// ones), the client's normalizeInstance gives what license.NormalizeInstance gives (or
// refuses what it refuses), and isDevelopmentInstance agrees with
// license.IsDevelopmentInstance. No services needed.
func TestPHPNormalizeParity(t *testing.T) {
	tools := needCommands(t, "LICENSE_TEST_SKIP_PHP", "php")
	inputs := []string{
		"https://www.Example.com/", "http://example.com", "HTTPS://EXAMPLE.COM:443/", "http://example.com:80/",
		"https://example.com:8443/", "http://example.com:443/", "https://example.com:80", "https://www.www.example.com",
		"https://example.com/blog/", "https://example.com/blog//", "https://Example.com/Blog/Sub/", "https://example.com/?p=1",
		"https://example.com/?", "https://example.com?x=1#frag", "https://example.com/#", "https://user:pw@Example.com/x",
		"https://example.com/a b", "https://example.com/ü/", "https://bücher.example/", "https://BÜCHER.de",
		"https://example.com/%7euser", "https://example.com/a%20b c", "https://example.com/a!b", "https://example.com/a!b c",
		"https://example.com/%zz", "https://example.com/#%zz", "https://exa mple.com/", "https://[::1]:8080/",
		"https://[::1]/", "http://[fe80::1%25eth0]/", "https://[1.2.3.4]/", "http://a:1:2/", "http://example.com:/",
		"http://example.com:0080/", "http:///path", "http:example.com", "https://", "https://?", "https://www./",
		"  https://padded.example.com/  ", "\u00a0https://nbsp.example.com\u3000", "example.com", "www.example.com/",
		"My Laptop", "machine-42", "ftp://example.com/", "https://example.com/" + strings.Repeat("a", 260), strings.Repeat("é", 255),
		strings.Repeat("é", 256), "", "   ", "a\tb", "https://example.com/\x7f", "https://exa%41mple.com/",
		"https://ex%C3%A4mple.com/", "https://example.com./", "https://WWW.EXAMPLE.COM.", "https://www.example.com:443",
		"https://127.0.0.1:8443/", "http://192.168.1.20/wp", "http://10.0.0.1", "http://172.20.1.1", "http://172.32.0.1",
		"http://localhost:8080", "http://wp.localhost", "https://site.local/", "https://site.test", "https://site.example",
		"https://x.invalid", "https://staging.shop.com", "https://Stage.shop.com", "https://dev.shop.com", "https://shop.dev",
		"https://developer.shop.com", "https://intranet/", "http://[::ffff:127.0.0.1]/", "http://[fd00::1]/", "http://[fe80::1]/",
		"https://a@b@c.com/", "https://a%40b@c.com/", "https://[::1]x/", "https://example.com/path;params?q=a;b",
		"https://example.com/a/./b/../c", "https://example.com/*", "https://example.com:65536/", "https://ex_ample.com/",
		"https://example.com/a'b(c)d*e", "https://example.com/[x]", "https://example.com/a|b", "https://example.com/~x",
		"https://xn--bcher-kva.example/", "https://example.com/%2F/", "https://example.com/%2f", "https://example.com/a%2",
	}
	in, _ := json.Marshal(inputs)
	cmd := exec.Command(tools["php"], filepath.Join(phpClientDir, "tests", "normalize.php"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("normalize.php: %v\n%s", err, stderr.String())
	}
	var got []struct {
		Instance    *string `json:"instance"`
		Error       *string `json:"error"`
		Development bool    `json:"development"`
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(inputs) {
		t.Fatalf("normalize.php output (%v): %s", err, out)
	}
	for i, s := range inputs {
		want, werr := license.NormalizeInstance(s)
		g := got[i]
		switch {
		case werr != nil && g.Error == nil:
			t.Errorf("%q: the service refuses it (%v), the client gives %q", s, werr, *g.Instance)
		case werr == nil && g.Error != nil:
			t.Errorf("%q: the service gives %q, the client refuses it (%s)", s, want, *g.Error)
		case werr == nil && *g.Instance != want:
			t.Errorf("%q: the service gives %q, the client %q", s, want, *g.Instance)
		}
		if dev := license.IsDevelopmentInstance(s, nil); dev != g.Development {
			t.Errorf("%q: development: service %v, client %v", s, dev, g.Development)
		}
	}
}
