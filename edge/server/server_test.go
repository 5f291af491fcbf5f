package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/relay"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/internal/clientip"
	"github.com/licensing/licensing/internal/ratelimit"
	"github.com/licensing/licensing/shared/license"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// fakeSource is the tier below the server, counting calls.
type fakeSource struct {
	calls atomic.Int64
	res   source.Result
	err   error
}

var _ source.Source = (*fakeSource)(nil)

func (f *fakeSource) Get(context.Context, string, string) (source.Result, error) {
	f.calls.Add(1)
	return f.res, f.err
}

// activated is the one instance the fake's license L1 is activated on.
const activated = "example.com"

func (f *fakeSource) Instance(_ context.Context, _, _, instance string) (source.InstanceResult, error) {
	f.calls.Add(1)
	r := source.InstanceResult{Found: f.res.Found, Origin: f.res.Origin, Stale: f.res.Stale, Tier: f.res.Tier,
		Instance: license.Instance{Instance: instance, AsOf: f.res.Version()}}
	if instance == activated {
		r.Instance.Activations = []license.InstanceActivation{{LicenseID: "L1"}}
	}
	return r, f.err
}

var now = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func newServer(src source.Source, rel Relayer) *Server {
	return New(src, rel, nil, nil, Config{StatusMaxAge: time.Minute, NotFoundMaxAge: 5 * time.Second},
		func() time.Time { return now }, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
}

// do runs one request through the handler.
func do(s *Server, method, uri string, body string, hdr ...string) *fasthttp.Response {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != "" {
		req.SetBodyString(body)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5555}, nil)
	s.Handler(&ctx)
	resp := &fasthttp.Response{}
	ctx.Response.CopyTo(resp)
	return resp
}

func code(t *testing.T, r *fasthttp.Response) string {
	t.Helper()
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.Body(), &p)
	return p.Code
}

const key = "ABCDE-FGHJK-MNPQR-STUVW-XYZ23"

func snapshot(expires *time.Time) source.Result {
	limit := 3
	return source.Result{Found: true, Tier: "l1", Origin: now, State: license.State{
		Brand: "acme", Key: key, Version: 7,
		Licenses: []license.LicenseState{{ID: "L1", Product: "pro", Status: "valid", ExpiresAt: expires, SeatLimit: &limit,
			SeatsUsed: 1}},
	}}
}

func TestStatus(t *testing.T) {
	soon := now.Add(20 * time.Second)
	past := now.Add(-time.Second)
	for _, c := range []struct {
		name     string
		uri      string
		res      source.Result
		err      error
		status   int
		code     string // problem code or status code field
		maxAge   string
		backends int64
	}{
		{"200-valid-max-age-configured", "/v1/public/acme/licenses/" + key + "/status", snapshot(nil), nil, 200, "valid", "max-age=60", 1},
		{"200-max-age-capped-by-expiry", "/v1/public/acme/licenses/" + key + "/status", snapshot(&soon), nil, 200, "valid", "max-age=20", 1},
		{"200-expired-at-serve-time", "/v1/public/acme/licenses/" + key + "/status?product=pro", snapshot(&past), nil, 200, "expired", "max-age=60", 1},
		{"200-instance-normalized", "/v1/public/acme/licenses/" + strings.ToLower(key) + "/status?product=pro&instance=https://www.Example.com/", snapshot(nil), nil, 200, "valid", "max-age=60", 2},
		{"200-instance-not-activated", "/v1/public/acme/licenses/" + key + "/status?instance=other.example", snapshot(nil), nil, 200, "instance_not_activated", "max-age=60", 2},
		{"404-unknown-key", "/v1/public/acme/licenses/" + key + "/status", source.Result{Found: false}, nil, 404, "license_not_found", "max-age=5", 1},
		{"404-malformed-key-no-backend", "/v1/public/acme/licenses/ABCDE-0000/status", snapshot(nil), nil, 404, "license_not_found", "no-store", 0},
		{"404-ambiguous-letter-no-backend", "/v1/public/acme/licenses/ABCDE-FGHJK-MNPQR-STUVW-XYZ2O/status", snapshot(nil), nil, 404, "license_not_found", "no-store", 0},
		{"404-bad-brand-no-backend", "/v1/public/A_B/licenses/" + key + "/status", snapshot(nil), nil, 404, "license_not_found", "no-store", 0},
		{"400-instance-too-long", "/v1/public/acme/licenses/" + key + "/status?instance=" + strings.Repeat("x", 256), snapshot(nil), nil, 400, "invalid_request", "no-store", 0},
		{"503-backends-down", "/v1/public/acme/licenses/" + key + "/status", source.Result{}, source.ErrUnavailable, 503, "unavailable", "no-store", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := &fakeSource{res: c.res, err: c.err}
			r := do(newServer(src, nil), "GET", c.uri, "")
			if r.StatusCode() != c.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode(), c.status, r.Body())
			}
			got := code(t, r)
			if got != c.code {
				t.Errorf("code %q, want %q: %s", got, c.code, r.Body())
			}
			if cc := string(r.Header.Peek("Cache-Control")); cc != c.maxAge {
				t.Errorf("Cache-Control %q, want %q", cc, c.maxAge)
			}
			if n := src.calls.Load(); n != c.backends {
				t.Errorf("%d source calls, want %d", n, c.backends)
			}
			if len(r.Header.Peek("X-Request-Id")) == 0 {
				t.Error("no X-Request-Id")
			}
			if c.status >= 400 && string(r.Header.ContentType()) != "application/problem+json" {
				t.Errorf("content type %q", r.Header.ContentType())
			}
		})
	}
}

