package app_test

import (
	"context"
	"fmt"
	"github.com/licensing/licensing/internal/apitest"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/internal/natstest"
	"github.com/licensing/licensing/writer/app"
	"github.com/licensing/licensing/writer/openapi/openapitest"
)

// env is one running writer over a fresh database and an in-process NATS. Its methods
// take the t of the (sub)test that calls them, so a failure stops that test only.
type env struct {
	base     string
	db       dbtest.DB
	nats     *natstest.Server
	operator string
	stop     func() // stops this writer (graceful shutdown)
	client   *http.Client
	adminMu  sync.Mutex
	adminC   *pgx.Conn
}

var (
	validatorOnce sync.Once
	validator     *openapitest.Validator
	validatorErr  error
)

// option adjusts a test writer.
type option struct {
	cfg   func(*app.Config)
	logTo io.Writer
}

func withConfig(f func(*app.Config)) option { return option{cfg: f} }
func withLog(w io.Writer) option            { return option{logTo: w} }

func start(t testing.TB, opts ...option) *env {
	t.Helper()
	return startWith(t, dbtest.New(t), natstest.Start(t), opts...)
}

// startWith runs a writer over an existing database and NATS server; the writer stops when
// the test ends or when stop is called.
func startWith(t testing.TB, db dbtest.DB, ns *natstest.Server, opts ...option) *env {
	t.Helper()
	cfg := app.Config{
		Addr: "127.0.0.1:0", DatabaseURL: db.AppURL, NATSURL: ns.URL(), OperatorToken: "op-secret-token",
		MaxConns: 40, ShutdownTimeout: 5 * time.Second, StatusMaxAge: time.Minute, OutboxPoll: 200 * time.Millisecond,
	}
	var logTo io.Writer
	for _, o := range opts {
		if o.cfg != nil {
			o.cfg(&cfg)
		}
		if o.logTo != nil {
			logTo = o.logTo
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = testWriter{t}
	}
	if logTo != nil {
		logOut = io.MultiWriter(logOut, logTo)
	}
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- app.Run(ctx, cfg, log, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("writer did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("writer did not start in time")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("writer exited with %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("writer did not shut down")
			}
		})
	}
	t.Cleanup(stop)
	validatorOnce.Do(func() { validator, validatorErr = openapitest.NewValidator() })
	if validatorErr != nil {
		t.Fatalf("openapi validator: %v", validatorErr)
	}
	e := &env{base: "http://" + addr, db: db, nats: ns, operator: cfg.OperatorToken, stop: stop,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	t.Cleanup(func() {
		e.adminMu.Lock()
		defer e.adminMu.Unlock()
		if e.adminC != nil {
			e.adminC.Close(context.Background())
		}
	})
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// resp is an HTTP answer.
type resp = apitest.Response

// call sends a request and checks the answer against the OpenAPI document and the
// conventions every response follows (X-Request-Id; problem+json for errors).
func (e *env) call(t testing.TB, method, path, token string, body any, hdr ...string) resp {
	t.Helper()
	out, err := e.do(t, method, path, token, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// do is call for goroutines other than the test's: a deviation from the conventions is
// reported with t.Errorf, and a transport error is returned rather than ending the test
// (FailNow must not be called from such a goroutine).
func (e *env) do(t testing.TB, method, path, token string, body any, hdr ...string) (resp, error) {
	t.Helper()
	req, out, err := apitest.Do(e.client, e.base, method, path, token, body, hdr...)
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	if out.Status >= 400 && out.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s: error %d with content type %q: %s", method, path, out.Status, out.Header.Get("Content-Type"), out.Body)
	}
	if req.Header.Get("X-Test-Undocumented") != "true" {
		if err := validator.ValidateResponse(req, out.Status, out.Header, out.Body); err != nil {
			t.Errorf("%s %s: response does not match the OpenAPI document: %v\nbody: %s", method, path, err, out.Body)
		}
	}
	return out, nil
}

// must calls and fails the test unless the status is want.
func (e *env) must(t testing.TB, want int, method, path, token string, body any, hdr ...string) resp {
	t.Helper()
	r := e.call(t, method, path, token, body, hdr...)
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// brand creates a brand with products and returns its slug and API key.
func (e *env) brand(t testing.TB, slug string, products ...string) string {
	t.Helper()
	var out struct {
		APIKey struct {
			Secret string `json:"secret"`
		} `json:"api_key"`
	}
	e.must(t, 201, "POST", "/v1/brands", e.operator, map[string]string{"slug": slug, "name": strings.ToUpper(slug)}).JSON(t, &out)
	for _, p := range products {
		e.must(t, 201, "POST", "/v1/products", out.APIKey.Secret, map[string]string{"code": p, "name": p})
	}
	return out.APIKey.Secret
}

// admin opens a superuser connection to the test database, closed when t ends.
func (e *env) admin(t testing.TB) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), e.db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// count runs a counting query as the superuser (one shared connection, closed when the
// test that started the writer ends).
func (e *env) count(t testing.TB, q string, args ...any) int {
	t.Helper()
	e.adminMu.Lock()
	defer e.adminMu.Unlock()
	if e.adminC == nil {
		c, err := pgx.Connect(context.Background(), e.db.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		e.adminC = c
	}
	var n int
	if err := e.adminC.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// rowCounts counts every licensing table, to prove a refused request wrote nothing.
func (e *env) rowCounts(t testing.TB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tbl := range []string{"brands", "api_keys", "products", "license_keys", "licenses", "activations",
		"idempotency_keys", "audit_events", "outbox", "webhook_endpoints", "webhook_events", "webhook_deliveries"} {
		out[tbl] = e.count(t, "SELECT count(*) FROM "+tbl)
	}
	return out
}
