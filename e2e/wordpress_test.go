package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/resource"
)

// TestWordPress runs the example plugin (clients/php/example-plugin) inside real WordPress
// (Debian's package, copied into a temporary directory) on a private MariaDB, served by
// php -S under a public-looking host name that the test's HTTP client maps to loopback:
// the admin logs in, enters a key through the plugin's own settings form, and the writer
// shows the seat taken for the site's normalized URL, the settings page shows the license
// valid, wp-cron's daily check fetches a signed lease. Then a staging copy of the site
// (its tables copied to a second prefix, as WP Staging does, on a staging. host) activates
// the same key without a seat.
//
// php, mariadbd and WordPress are required under LICENSE_TEST_REQUIRE=1 (make test);
// LICENSE_TEST_SKIP_WORDPRESS=1 skips the test on purpose.
func TestWordPress(t *testing.T) {
	const optOut = "LICENSE_TEST_SKIP_WORDPRESS"
	tools := needCommands(t, optOut, "php")
	needPHPModules(t, tools["php"], optOut, "mysqli", "curl", "sodium", "json")
	mariadbd := findMariadbd(t, optOut)
	const wpSource = "/usr/share/wordpress"
	if _, err := os.Stat(filepath.Join(wpSource, "wp-load.php")); err != nil {
		msg := fmt.Sprintf("WordPress is not installed in %s (deploy/local/deps.sh installs Debian's wordpress); set %s=1 to skip on purpose", wpSource, optOut)
		if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	start := time.Now()
	step := func(what string) {
		t.Logf("%6.2fs %s", time.Since(start).Seconds(), what)
	}

	// the service: a writer and one edge that signs
	w := newWorld(t)
	wr := w.writer(t)
	apiKey := wr.brand(t, "pluginshop", "seo-pro")
	ecfg := w.edgeConfig("edge-wp", wr.base)
	ecfg.SigningKey, ecfg.LeaseIssuer = signingKey(t), phpLeaseIssuer
	e := w.edge(t, ecfg)
	key := wr.licenseKey(t, apiKey, map[string]any{"product": "seo-pro", "seat_limit": 3}).Key
	step("service up")

	dir := t.TempDir()
	sock := filepath.Join(dir, "mysql.sock")
	startMariaDB(t, mariadbd, dir, sock)
	step("mariadb up")

	root := filepath.Join(dir, "wp")
	if out, err := exec.Command("cp", "-rL", wpSource, root).CombinedOutput(); err != nil {
		t.Fatalf("copy WordPress: %v\n%s", err, out)
	}
	plugin := filepath.Join(root, "wp-content", "plugins", "example-license-plugin")
	if out, err := exec.Command("cp", "-r", filepath.Join(phpClientDir, "example-plugin"), plugin).CombinedOutput(); err != nil {
		t.Fatalf("copy plugin: %v\n%s", err, out)
	}
	// a shipped plugin bundles the client (README "Bundling")
	mustCopy(t, filepath.Join(phpClientDir, "src", "LicenseClient.php"), filepath.Join(plugin, "lib", "LicenseClient.php"))
	debugLog := filepath.Join(dir, "wp-debug.log")
	writeWPConfig(t, root, sock, debugLog, e.base, "pluginshop", "seo-pro")
	step("WordPress copied")

	port := freePort(t)
	prodHost := fmt.Sprintf("www.pluginshop-e2e.com:%d", port)
	stagingHost := fmt.Sprintf("staging.pluginshop-e2e.com:%d", port)
	prodURL, stagingURL := "http://"+prodHost, "http://"+stagingHost
	password := randomHex(12)

	helper, _ := filepath.Abs(filepath.Join(phpClientDir, "e2e", "wp-e2e.php"))
	wpCLI := func(host string, args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(tools["php"], append([]string{helper, root, host}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("wp-e2e.php %s: %v\n%s\n%s%s", args[0], err, out, stderr.String(), tail(debugLog))
		}
		var m map[string]any
		if err := json.Unmarshal(lastLine(out), &m); err != nil {
			t.Fatalf("wp-e2e.php %s: %v: %s", args[0], err, out)
		}
		return m
	}
	inst := wpCLI(prodHost, "install", prodURL, password)
	if inst["active"] != true || inst["cron"] == false {
		t.Fatalf("install: %v", inst)
	}
	step("WordPress installed, plugin active, daily check scheduled")

	serveLog := filepath.Join(dir, "php-server.log")
	startPHPServer(t, tools["php"], root, port, serveLog)
	step("php -S up")

	prod := newWPBrowser(port)
	prod.login(t, prodURL, password)
	if body := prod.get(t, prodURL+"/wp-admin/"); !strings.Contains(body, `id="example-license-notice"`) {
		t.Errorf("dashboard without a key shows no license notice")
	}
	page := prod.saveKey(t, prodURL, key)
	step("key saved through the plugin's form")
	checkPage(t, "production", page, key, map[string]string{
		"example-license-code": "valid", "example-license-valid": "yes", "example-license-development": "no",
		"example-license-seats": "1 / 3", "example-license-instance": mustNormalize(t, prodURL),
	})

	var lk resource.LicenseKey
	wr.must(t, 200, "GET", "/v1/license-keys/"+key, apiKey, nil).JSON(t, &lk)
	l := lk.Licenses[0]
	if l.SeatsUsed != 1 || l.Activations == nil || len(*l.Activations) != 1 {
		t.Fatalf("after the plugin's activation: seats_used %d, activations %v", l.SeatsUsed, l.Activations)
	}
	want, _ := license.NormalizeInstance(prodURL)
	if a := (*l.Activations)[0]; a.Instance != want || a.Development {
		t.Fatalf("activation instance %q development %v, want %q (the site URL normalized), false", a.Instance, a.Development, want)
	}
	if body := prod.get(t, prodURL+"/wp-admin/"); strings.Contains(body, `id="example-license-notice"`) {
		t.Errorf("dashboard with a valid license still shows the license notice")
	}

	// wp-cron (DISABLE_WP_CRON: triggered here) runs the daily check: a signed lease
	wpCLI(prodHost, "cron-due")
	prod.get(t, prodURL+"/wp-cron.php") // as a system cron job calls it
	st := wpCLI(prodHost, "state")
	res, _ := st["result"].(map[string]any)
	if st["lease"] != true || res["signed"] != true || res["code"] != "valid" || res["source"] != "stored" {
		t.Errorf("after the cron check: lease %v, result %v", st["lease"], res)
	}
	if next, _ := st["cron"].(float64); next < float64(time.Now().Add(23*time.Hour).Unix()) {
		t.Errorf("the daily check is next due at %v, want about a day from now", st["cron"])
	}
	page = prod.get(t, prodURL+"/wp-admin/options-general.php?page=example-license")
	if !strings.Contains(page, "works offline until") {
		t.Errorf("the settings page does not show the lease")
	}
	step("cron check fetched a lease")

	// the staging copy: same database, second prefix, staging. host
	wpCLI(prodHost, "staging", stagingURL)
	staging := newWPBrowser(port)
	staging.login(t, stagingURL, password)
	page = staging.saveKey(t, stagingURL, key)
	checkPage(t, "staging", page, key, map[string]string{
		"example-license-code": "valid", "example-license-valid": "yes", "example-license-development": "yes",
		"example-license-seats": "1 / 3", "example-license-instance": mustNormalize(t, stagingURL),
	})
	wr.must(t, 200, "GET", "/v1/license-keys/"+key, apiKey, nil).JSON(t, &lk)
	l = lk.Licenses[0]
	if l.SeatsUsed != 1 || l.Activations == nil || len(*l.Activations) != 2 {
		t.Fatalf("after the staging activation: seats_used %d (want 1), activations %v", l.SeatsUsed, l.Activations)
	}
	wantStaging, _ := license.NormalizeInstance(stagingURL)
	found := false
	for _, a := range *l.Activations {
		if a.Instance == wantStaging {
			found = true
			if !a.Development {
				t.Errorf("staging activation %q is not a development instance", a.Instance)
			}
		}
	}
	if !found {
		t.Errorf("no activation for %q: %v", wantStaging, *l.Activations)
	}
	// production still shows its own state
	if page := prod.get(t, prodURL+"/wp-admin/options-general.php?page=example-license"); !strings.Contains(page, `id="example-license-development">no<`) {
		t.Errorf("production's settings page changed after the staging activation")
	}
	step("staging copy activated without a seat")

	// deactivating the plugin clears its daily check
	if st := wpCLI(stagingHost, "deactivate-plugin"); st["active"] != false || st["cron"] != false {
		t.Errorf("after deactivating the plugin: %v", st)
	}

	for _, f := range []string{debugLog, serveLog} {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(strings.ToUpper(string(b)), key) {
			t.Errorf("%s contains the full key", filepath.Base(f))
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("WordPress debug log:\n%s", tail(debugLog))
	}
}

// findMariadbd finds the MariaDB server binary (in /usr/sbin on Debian, often not on PATH).
func findMariadbd(t *testing.T, optOut string) string {
	t.Helper()
	for _, n := range []string{"mariadbd", "mysqld"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		if p := "/usr/sbin/" + n; fileExists(p) {
			return p
		}
	}
	msg := fmt.Sprintf("mariadbd not found (deploy/local/deps.sh installs mariadb-server); set %s=1 to skip on purpose", optOut)
	if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startMariaDB starts a private mariadbd on a socket in dir (no TCP, no grant tables: the
// socket is the only way in) and creates the database "wordpress".
func startMariaDB(t *testing.T, bin, dir, sock string) {
	t.Helper()
	data := filepath.Join(dir, "mysql")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(dir, "mariadb.err")
	args := []string{"--no-defaults", "--datadir=" + data, "--socket=" + sock, "--skip-networking",
		"--pid-file=" + filepath.Join(dir, "mariadb.pid"), "--log-error=" + errLog, "--skip-grant-tables",
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0", "--skip-log-bin", "--character-set-server=utf8mb4"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("php", "-r", `$m = @new mysqli("localhost", "root", "", "", 0, $argv[1]);
			if ($m->connect_errno) { fwrite(STDERR, $m->connect_error); exit(1); }
			if (!$m->query("CREATE DATABASE IF NOT EXISTS wordpress CHARACTER SET utf8mb4")) { fwrite(STDERR, $m->error); exit(2); }`, sock).CombinedOutput()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("mariadbd exited:\n%s", tail(errLog))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd not ready: %v %s\n%s", err, out, tail(errLog))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeWPConfig writes the copy's wp-config.php: the private database, a table prefix by
// host (staging.… is the staging copy), cron only when triggered, no calls to
// wordpress.org, the debug log to a file, and the example plugin's service settings.
func writeWPConfig(t *testing.T, root, sock, debugLog, edgeURL, brand, product string) {
	t.Helper()
	salt := func() string { return randomHex(32) }
	var b strings.Builder
	fmt.Fprintf(&b, "<?php\n// written by e2e/wordpress_test.go\n")
	for k, v := range map[string]string{
		"DB_NAME": "wordpress", "DB_USER": "root", "DB_PASSWORD": "", "DB_HOST": "localhost:" + sock,
		"DB_CHARSET": "utf8mb4", "DB_COLLATE": "",
		"AUTH_KEY": salt(), "SECURE_AUTH_KEY": salt(), "LOGGED_IN_KEY": salt(), "NONCE_KEY": salt(),
		"AUTH_SALT": salt(), "SECURE_AUTH_SALT": salt(), "LOGGED_IN_SALT": salt(), "NONCE_SALT": salt(),
		"E2E_STAGING_PREFIX": "wpstg0_", "WP_DEBUG_LOG": debugLog, "FS_METHOD": "direct",
		"WP_ACCESSIBLE_HOSTS":      "127.0.0.1",
		"EXAMPLE_LICENSE_EDGE_URL": edgeURL, "EXAMPLE_LICENSE_BRAND": brand, "EXAMPLE_LICENSE_PRODUCT": product,
		"EXAMPLE_LICENSE_ISSUER": phpLeaseIssuer,
	} {
		fmt.Fprintf(&b, "define(%q, %s);\n", k, phpString(v))
	}
	b.WriteString(`foreach (array('DISABLE_WP_CRON', 'WP_DEBUG', 'WP_HTTP_BLOCK_EXTERNAL', 'AUTOMATIC_UPDATER_DISABLED') as $c) {
    define($c, true);
}
define('WP_DEBUG_DISPLAY', false);
define('WP_AUTO_UPDATE_CORE', false);
$table_prefix = strpos(strtolower(isset($_SERVER['HTTP_HOST']) ? $_SERVER['HTTP_HOST'] : ''), 'staging.') === 0 ? E2E_STAGING_PREFIX : 'wp_';
if (!defined('ABSPATH')) {
    define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
`)
	if err := os.WriteFile(filepath.Join(root, "wp-config.php"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func phpString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func mustCopy(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPHPServer serves root with php -S on 127.0.0.1:port (two workers).
func startPHPServer(t *testing.T, php, root string, port int, logFile string) {
	t.Helper()
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(php, "-S", fmt.Sprintf("127.0.0.1:%d", port), "-t", root)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PHP_CLI_SERVER_WORKERS=2")
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("php -S: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(exited) }()
	t.Cleanup(func() {
		// the workers are the server's children: signal its process group
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("php -S exited:\n%s", tail(logFile))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php -S not listening: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wpBrowser is an admin's browser: a cookie jar, every host name resolved to the local
// php -S (as /etc/hosts would map the public-looking names).
type wpBrowser struct{ hc *http.Client }

func newWPBrowser(port int) *wpBrowser {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &wpBrowser{hc: &http.Client{Jar: jar, Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
		},
	}}}
}

func (b *wpBrowser) do(t *testing.T, req *http.Request) (string, *http.Response) {
	t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		t.Fatalf("%s %s: %d\n%s", req.Method, req.URL, resp.StatusCode, snippet(string(body)))
	}
	return string(body), resp
}

func (b *wpBrowser) get(t *testing.T, u string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	body, _ := b.do(t, req)
	return body
}

func (b *wpBrowser) post(t *testing.T, u string, form url.Values) (string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(t, req)
}

// login signs the admin in through wp-login.php (the test cookie first, as a browser).
func (b *wpBrowser) login(t *testing.T, site, password string) {
	t.Helper()
	b.get(t, site+"/wp-login.php")
	body, resp := b.post(t, site+"/wp-login.php", url.Values{"log": {"admin"}, "pwd": {password},
		"wp-submit": {"Log In"}, "redirect_to": {site + "/wp-admin/"}, "testcookie": {"1"}})
	if resp.Request.URL.Path != "/wp-admin/" || strings.Contains(body, "login_error") {
		t.Fatalf("login to %s failed: ended at %s\n%s", site, resp.Request.URL, snippet(body))
	}
}

var hiddenInput = regexp.MustCompile(`<input[^>]*type=["']hidden["'][^>]*>`)
var attr = regexp.MustCompile(`(name|value)=["']([^"']*)["']`)

// saveKey submits the key through the plugin's settings form (its nonce and fields parsed
// from the page) and returns the settings page WordPress redirects to.
func (b *wpBrowser) saveKey(t *testing.T, site, key string) string {
	t.Helper()
	page := b.get(t, site+"/wp-admin/options-general.php?page=example-license")
	start := strings.Index(page, `id="example-license-form"`)
	end := strings.Index(page[max(start, 0):], "</form>")
	if start < 0 || end < 0 {
		t.Fatalf("no license form on the settings page:\n%s", snippet(page))
	}
	form := url.Values{}
	for _, in := range hiddenInput.FindAllString(page[start:start+end], -1) {
		var name, value string
		for _, m := range attr.FindAllStringSubmatch(in, -1) {
			if m[1] == "name" {
				name = m[2]
			} else {
				value = m[2]
			}
		}
		if name != "" {
			form.Set(name, value)
		}
	}
	if form.Get("_wpnonce") == "" || form.Get("option_page") != "example_license" {
		t.Fatalf("form fields: %v", form)
	}
	form.Set("example_license_key", " "+strings.ToLower(key)+" ") // as pasted
	form.Set("submit", "Save and activate")
	body, resp := b.post(t, site+"/wp-admin/options.php", form)
	if !strings.Contains(resp.Request.URL.RawQuery, "settings-updated=true") {
		t.Fatalf("saving the key ended at %s\n%s", resp.Request.URL, snippet(body))
	}
	return body
}

// checkPage checks the settings page's status cells and that it does not show the key.
func checkPage(t *testing.T, what, page, key string, want map[string]string) {
	t.Helper()
	for id, v := range want {
		re := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `">([^<]*)<`)
		m := re.FindStringSubmatch(page)
		if m == nil || m[1] != v {
			t.Errorf("%s settings page: #%s is %v, want %q", what, id, m, v)
		}
	}
	if strings.Contains(strings.ToUpper(page), key) {
		t.Errorf("%s settings page shows the full key", what)
	}
	if !strings.Contains(page, license.MaskKey(key)[len(key)-4:]) {
		t.Errorf("%s settings page does not show the masked key", what)
	}
}

func mustNormalize(t *testing.T, s string) string {
	t.Helper()
	n, err := license.NormalizeInstance(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func snippet(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

func tail(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}
