package server

import (
	"log/slog"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/internal/cors"
	"github.com/licensing/licensing/internal/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

const docsOrigin = "http://127.0.0.2:8080"

func varies(r *fasthttp.Response, name string) bool {
	for _, v := range r.Header.PeekAll("Vary") {
		if string(v) == name {
			return true
		}
	}
	return false
}

func TestCORS(t *testing.T) {
	origins, err := cors.Parse(docsOrigin)
	if err != nil {
		t.Fatal(err)
	}
	// a status budget of one: the second status check from the address is 429
	limits := &Limits{Limiter: ratelimit.New(nil, ratelimit.Config{}, slog.New(slog.DiscardHandler), nil),
		Status:      ratelimit.Policy{Name: "status", Rate: 1, Period: time.Hour, Burst: 1},
		PublicWrite: ratelimit.Policy{Name: "public_write", Rate: 1, Period: time.Hour, Burst: 1},
		NotFound:    ratelimit.Policy{Name: "not_found", Rate: 1, Period: time.Hour, Burst: 1}}
	src := &fakeSource{res: snapshot(nil)}
	s := New(src, okRelay{}, nil, nil, Config{StatusMaxAge: time.Minute, Limits: limits, CORS: origins},
		func() time.Time { return now }, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	status := "/v1/public/acme/licenses/" + key + "/status"

	r := do(s, "GET", status, "", "Origin", docsOrigin)
	if r.StatusCode() != 200 || string(r.Header.Peek("Access-Control-Allow-Origin")) != docsOrigin ||
		string(r.Header.Peek("Access-Control-Expose-Headers")) != cors.ExposeHeaders || !varies(r, "Origin") || !varies(r, "Accept") {
		t.Fatalf("status for an allowed origin: %d %s", r.StatusCode(), r.Header.String())
	}
	if r := do(s, "GET", status, "", "Origin", docsOrigin); r.StatusCode() != 429 ||
		string(r.Header.Peek("Access-Control-Allow-Origin")) != docsOrigin {
		t.Fatalf("a 429 must be readable by the page too: %d %s", r.StatusCode(), r.Header.String())
	}
	calls := src.calls.Load()
	for _, c := range []struct {
		name, origin, uri, method string
		allowed                   bool
	}{
		{"preflight-204-status-past-its-limit", docsOrigin, status, "GET", true},
		{"preflight-204-activation-without-json-body", docsOrigin, "/v1/public/acme/activations", "POST", true},
		{"preflight-204-other-path", docsOrigin, "/healthz", "GET", true},
		{"preflight-other-origin-204-without-allow", "http://evil.test", status, "GET", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := do(s, "OPTIONS", c.uri, "", "Origin", c.origin, "Access-Control-Request-Method", c.method,
				"Access-Control-Request-Headers", "content-type", "Content-Type", "text/plain")
			if r.StatusCode() != 204 || len(r.Body()) != 0 || len(r.Header.Peek("X-Request-Id")) == 0 {
				t.Fatalf("%d %q %s", r.StatusCode(), r.Body(), r.Header.String())
			}
			allow := string(r.Header.Peek("Access-Control-Allow-Origin"))
			if !c.allowed {
				if allow != "" || len(r.Header.Peek("Access-Control-Allow-Methods")) != 0 {
					t.Fatalf("refused origin got CORS headers: %s", r.Header.String())
				}
				return
			}
			if allow != docsOrigin || string(r.Header.Peek("Access-Control-Allow-Methods")) != cors.AllowMethods ||
				string(r.Header.Peek("Access-Control-Allow-Headers")) != cors.AllowHeaders {
				t.Fatalf("preflight headers: %s", r.Header.String())
			}
		})
	}
	if src.calls.Load() != calls {
		t.Fatal("a preflight reached the read tiers")
	}
	// a plain OPTIONS (no Access-Control-Request-Method) is routed as before: 405
	if r := do(s, "OPTIONS", status, "", "Origin", docsOrigin); r.StatusCode() != 405 {
		t.Fatalf("plain OPTIONS: %d", r.StatusCode())
	}
	// without configured origins nothing CORS is sent
	if r := do(newServer(src, nil), "GET", status, "", "Origin", docsOrigin); len(r.Header.Peek("Access-Control-Allow-Origin")) != 0 || varies(r, "Origin") {
		t.Fatalf("default config sent CORS headers: %s", r.Header.String())
	}
}
