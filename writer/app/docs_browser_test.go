package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/licensing/licensing/writer/app"
)

// chromium finds Debian's headless browser: missing, it fails the test under
// LICENSE_TEST_REQUIRE=1 (make test) and skips it, with the reason, otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "chromium is not installed (deploy/local/deps.sh installs Debian's chromium): the Swagger UI browser test needs it"
	if os.Getenv("LICENSE_TEST_REQUIRE") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// page serves one empty HTML page on addr: an origin other than the writer's, from which
// the browser calls the writer cross-origin.
func page(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>other origin</title>")
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestSwaggerUIBeyondLocalhost loads the writer's Swagger UI in headless Chromium from a
// non-localhost loopback address (127.0.0.2), authorizes with a brand API key and runs
// "Try it out" on GET /v1/products: the document's first server is relative, so the call
// goes to the address the page came from. Then, from pages on two other origins, a
// credentialed fetch: the one in WRITER_CORS_ORIGINS reads the answer (preflight, then
// Access-Control-Allow-Origin and the exposed X-Request-Id), the other is refused by the
// browser.
func TestSwaggerUIBeyondLocalhost(t *testing.T) {
	browser := chromium(t)
	allowed, other := page(t, "127.0.0.3:0"), page(t, "127.0.0.4:0")
	e := start(t, withConfig(func(c *app.Config) {
		c.Addr = "127.0.0.2:0"
		c.CORSOrigins = allowed
	}))
	if !strings.HasPrefix(e.base, "http://127.0.0.2:") {
		t.Fatalf("writer listens on %s, want 127.0.0.2", e.base)
	}
	key := e.brand(t, "swagger", "pro-plugin")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a loaded 2-core machine: chromium starts slowly
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 2000))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	// the brand's scheme in the Authorize dialog, and the listProducts operation
	const (
		brandAuth = `//div[contains(@class,"auth-container")][.//h4[contains(., "brandApiKey")]]`
		op        = `#operations-products-listProducts`
	)
	err := chromedp.Do(bctx,
		chromedp.Navigate(e.base+"/api/docs/"),
		chromedp.WaitVisible(chromedp.CSS(`button.btn.authorize`)),
		chromedp.Click(chromedp.CSS(`button.btn.authorize`)),
		chromedp.WaitVisible(chromedp.Search(brandAuth+`//input`)),
		chromedp.SendKeys(chromedp.Search(brandAuth+`//input`), key),
		chromedp.Click(chromedp.Search(brandAuth+`//button[contains(@class,"authorize")]`)),
		// authorized: the scheme now offers Logout
		chromedp.WaitVisible(chromedp.Search(brandAuth+`//button[contains(., "Logout")]`)),
		chromedp.Click(chromedp.CSS(`button.btn-done`)),
		chromedp.WaitNotPresent(chromedp.CSS(`.modal-ux`)),
		chromedp.Click(chromedp.CSS(op+` .opblock-summary-control`)),
		chromedp.Click(chromedp.CSS(op+` button.try-out__btn`)),
		chromedp.Click(chromedp.CSS(op+` button.execute`)),
		chromedp.WaitVisible(chromedp.CSS(op+` .live-responses-table tr.response .response-col_status`)),
	)
	if err != nil {
		t.Fatalf("Swagger UI in chromium: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	status := text(op + ` .live-responses-table tr.response .response-col_status`)
	requestURL := text(op + ` .request-url pre`)
	body := text(op + ` .live-responses-table .response-col_description pre`)
	if status != "200" {
		t.Fatalf("Try it out: status %q, want 200; body %s", status, body)
	}
	if want := e.base + "/v1/products"; !strings.HasPrefix(requestURL, want) {
		t.Fatalf("Try it out called %q, want %s (the relative server)", requestURL, want)
	}
	if !strings.Contains(body, `"pro-plugin"`) {
		t.Fatalf("Try it out: body does not list the brand's product: %s", body)
	}

	// cross-origin, as a page on another origin would call the API
	fetch := func(origin string) string {
		t.Helper()
		script := fmt.Sprintf(`fetch(%q, {headers: {Authorization: "Bearer " + %q}})
			.then(r => r.status + " " + (r.headers.get("X-Request-Id") ? "id" : "no-id"))
			.catch(e => "refused: " + e.name)`, e.base+"/v1/products", key)
		if err := chromedp.Do(bctx, chromedp.Navigate(origin+"/")); err != nil {
			t.Fatalf("open %s: %v", origin, err)
		}
		out, err := chromedp.Run(bctx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch from %s: %v", origin, err)
		}
		return out
	}
	if got := fetch(allowed); got != "200 id" {
		t.Errorf("fetch from the allowed origin %s: %q, want the 200 with its X-Request-Id readable", allowed, got)
	}
	if got := fetch(other); !strings.HasPrefix(got, "refused") {
		t.Errorf("fetch from %s (not allowed): %q, want the browser to refuse it", other, got)
	}
}