func TestStaleAnswerIsMarked(t *testing.T) {
	res := snapshot(nil)
	res.Stale = true
	r := do(newServer(&fakeSource{res: res}, nil), "GET", "/v1/public/acme/licenses/"+key+"/status", "")
	if r.StatusCode() != 200 || string(r.Header.Peek("X-Cache-Stale")) != "true" || string(r.Header.Peek("Cache-Control")) != "max-age=0" {
		t.Fatalf("%d stale=%q cc=%q", r.StatusCode(), r.Header.Peek("X-Cache-Stale"), r.Header.Peek("Cache-Control"))
	}
}

// TestCutOffFromTheCentreMarksAnswersStale: a node whose event stream has been silent for
// longer than StaleWithoutStream marks every answer stale, also a fresh-looking one from
// its tiers (in a partition the region's Redis and replica still answer); below the bound,
// or without a stream, it does not.
func TestCutOffFromTheCentreMarksAnswersStale(t *testing.T) {
	for _, c := range []struct {
		name      string
		silence   func() time.Duration
		wantStale bool
	}{
		{"stream-current", func() time.Duration { return 300 * time.Millisecond }, false},
		{"silent-past-the-bound", func() time.Duration { return 11 * time.Second }, true},
		{"no-stream", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := metrics.New(prometheus.NewRegistry())
			s := New(&fakeSource{res: snapshot(nil)}, nil, nil, nil, Config{StatusMaxAge: time.Minute, NotFoundMaxAge: 5 * time.Second,
				StreamSilence: c.silence, StaleWithoutStream: 10 * time.Second},
				func() time.Time { return now }, slog.New(slog.DiscardHandler), m)
			r := do(s, "GET", "/v1/public/acme/licenses/"+key+"/status", "")
			stale := string(r.Header.Peek("X-Cache-Stale")) == "true"
			if r.StatusCode() != 200 || stale != c.wantStale {
				t.Fatalf("%d stale=%v, want %v", r.StatusCode(), stale, c.wantStale)
			}
			if cc := string(r.Header.Peek("Cache-Control")); c.wantStale && cc != "max-age=0" {
				t.Errorf("stale answer Cache-Control %q, want max-age=0", cc)
			}
			if got := testutil.ToFloat64(m.StaleServed); (got == 1) != c.wantStale {
				t.Errorf("license_edge_stale_answers_total = %v", got)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	s := newServer(&fakeSource{res: snapshot(nil)}, nil)
	for _, c := range []struct {
		name, method, uri string
		status            int
		code              string
	}{
		{"healthz-200", "GET", "/healthz", 200, ""},
		{"readyz-200-without-check", "GET", "/readyz", 200, ""},
		{"unknown-path-404", "GET", "/v1/brands", 404, "not_found"},
		{"status-post-405", "POST", "/v1/public/acme/licenses/" + key + "/status", 405, "method_not_allowed"},
		{"activations-get-405", "GET", "/v1/public/acme/activations", 405, "method_not_allowed"},
		{"activations-without-writer-503", "POST", "/v1/public/acme/activations", 503, "unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := do(s, c.method, c.uri, "")
			if r.StatusCode() != c.status || code(t, r) != c.code {
				t.Fatalf("%d %s, want %d %s", r.StatusCode(), r.Body(), c.status, c.code)
			}
		})
	}
}

func TestRequestIDEchoedOrGenerated(t *testing.T) {
	s := newServer(&fakeSource{res: snapshot(nil)}, nil)
	if r := do(s, "GET", "/healthz", "", "X-Request-Id", "abc-123"); string(r.Header.Peek("X-Request-Id")) != "abc-123" {
		t.Errorf("echo: %q", r.Header.Peek("X-Request-Id"))
	}
	if r := do(s, "GET", "/healthz", "", "X-Request-Id", "bad id\x01"); string(r.Header.Peek("X-Request-Id")) == "bad id\x01" ||
		len(r.Header.Peek("X-Request-Id")) == 0 {
		t.Errorf("unprintable id not replaced: %q", r.Header.Peek("X-Request-Id"))
	}
}

// TestRateLimits: the per-IP rows on the edge's handler (in-process budgets: the shared
// ones are tested through Redis in internal/ratelimit and e2e): the status burst is served
// with the headers, the next request is 429 with Retry-After; 404 answers spend the
// key-guessing budget, after which known keys are refused too; the address counted is the
// peer unless the peer is a trusted proxy.
func TestRateLimits(t *testing.T) {
	src := &fakeSource{res: snapshot(nil)}
	trusted, err := clientip.Parse("192.0.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	limits := &Limits{Limiter: ratelimit.New(nil, ratelimit.Config{}, slog.New(slog.DiscardHandler), nil),
		Status:      ratelimit.Policy{Name: "status", Rate: 1, Period: time.Hour, Burst: 3},
		PublicWrite: ratelimit.Policy{Name: "public_write", Rate: 1, Period: time.Hour, Burst: 1},
		NotFound:    ratelimit.Policy{Name: "not_found", Rate: 1, Period: time.Hour, Burst: 2}}
	s := New(src, nil, nil, nil, Config{StatusMaxAge: time.Minute, Limits: limits, Trusted: trusted},
		func() time.Time { return now }, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	status := "/v1/public/acme/licenses/" + key + "/status"
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }

	for i := range 3 {
		r := do(s, "GET", status, "", from("203.0.113.1")...)
		if r.StatusCode() != 200 || string(r.Header.Peek("RateLimit-Policy")) != `"status";q=3;w=10800` ||
			string(r.Header.Peek("RateLimit")) != fmt.Sprintf(`"status";r=%d;t=%d`, 2-i, 3600*(i+1)) {
			t.Fatalf("request %d: %d %q %q", i, r.StatusCode(), r.Header.Peek("RateLimit-Policy"), r.Header.Peek("RateLimit"))
		}
	}
	r := do(s, "GET", status, "", from("203.0.113.1")...)
	if r.StatusCode() != 429 || code(t, r) != "rate_limited" || string(r.Header.Peek("Retry-After")) != "3600" ||
		string(r.Header.Peek("RateLimit")) != `"status";r=0;t=10800` {
		t.Fatalf("past the burst: %d %s %q %q", r.StatusCode(), r.Body(), r.Header.Peek("Retry-After"), r.Header.Peek("RateLimit"))
	}
	// another client behind the same proxy has its own budget
	if r := do(s, "GET", status, "", from("203.0.113.2")...); r.StatusCode() != 200 {
		t.Fatalf("other client: %d", r.StatusCode())
	}
	// a public write has its own row; the relay is absent here (503), which is charged
	// like any answer
	if r := do(s, "POST", "/v1/public/acme/activations", "{}", from("203.0.113.1")...); r.StatusCode() != 503 {
		t.Fatalf("write: %d", r.StatusCode())
	}
	if r := do(s, "POST", "/v1/public/acme/activations", "{}", from("203.0.113.1")...); r.StatusCode() != 429 ||
		string(r.Header.Peek("RateLimit-Policy")) != `"public_write";q=1;w=3600` {
		t.Fatalf("second write: %d %q", r.StatusCode(), r.Header.Peek("RateLimit-Policy"))
	}

	// key guessing from 203.0.113.3: two 404s spend the budget, then a known key is 429
	src.res = source.Result{Found: false, Tier: "replica"}
	for range 2 {
		if r := do(s, "GET", status, "", from("203.0.113.3")...); r.StatusCode() != 404 {
			t.Fatalf("unknown key: %d", r.StatusCode())
		}
	}
	src.res = snapshot(nil)
	r = do(s, "GET", status, "", from("203.0.113.3")...)
	if r.StatusCode() != 429 || string(r.Header.Peek("RateLimit-Policy")) != `"not_found";q=2;w=7200` {
		t.Fatalf("known key after the 404 budget: %d %q", r.StatusCode(), r.Header.Peek("RateLimit-Policy"))
	}

	// the peer is counted when it is not trusted, whatever the header says
	untrusted := New(src, nil, nil, nil, Config{StatusMaxAge: time.Minute, Limits: limits},
		func() time.Time { return now }, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	for i := range 3 {
		if r := do(untrusted, "GET", status, "", from(fmt.Sprintf("198.51.100.%d", i))...); r.StatusCode() != 200 {
			t.Fatalf("peer request %d: %d", i, r.StatusCode())
		}
	}
	if r := do(untrusted, "GET", status, "", from("198.51.100.99")...); r.StatusCode() != 429 {
		t.Fatalf("a forged X-Forwarded-For bought a new budget: %d", r.StatusCode())
	}
}

// TestRelayPassesThrough runs the relay against a fake writer: method, path, body,
// request id and client address go in; status, body and headers come back unchanged.
func TestRelayPassesThrough(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	type seen struct{ method, uri, body, rid, xff, ctype string }
	got := make(chan seen, 1)
	writer := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		got <- seen{string(ctx.Method()), string(ctx.RequestURI()), string(ctx.PostBody()),
			string(ctx.Request.Header.Peek("X-Request-Id")), string(ctx.Request.Header.Peek("X-Forwarded-For")),
			string(ctx.Request.Header.ContentType())}
		ctx.SetStatusCode(409)
		ctx.SetContentType("application/problem+json")
		ctx.Response.Header.Set("Retry-After", "3")
		ctx.SetBodyString(`{"code":"seat_limit_reached"}`)
	}}
	go writer.Serve(ln) //nolint:errcheck
	defer writer.Shutdown()

	rel, err := relay.New(relay.Config{WriterURLs: []string{"http://writer.internal"}, Timeout: 2 * time.Second},
		slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	relay.SetDialer(rel, func(string) (net.Conn, error) { return ln.Dial() })
	s := newServer(&fakeSource{}, rel)
	body := `{"license_key":"K","product":"p","instance":"i"}`
	r := do(s, "POST", "/v1/public/acme/activations?x=1", body, "X-Request-Id", "rid-1",
		"X-Forwarded-For", "203.0.113.9", "Content-Type", "application/json")
	var w seen
	select {
	case w = <-got:
	case <-time.After(5 * time.Second):
		t.Fatalf("the writer got nothing; client got %d %s", r.StatusCode(), r.Body())
	}
	// the edge trusts no proxy here: the client's own X-Forwarded-For is dropped and the
	// writer is told the peer's address
	want := seen{"POST", "/v1/public/acme/activations?x=1", body, "rid-1", "192.0.2.7", "application/json"}
	if w != want {
		t.Errorf("writer saw %+v\nwant %+v", w, want)
	}
	if r.StatusCode() != 409 || string(r.Body()) != `{"code":"seat_limit_reached"}` ||
		string(r.Header.ContentType()) != "application/problem+json" || string(r.Header.Peek("Retry-After")) != "3" ||
		string(r.Header.Peek("X-Request-Id")) != "rid-1" {
		t.Errorf("client got %d %s %q %q", r.StatusCode(), r.Body(), r.Header.ContentType(), r.Header.Peek("X-Request-Id"))
	}
}

// TestStrictInput: control characters and invalid UTF-8 in the path or a query value are
// 400 problem+json, and nothing is read; the errors fasthttp raises before any handler (a
// head over 16 KiB, a body over the server's limit, a malformed request) are problem+json
// with X-Request-Id too.
func TestStrictInput(t *testing.T) {
	src := &fakeSource{res: snapshot(nil)}
	s := newServer(src, nil)
	for _, uri := range []string{
		"/v1/public/acme/licenses/" + key + "/status?instance=a%00b",
		"/v1/public/acme/licenses/" + key + "/status?product=%ff",
		"/v1/public/acme/licenses/" + key + "/status?pro%01duct=x",
		"/v1/public/acme/licenses/" + key + "%07/status",
	} {
		r := do(s, "GET", uri, "")
		if r.StatusCode() != 400 || code(t, r) != "invalid_request" || string(r.Header.ContentType()) != "application/problem+json" {
			t.Errorf("%s: %d %s", uri, r.StatusCode(), r.Body())
		}
	}
	if n := src.calls.Load(); n != 0 {
		t.Errorf("%d reads for refused requests", n)
	}

	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	hs := &fasthttp.Server{Handler: s.Handler, ErrorHandler: s.ErrorHandler, ReadBufferSize: MaxHeadBytes,
		MaxRequestBodySize: 1 << 10, ReadTimeout: 300 * time.Millisecond}
	go hs.Serve(ln) //nolint:errcheck
	defer hs.Shutdown()
	raw := func(req string) *fasthttp.Response {
		t.Helper()
		c, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(c)); err != nil {
			t.Fatalf("reading the answer to %.40q: %v", req, err)
		}
		return &resp
	}
	for name, c := range map[string]struct {
		req    string
		status int
	}{
		"head over 16 KiB": {"GET /healthz HTTP/1.1\r\nHost: e\r\nX-Big: " + strings.Repeat("a", 17<<10) + "\r\n\r\n", 431},
		"body over limit":  {"POST /v1/public/acme/activations HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("a", 5000), 400},
		"malformed":        {"GET /healthz HTTP/1.1\r\nHost: e\r\nContent-Length: x\r\n\r\n", 400},
		// the read timeout (300 ms here): a head that never ends, a connection that
		// carries nothing
		"head not finished": {"GET /healthz HTTP/1.1\r\nHost: e\r\n", 408},
		"nothing sent":      {"", 408},
	} {
		r := raw(c.req)
		if r.StatusCode() != c.status || string(r.Header.ContentType()) != "application/problem+json" ||
			len(r.Header.Peek("X-Request-Id")) == 0 || code(t, r) != "invalid_request" {
			t.Errorf("%s: %d %q %q %s", name, r.StatusCode(), r.Header.ContentType(), r.Header.Peek("X-Request-Id"), r.Body())
		}
	}
}

// okRelay answers every relayed write 201 (the writer is not what FuzzEdgeRequest tests).
type okRelay struct{}

func (okRelay) Forward(ctx *fasthttp.RequestCtx, _, _ string) error {
	ctx.SetStatusCode(201)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{}`)
	return nil
}

// FuzzEdgeRequest: the edge's router and query parsing see every request. Any method,
// URI and body: never a 5xx, never a panic, every refusal a problem document.
func FuzzEdgeRequest(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v1/public/acme/licenses/" + key + "/status?product=pro&instance=https://www.example.com/", ""},
		{"GET", "/v1/public/acme/licenses/" + key + "/status?instance=a%00b", ""},
		{"POST", "/v1/public/acme/activations", `{"license_key":"K","product":"p","instance":"i"}`},
		{"POST", "/v1/public/acme/deactivations", `{}`},
		{"HEAD", "/v1/public//licenses//status", ""},
		{"GET", "/healthz", ""},
		{"DELETE", "/v1/public/acme/activations", ""},
		{"GET", "/v1/public/acme/licenses/%ff/status?product=%C3%28", ""},
		{"GET", "/../../etc/passwd", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	s := newServer(&fakeSource{res: snapshot(nil)}, okRelay{})
	f.Fuzz(func(t *testing.T, method, uri, body string) {
		r := do(s, method, uri, body)
		if r.StatusCode() >= 500 {
			t.Fatalf("%s %q: %d %s", method, uri, r.StatusCode(), r.Body())
		}
		if r.StatusCode() >= 400 && string(r.Header.ContentType()) != "application/problem+json" {
			t.Fatalf("%s %q: %d %q", method, uri, r.StatusCode(), r.Header.ContentType())
		}
	})
}
