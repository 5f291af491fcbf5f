package licenseclient_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensing/licensing/clients/go/licenseapi"
	"github.com/licensing/licensing/clients/go/licenseclient"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/internal/natstest"
	"github.com/licensing/licensing/writer/app"
)

const operatorToken = "op-secret-token"

// startWriter runs a writer (webhooks on, loopback receivers allowed) over a fresh database
// and an in-process NATS, stopped when t ends, and returns its base URL.
func startWriter(t *testing.T) string {
	t.Helper()
	db, ns := dbtest.New(t), natstest.Start(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := app.Config{
		Addr: "127.0.0.1:0", DatabaseURL: db.AppURL, NATSURL: ns.URL(), OperatorToken: operatorToken,
		MaxConns: 10, ShutdownTimeout: 5 * time.Second, StatusMaxAge: time.Minute, OutboxPoll: 200 * time.Millisecond,
		WebhookKeys: base64.StdEncoding.EncodeToString(key), WebhookAllowLoopback: true,
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("writer did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("writer did not start in time")
	}
	t.Cleanup(func() {
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
	return "http://" + addr
}

// front is a proxy before the writer that may answer a request itself instead; it records
// what it received.
type front struct {
	*httptest.Server
	mu       sync.Mutex
	seen     []*http.Request
	override func(n int, r *http.Request, upstream *httptest.ResponseRecorder) (status int, hdr http.Header, body string, ok bool)
}

func newFront(t *testing.T, writer string) *front {
	t.Helper()
	u, err := url.Parse(writer)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	f := &front{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Clone(context.Background()))
		n, override := len(f.seen), f.override
		f.mu.Unlock()
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		if override != nil {
			if status, hdr, body, ok := override(n, r, rec); ok {
				for k, v := range hdr {
					w.Header()[k] = v
				}
				w.Header().Set("Content-Type", "application/problem+json")
				w.Header().Set("X-Request-Id", "front-"+r.Method)
				w.WriteHeader(status)
				_, _ = io.WriteString(w, body)
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *front) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func (f *front) reset(override func(int, *http.Request, *httptest.ResponseRecorder) (int, http.Header, string, bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen, f.override = nil, override
}

// must takes a call's answer and fails the test unless it is an S.
func must[S any](t *testing.T) func(any, error) S {
	return func(res any, err error) S {
		t.Helper()
		s, err := licenseclient.Expect[S](res, err)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// changed is the license a lifecycle call answered with.
func changed[R any](res R, err error) (licenseapi.License, error) {
	r, err := licenseclient.Expect[*licenseapi.LicenseChangedHeaders](res, err)
	if err != nil {
		return licenseapi.License{}, err
	}
	return r.Response, nil
}

// TestAgainstWriter walks a brand backend's calls through the client against a running
// writer: each step builds on the one before.
func TestAgainstWriter(t *testing.T) {
	t.Parallel()
	writer := startWriter(t)
	f := newFront(t, writer)
	ctx := context.Background()
	fast := licenseclient.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxRetryAfter: 5 * time.Second}

	op, err := licenseclient.New(writer, "", licenseclient.WithOperatorToken(operatorToken))
	if err != nil {
		t.Fatal(err)
	}
	brand := must[*licenseapi.BrandCreatedHeaders](t)(op.CreateBrand(ctx, &licenseapi.CreateBrandRequest{Slug: "acme", Name: "Acme"}))
	c, err := licenseclient.New(f.URL, brand.Response.APIKey.Secret, licenseclient.WithRetryPolicy(fast))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("create-products", func(t *testing.T) {
		for _, code := range []string{"seo", "backup"} {
			p := must[*licenseapi.ProductHeaders](t)(c.CreateProduct(ctx, &licenseapi.CreateProductRequest{Code: licenseapi.Code(code), Name: strings.ToUpper(code)}, licenseapi.CreateProductParams{}))
			if string(p.Response.Code) != code || p.IdempotentReplayed.Set {
				t.Fatalf("created %+v", p)
			}
		}
	})

	t.Run("create-product-409-conflict-code", func(t *testing.T) {
		_, err := licenseclient.Expect[*licenseapi.ProductHeaders](c.CreateProduct(ctx, &licenseapi.CreateProductRequest{Code: "seo", Name: "again"}, licenseapi.CreateProductParams{}))
		var pe *licenseclient.Error
		if !errors.As(err, &pe) || pe.Status != 409 || pe.Code != licenseapi.ErrorCodeConflict || pe.RequestID == "" {
			t.Fatalf("err %v, want a 409 conflict problem with a request id", err)
		}
	})

	const email = "jane@example.com"
	var key licenseapi.LicenseKey
	t.Run("provision-two-products-lost-answer-retried-replays", func(t *testing.T) {
		// the writer commits the first attempt, but its answer is lost (a 503 from the
		// proxy): the retry carries the same Idempotency-Key and gets the first answer again
		f.reset(func(n int, r *http.Request, up *httptest.ResponseRecorder) (int, http.Header, string, bool) {
			if n == 1 && up.Code == 201 {
				return 503, nil, `{"type":"about:blank","title":"Unavailable","status":503,"code":"unavailable"}`, true
			}
			return 0, nil, "", false
		})
		defer f.reset(nil)
		expires := time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
		res := must[*licenseapi.LicenseKeyHeaders](t)(c.CreateLicenseKey(ctx, &licenseapi.CreateLicenseKeyRequest{
			CustomerEmail: email,
			Licenses: []licenseapi.LicenseSpec{
				{Product: "seo", ExpiresAt: licenseapi.NewOptNilDateTime(expires), SeatLimit: licenseapi.NewOptNilInt(3)},
				{Product: "backup"},
			},
		}, licenseapi.CreateLicenseKeyParams{}))
		reqs := f.requests()
		if len(reqs) != 2 {
			t.Fatalf("%d requests reached the proxy, want the lost one and its retry", len(reqs))
		}
		k1, k2 := reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key")
		if k1 == "" || k1 != k2 {
			t.Fatalf("Idempotency-Keys %q and %q, want one generated key sent twice", k1, k2)
		}
		if res.IdempotentReplayed.Or("") != licenseapi.IdempotentReplayedTrue {
			t.Fatal("the retry was not answered as a replay")
		}
		key = res.Response
		if len(key.Licenses) != 2 || key.Licenses[0].Product != "seo" || key.Licenses[1].Product != "backup" {
			t.Fatalf("licenses %+v", key.Licenses)
		}
		if got, ok := key.Licenses[0].ExpiresAt.Get(); !ok || !got.Equal(expires) {
			t.Fatalf("expires_at %v, want %v", key.Licenses[0].ExpiresAt, expires)
		}
	})
	if len(key.Licenses) != 2 {
		t.Fatal("no license key to go on with")
	}

	t.Run("list-by-customer-email-one-provisioning", func(t *testing.T) {
		l := must[*licenseapi.LicenseListHeaders](t)(c.ListCustomerLicensesInBrand(ctx, licenseapi.ListCustomerLicensesInBrandParams{CustomerEmail: "  Jane@Example.com "}))
		if len(l.Response.Data) != 2 {
			t.Fatalf("%d licenses for %s, want the 2 of one provisioning (the retry added none)", len(l.Response.Data), email)
		}
		for _, lic := range l.Response.Data {
			if lic.LicenseKey != key.Key {
				t.Errorf("license %s under key %s, want %s", lic.ID, lic.LicenseKey, key.Key)
			}
		}
	})

	t.Run("get-key", func(t *testing.T) {
		got := must[*licenseapi.GetLicenseKeyOKHeaders](t)(c.GetLicenseKey(ctx, licenseapi.GetLicenseKeyParams{Key: strings.ToLower(string(key.Key))}))
		if got.Response.Key != key.Key || string(got.Response.CustomerEmail) != email || len(got.Response.Licenses) != 2 {
			t.Fatalf("got %+v", got.Response)
		}
	})

	t.Run("lifecycle-renew-suspend-resume-cancel", func(t *testing.T) {
		id := key.Licenses[0].ID
		until := time.Now().Add(2 * 365 * 24 * time.Hour).UTC().Truncate(time.Second)
		steps := []struct {
			name string
			call func() (licenseapi.License, error)
			want licenseapi.LicenseStatus
		}{
			{"renew", func() (licenseapi.License, error) {
				return changed(c.RenewLicense(ctx, &licenseapi.RenewRequest{ExpiresAt: until}, licenseapi.RenewLicenseParams{ID: id}))
			}, licenseapi.LicenseStatusValid},
			{"suspend", func() (licenseapi.License, error) {
				return changed(c.SuspendLicense(ctx, &licenseapi.SuspendLicenseReq{}, licenseapi.SuspendLicenseParams{ID: id}))
			}, licenseapi.LicenseStatusSuspended},
			{"resume", func() (licenseapi.License, error) {
				return changed(c.ResumeLicense(ctx, &licenseapi.ResumeLicenseReq{}, licenseapi.ResumeLicenseParams{ID: id}))
			}, licenseapi.LicenseStatusValid},
			{"cancel", func() (licenseapi.License, error) {
				return changed(c.CancelLicense(ctx, &licenseapi.CancelLicenseReq{}, licenseapi.CancelLicenseParams{ID: id}))
			}, licenseapi.LicenseStatusCancelled},
		}
		for _, s := range steps {
			lic, err := s.call()
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if lic.ID != id || lic.Status != s.want {
				t.Fatalf("%s: license %s is %s, want %s", s.name, lic.ID, lic.Status, s.want)
			}
		}
		got := must[*licenseapi.GetLicenseOKHeaders](t)(c.GetLicense(ctx, licenseapi.GetLicenseParams{ID: id}))
		if exp, ok := got.Response.ExpiresAt.Get(); !ok || !exp.Equal(until) || got.Response.Status != licenseapi.LicenseStatusCancelled {
			t.Fatalf("after the lifecycle: %s, expires %v; want cancelled, %v", got.Response.Status, got.Response.ExpiresAt, until)
		}
		_, err := licenseclient.Expect[*licenseapi.LicenseChangedHeaders](c.ResumeLicense(ctx, &licenseapi.ResumeLicenseReq{}, licenseapi.ResumeLicenseParams{ID: id}))
		if code := licenseclient.CodeOf(err); code != licenseapi.ErrorCodeInvalidTransition {
			t.Fatalf("resume a cancelled license: %v (code %q), want invalid_transition", err, code)
		}
	})

	t.Run("add-license-409-product-already-licensed", func(t *testing.T) {
		_, err := licenseclient.Expect[*licenseapi.LicenseChangedHeaders](c.AddLicense(ctx, &licenseapi.LicenseSpec{Product: "backup"}, licenseapi.AddLicenseParams{Key: string(key.Key)}))
		var pe *licenseclient.Error
		if !errors.As(err, &pe) || pe.Status != 409 || pe.Code != licenseapi.ErrorCodeProductAlreadyLicensed || pe.Detail == "" {
			t.Fatalf("err %v, want 409 product_already_licensed with a detail", err)
		}
		if !strings.Contains(err.Error(), "409 product_already_licensed") {
			t.Fatalf("message %q names neither status nor code", err)
		}
	})

	t.Run("webhook-endpoint-create", func(t *testing.T) {
		u, _ := url.Parse("http://127.0.0.1:9/hooks/licensing")
		ep := must[*licenseapi.WebhookEndpointCreatedHeaders](t)(c.CreateWebhookEndpoint(ctx, &licenseapi.CreateWebhookEndpointRequest{
			URL: *u, Events: []licenseapi.WebhookEventType{licenseapi.WebhookEventTypeLicenseCreated}, Description: licenseapi.NewOptString("billing"),
		}, licenseapi.CreateWebhookEndpointParams{}))
		r := ep.Response
		if r.URL.String() != u.String() || !slices.Equal(r.Events, []licenseapi.WebhookEventType{licenseapi.WebhookEventTypeLicenseCreated}) ||
			r.Status != "enabled" || !strings.HasPrefix(string(r.Secret), "whsec_") {
			t.Fatalf("created %+v", r)
		}
		got := must[*licenseapi.WebhookEndpointHeaders](t)(c.GetWebhookEndpoint(ctx, licenseapi.GetWebhookEndpointParams{ID: r.ID}))
		if got.Response.Description != "billing" {
			t.Fatalf("read back %+v", got.Response)
		}
	})

	t.Run("across-brands-masked-entries-decode", func(t *testing.T) {
		// another brand licenses the same customer; a key of acme with customers:read-all
		// sees that license masked (no id, no seats: the document's if/then, which ogen
		// does not check, so the generated types must leave those fields optional)
		other := must[*licenseapi.BrandCreatedHeaders](t)(op.CreateBrand(ctx, &licenseapi.CreateBrandRequest{Slug: "globex", Name: "Globex"}))
		g, err := licenseclient.New(writer, other.Response.APIKey.Secret)
		if err != nil {
			t.Fatal(err)
		}
		must[*licenseapi.ProductHeaders](t)(g.CreateProduct(ctx, &licenseapi.CreateProductRequest{Code: "crm", Name: "CRM"}, licenseapi.CreateProductParams{}))
		must[*licenseapi.LicenseKeyHeaders](t)(g.CreateLicenseKey(ctx, &licenseapi.CreateLicenseKeyRequest{
			CustomerEmail: email, Licenses: []licenseapi.LicenseSpec{{Product: "crm", SeatLimit: licenseapi.NewOptNilInt(2)}},
		}, licenseapi.CreateLicenseKeyParams{}))
		readAll := must[*licenseapi.NewAPIKeyHeaders](t)(op.CreateAPIKey(ctx, licenseapi.NewOptCreateAPIKeyRequest(licenseapi.CreateAPIKeyRequest{
			Scopes: []licenseapi.CreateAPIKeyRequestScopesItem{licenseapi.CreateAPIKeyRequestScopesItemCustomersReadAll},
		}), licenseapi.CreateAPIKeyParams{Slug: "acme"}))
		a, err := licenseclient.New(writer, readAll.Response.Secret)
		if err != nil {
			t.Fatal(err)
		}
		l := must[*licenseapi.CustomerLicenseListHeaders](t)(a.ListCustomerLicensesAcrossBrands(ctx, licenseapi.ListCustomerLicensesAcrossBrandsParams{Email: email}))
		var own, masked int
		for _, e := range l.Response.Data {
			switch {
			case e.Brand == "acme" && !e.Masked && e.ID.Set && e.LicenseKey == string(key.Key):
				own++
			case e.Brand == "globex" && e.Masked && !e.ID.Set && !e.SeatLimit.Set && strings.HasPrefix(e.LicenseKey, "*"):
				masked++
			default:
				t.Errorf("unexpected entry %+v", e)
			}
		}
		if own != 2 || masked != 1 {
			t.Fatalf("%d own and %d masked entries, want 2 and 1", own, masked)
		}
		// without the scope: 403 insufficient_scope
		_, err = licenseclient.Expect[*licenseapi.CustomerLicenseListHeaders](c.ListCustomerLicensesAcrossBrands(ctx, licenseapi.ListCustomerLicensesAcrossBrandsParams{Email: email}))
		if code := licenseclient.CodeOf(err); code != licenseapi.ErrorCodeInsufficientScope {
			t.Fatalf("without the scope: %v, want insufficient_scope", err)
		}
	})

	t.Run("429-retried-after-retry-after", func(t *testing.T) {
		f.reset(func(n int, _ *http.Request, _ *httptest.ResponseRecorder) (int, http.Header, string, bool) {
			if n == 1 {
				return 429, http.Header{"Retry-After": {"1"}}, `{"type":"about:blank","title":"Too Many Requests","status":429,"code":"rate_limited"}`, true
			}
			return 0, nil, "", false
		})
		defer f.reset(nil)
		start := time.Now()
		got := must[*licenseapi.GetLicenseOKHeaders](t)(c.GetLicense(ctx, licenseapi.GetLicenseParams{ID: key.Licenses[1].ID}))
		if took := time.Since(start); took < time.Second {
			t.Fatalf("retried after %v, before the 1 s Retry-After", took)
		}
		if got.Response.ID != key.Licenses[1].ID || len(f.requests()) != 2 {
			t.Fatalf("%d requests, license %s", len(f.requests()), got.Response.ID)
		}
	})

	t.Run("429-past-max-retry-after-is-the-error", func(t *testing.T) {
		f.reset(func(int, *http.Request, *httptest.ResponseRecorder) (int, http.Header, string, bool) {
			return 429, http.Header{"Retry-After": {"60"}}, `{"type":"about:blank","title":"Too Many Requests","status":429,"code":"rate_limited"}`, true
		})
		defer f.reset(nil)
		_, err := licenseclient.Expect[*licenseapi.GetLicenseOKHeaders](c.GetLicense(ctx, licenseapi.GetLicenseParams{ID: key.Licenses[1].ID}))
		var pe *licenseclient.Error
		if !errors.As(err, &pe) || pe.Code != licenseapi.ErrorCodeRateLimited || pe.RetryAfter != time.Minute || len(f.requests()) != 1 {
			t.Fatalf("err %v after %d requests, want rate_limited with Retry-After 60 s after 1", err, len(f.requests()))
		}
	})
}
