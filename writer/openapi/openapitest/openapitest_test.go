package openapitest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/openapi"
)

func TestSpecIsValidOpenAPI31(t *testing.T) {
	if err := ValidateSpec(); err != nil {
		t.Fatal(err)
	}
	// The check is not a no-op: documents that break the 3.1 meta-schema are refused.
	broken := map[string]string{
		"no-info":          "openapi: 3.1.0\npaths: {}\n",
		"bad-param-in":     "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get:\n      parameters: [{name: a, in: body}]\n      responses: {'200': {description: ok}}\n",
		"wrong-version":    "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n",
		"response-no-desc": "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get:\n      responses: {'200': {}}\n",
	}
	for name, doc := range broken {
		t.Run(name, func(t *testing.T) {
			if err := validateSpec([]byte(doc)); err == nil {
				t.Fatal("broken document accepted")
			}
		})
	}
}

func TestValidateRequest(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	mk := func(method, target, body string, auth bool) *http.Request {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		if body != "" {
			r.Header.Set("Content-Type", jsonCT)
		}
		if auth {
			r.Header.Set("Authorization", "Bearer lsk_ab12cd34ef56")
		}
		return r
	}
	good := []*http.Request{
		mk("POST", "/v1/license-keys", `{"customer_email":"jane@example.com","licenses":[{"product":"rankmath-pro","seat_limit":3,"expires_at":"2026-03-01T00:00:00Z"},{"product":"content-ai","seat_limit":null}]}`, true),
		mk("POST", "/v1/public/rankmath/activations", `{"license_key":"`+keyStr+`","product":"rankmath-pro","instance":"https://www.example.com/shop/"}`, false),
		mk("GET", "/v1/products?limit=500", "", true),
		mk("GET", "/v1/public/rankmath/licenses/"+keyStr+"/status?product=rankmath-pro&instance=example.com", "", false),
	}
	for _, r := range good {
		if err := v.ValidateRequest(r); err != nil {
			t.Errorf("good request rejected: %v", err)
		}
	}
	bad := map[string]*http.Request{
		"unknown-field":      mk("POST", "/v1/products", `{"code":"rankmath-pro","name":"Pro","price":9}`, true),
		"no-licenses":        mk("POST", "/v1/license-keys", `{"customer_email":"jane@example.com","licenses":[]}`, true),
		"seat-limit-zero":    mk("POST", "/v1/license-keys/"+keyStr+"/licenses", `{"product":"rankmath-pro","seat_limit":0}`, true),
		"limit-over-500":     mk("GET", "/v1/products?limit=501", "", true),
		"missing-credential": mk("GET", "/v1/products", "", false),
		"renew-without-date": mk("POST", "/v1/licenses/"+licID1+"/renew", `{}`, true),
	}
	for name, r := range bad {
		t.Run(name, func(t *testing.T) {
			err := v.ValidateRequest(r)
			if err == nil {
				t.Fatal("bad request accepted")
			}
			t.Logf("rejected as expected: %v", err)
		})
	}
}

// documented is every operation of API.md (plus the Swagger UI assets; the /api/docs
// redirect is documented on /api/docs/ because path matching ignores a trailing slash).
var documented = []struct{ method, path string }{
	{"POST", "/v1/brands"},
	{"GET", "/v1/brands"},
	{"PATCH", "/v1/brands/{slug}"},
	{"POST", "/v1/brands/{slug}/api-keys"},
	{"DELETE", "/v1/brands/{slug}/api-keys/{id}"},
	{"GET", "/v1/products"},
	{"POST", "/v1/products"},
	{"POST", "/v1/license-keys"},
	{"POST", "/v1/license-keys/{key}/licenses"},
	{"GET", "/v1/license-keys/{key}"},
	{"PATCH", "/v1/products/{code}"},
	{"GET", "/v1/licenses/{id}"},
	{"POST", "/v1/licenses/{id}/renew"},
	{"POST", "/v1/licenses/{id}/suspend"},
	{"POST", "/v1/licenses/{id}/resume"},
	{"POST", "/v1/licenses/{id}/cancel"},
	{"GET", "/v1/licenses/{id}/activations"},
	{"DELETE", "/v1/licenses/{id}/activations/{activation_id}"},
	{"GET", "/v1/licenses"},
	{"GET", "/v1/customers/{email}/licenses"},
	{"GET", "/v1/licenses/{id}/events"},
	{"POST", "/v1/webhook-endpoints"},
	{"GET", "/v1/webhook-endpoints"},
	{"GET", "/v1/webhook-endpoints/{id}"},
	{"PATCH", "/v1/webhook-endpoints/{id}"},
	{"DELETE", "/v1/webhook-endpoints/{id}"},
	{"POST", "/v1/webhook-endpoints/{id}/rotate-secret"},
	{"POST", "/v1/webhook-endpoints/{id}/test"},
	{"GET", "/v1/webhook-endpoints/{id}/deliveries"},
	{"POST", "/v1/webhook-deliveries/{id}/retry"},
	{"POST", "/v1/public/{brand}/activations"},
	{"POST", "/v1/public/{brand}/deactivations"},
	{"GET", "/v1/public/{brand}/licenses/{key}/status"},
	{"GET", "/.well-known/jwks.json"},
	{"GET", "/healthz"},
	{"GET", "/readyz"},
	{"GET", "/metrics"},
	{"GET", "/api/openapi.yaml"},
	{"GET", "/api/docs/"},
	{"GET", "/api/docs/{asset}"},
}

func TestEveryAPIOperationIsDocumented(t *testing.T) {
	doc, err := libopenapi.NewDocument(openapi.Spec())
	if err != nil {
		t.Fatal(err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	inSpec := map[string]bool{}
	for p, item := range m.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			inSpec[strings.ToUpper(method)+" "+p] = true
		}
	}
	want := map[string]bool{}
	for _, op := range documented {
		name := op.method + " " + op.path
		want[name] = true
		t.Run(name, func(t *testing.T) {
			if !inSpec[name] {
				t.Errorf("%s is not in openapi.yaml", name)
			}
		})
	}
	for name := range inSpec {
		if !want[name] {
			t.Errorf("openapi.yaml documents %s, which API.md does not list", name)
		}
	}

	// Brand POSTs take Idempotency-Key; public and service endpoints need no credential.
	for p, item := range m.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			hasIdem := slices.ContainsFunc(op.Parameters, func(pr *v3.Parameter) bool { return pr.Name == "Idempotency-Key" })
			brandPost := method == "post" && (p == "/v1/products" || strings.HasPrefix(p, "/v1/license-keys") || strings.HasPrefix(p, "/v1/licenses/") ||
				strings.HasPrefix(p, "/v1/webhook-"))
			if hasIdem != brandPost {
				t.Errorf("%s %s: Idempotency-Key parameter present=%v, want %v", method, p, hasIdem, brandPost)
			}
			public := strings.HasPrefix(p, "/v1/public/") || !strings.HasPrefix(p, "/v1/")
			if public && (op.Security == nil || len(op.Security) != 0) {
				t.Errorf("%s %s: want security: []", method, p)
			}
		}
	}
}

var (
	now     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	later   = now.Add(365 * 24 * time.Hour)
	reqID   = "01J7Z3Q9X8V6T5R4P3N2M1K0HG"
	keyStr  = license.NewKey()
	licID1  = "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
	licID2  = "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
	actID   = "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d"
	brandID = "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e"
)

func ptr[T any](v T) *T { return &v }

func sampleLicenses() []resource.License {
	return []resource.License{
		{
			ID: licID1, LicenseKey: keyStr, Product: "rankmath-pro", Status: "valid",
			ExpiresAt: &later, SeatLimit: ptr(3), SeatsUsed: 1, SeatsRemaining: ptr(2),
			CreatedAt: now, UpdatedAt: now,
			Activations: &[]resource.Activation{{ID: actID, LicenseID: licID1, Instance: "example.com/shop", ActivatedAt: now}},
		},
		{
			ID: licID2, LicenseKey: keyStr, Product: "content-ai", Status: "valid",
			ExpiresAt: nil, SeatLimit: nil, SeatsUsed: 0, SeatsRemaining: nil,
			CreatedAt: now, UpdatedAt: now,
		},
	}
}

func sampleKey() resource.LicenseKey {
	return resource.LicenseKey{Key: keyStr, Brand: "rankmath", CustomerEmail: "jane@example.com", CreatedAt: now, Licenses: sampleLicenses()}
}

func sampleStatus() resource.Status {
	return resource.Status{
		LicenseKey: keyStr, Brand: "rankmath", Valid: true, Code: "valid",
		Licenses: []resource.StatusLicense{
			{Product: "rankmath-pro", Status: "valid", Valid: true, ExpiresAt: &later, SeatLimit: ptr(3), SeatsUsed: 1, SeatsRemaining: ptr(2)},
			{Product: "content-ai", Status: "suspended", Valid: false},
		},
		Instance:  &resource.StatusInstance{ID: "example.com/shop", Activated: true},
		CheckedAt: now,
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate decodes body, applies f to the generic value and re-encodes it.
func mutate(t *testing.T, body []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	return mustJSON(t, m)
}

func hdr(contentType string, kv ...string) http.Header {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	h.Set("X-Request-Id", reqID)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

const jsonCT = "application/json"

const problemCT = "application/problem+json"

// problemBody renders a problem document as the writer does (writer/api has the table;
// the statuses here are the contract's).
func problemBody(t *testing.T, status int, kind problem.Kind, detail string) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": problem.TypeBase + string(kind), "title": kind.Title(),
		"status": status, "detail": detail, "code": kind, "request_id": reqID})
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

type sample struct {
	name   string
	method string
	target string
	status int
	header http.Header
	body   []byte
}

func TestValidatorAcceptsConformingResponses(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	lics := sampleLicenses()
	lic := lics[0]
	noAct := lics[1]
	seatStatus, seatBody := problemBody(t, 409, problem.SeatLimitReached, "all 3 seats are in use")
	rateStatus, rateBody := problemBody(t, 429, problem.RateLimited, "slow down")
	invStatus, invBody := problemBody(t, 422, problem.InvalidRequest, "licenses[0].seat_limit: must be at least 1")
	scopeStatus, scopeBody := problemBody(t, 403, problem.InsufficientScope, "needs customers:read-all")
	nfStatus, nfBody := problemBody(t, 404, problem.LicenseNotFound, "no such license key")
	intStatus, intBody := problemBody(t, 500, problem.Internal, "an internal error occurred; it has been logged")
	statusNoInstance := sampleStatus()
	statusNoInstance.Instance = nil
	statusNoInstance.Code = "product_not_licensed"
	statusNoInstance.Valid = false

	cases := []sample{
		{"create-brand-201", "POST", "/v1/brands", 201, hdr(jsonCT), mustJSON(t, resource.BrandCreated{
			Brand:  resource.Brand{ID: brandID, Slug: "rankmath", Name: "Rank Math", CreatedAt: now},
			APIKey: resource.APIKey{ID: actID, Prefix: "lsk_ab12", Secret: "lsk_ab12cd34ef56", Scopes: []string{}},
		})},
		{"list-brands-200", "GET", "/v1/brands?limit=10", 200, hdr(jsonCT), mustJSON(t, resource.List[resource.Brand]{
			Data: []resource.Brand{{ID: brandID, Slug: "rankmath", Name: "Rank Math", CreatedAt: now}}, NextCursor: ptr("b2Zmc2V0PTEw"),
		})},
		{"create-api-key-201", "POST", "/v1/brands/rankmath/api-keys", 201, hdr(jsonCT), mustJSON(t, resource.APIKey{
			ID: actID, Prefix: "lsk_ab12", Secret: "lsk_ab12cd34ef56", Scopes: []string{"customers:read-all"},
		})},
		{"revoke-api-key-204", "DELETE", "/v1/brands/rankmath/api-keys/" + actID, 204, hdr(""), nil},
		{"create-product-201-replayed", "POST", "/v1/products", 201, hdr(jsonCT, "Idempotent-Replayed", "true"), mustJSON(t, resource.Product{ID: brandID, Code: "rankmath-pro", Name: "Rank Math Pro", DevInstances: true, DevInstanceSuffixes: []string{}, CreatedAt: now})},
		{"list-products-200-empty", "GET", "/v1/products", 200, hdr(jsonCT), mustJSON(t, resource.List[resource.Product]{Data: []resource.Product{}})},
		{"create-license-key-201", "POST", "/v1/license-keys", 201, hdr(jsonCT), mustJSON(t, sampleKey())},
		{"create-license-key-422-problem", "POST", "/v1/license-keys", invStatus, hdr(problemCT), invBody},
		{"add-license-201", "POST", "/v1/license-keys/" + keyStr + "/licenses", 201, hdr(jsonCT), mustJSON(t, noAct)},
		{"get-license-key-200", "GET", "/v1/license-keys/" + keyStr, 200, hdr(jsonCT), mustJSON(t, sampleKey())},
		{"get-license-200", "GET", "/v1/licenses/" + licID1, 200, hdr(jsonCT), mustJSON(t, lic)},
		{"renew-200", "POST", "/v1/licenses/" + licID1 + "/renew", 200, hdr(jsonCT), mustJSON(t, lic)},
		{"suspend-200", "POST", "/v1/licenses/" + licID1 + "/suspend", 200, hdr(jsonCT), mustJSON(t, noAct)},
		{"products-429", "GET", "/v1/products", rateStatus, hdr(problemCT, "Retry-After", "3"), rateBody},
		{"delete-activation-204", "DELETE", "/v1/licenses/" + licID1 + "/activations/" + actID, 204, hdr(""), nil},
		{"licenses-by-email-200", "GET", "/v1/licenses?customer_email=jane%40example.com", 200, hdr(jsonCT), mustJSON(t, resource.List[resource.License]{Data: lics})},
		{"customer-across-brands-200", "GET", "/v1/customers/jane@example.com/licenses", 200, hdr(jsonCT), mustJSON(t, resource.List[resource.CustomerLicense]{Data: []resource.CustomerLicense{
			{Brand: "rankmath", ID: licID1, LicenseKey: keyStr, Product: "rankmath-pro", Status: "valid", ExpiresAt: &later, SeatLimit: ptr(3), SeatsUsed: ptr(1), Activations: lic.Activations},
			{Brand: "wp-rocket", LicenseKey: license.MaskKey(license.NewKey()), Product: "rocket", Status: "expired", ExpiresAt: &now, Masked: true},
		}})},
		{"customer-across-brands-403", "GET", "/v1/customers/jane@example.com/licenses", scopeStatus, hdr(problemCT), scopeBody},
		{"events-200", "GET", "/v1/licenses/" + licID1 + "/events", 200, hdr(jsonCT), mustJSON(t, resource.List[resource.Event]{Data: []resource.Event{
			{ID: actID, Action: "license.created", Actor: "api_key:" + brandID, RequestID: reqID, At: now, Before: nil, After: lic},
			{ID: licID2, Action: "license.suspended", Actor: "operator", RequestID: reqID, At: later, Before: lic, After: map[string]any{"status": "suspended"}},
		}})},
		{"activate-201", "POST", "/v1/public/rankmath/activations", 201, hdr(jsonCT), mustJSON(t, resource.ActivationResult{Activation: (*lic.Activations)[0], License: lic})},
		{"activate-200-reinstall", "POST", "/v1/public/rankmath/activations", 200, hdr(jsonCT), mustJSON(t, resource.ActivationResult{Activation: (*lic.Activations)[0], License: lic})},
		{"activate-409-seat-limit", "POST", "/v1/public/rankmath/activations", seatStatus, hdr(problemCT + "; charset=utf-8"), seatBody},
		{"activate-500", "POST", "/v1/public/rankmath/activations", intStatus, hdr(problemCT), intBody},
		{"deactivate-200", "POST", "/v1/public/rankmath/deactivations", 200, hdr(jsonCT), mustJSON(t, resource.DeactivationResult{License: noAct})},
		{"status-200", "GET", "/v1/public/rankmath/licenses/" + keyStr + "/status?product=rankmath-pro&instance=https%3A%2F%2Fexample.com%2Fshop", 200, hdr(jsonCT, "Cache-Control", "public, max-age=60", "Vary", "Accept"), mustJSON(t, sampleStatus())},
		{"status-200-no-instance", "GET", "/v1/public/rankmath/licenses/" + keyStr + "/status?product=other", 200, hdr(jsonCT, "Cache-Control", "max-age=30", "Vary", "Accept"), mustJSON(t, statusNoInstance)},
		{"status-200-signed", "GET", "/v1/public/rankmath/licenses/" + keyStr + "/status", 200, hdr("application/jose", "Cache-Control", "max-age=60", "Vary", "Accept"), []byte("eyJhbGciOiJFZERTQSJ9.eyJ2YWxpZCI6dHJ1ZX0.c2ln")},
		{"jwks-200", "GET", "/.well-known/jwks.json", 200, hdr(jsonCT, "Cache-Control", "max-age=300"), []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k","use":"sig","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)},
		{"status-404", "GET", "/v1/public/rankmath/licenses/AAAAA-AAAAA-AAAAA-AAAAA-AAAAA/status", nfStatus, hdr(problemCT), nfBody},
		{"healthz-200", "GET", "/healthz", 200, hdr("text/plain; charset=utf-8"), []byte("ok\n")},
		{"readyz-503", "GET", "/readyz", 503, hdr(jsonCT), []byte(`{"postgres":"down"}`)},
		{"metrics-200", "GET", "/metrics", 200, hdr("text/plain; version=0.0.4; charset=utf-8; escaping=underscores"), []byte("# HELP up 1\nup 1\n")},
		{"openapi-200", "GET", "/api/openapi.yaml", 200, hdr(openapi.SpecContentType), openapi.Spec()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.target, nil)
			if err := v.ValidateResponse(req, c.status, c.header, c.body); err != nil {
				t.Errorf("conforming response rejected:\n%v", err)
			}
		})
	}
}

func TestValidatorRejectsBrokenResponses(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	lic := sampleLicenses()[0]
	good := mustJSON(t, lic)
	goodKey := mustJSON(t, sampleKey())
	goodStatus := mustJSON(t, sampleStatus())
	_, seatBody := problemBody(t, 409, problem.SeatLimitReached, "all 3 seats are in use")
	_, rateBody := problemBody(t, 429, problem.RateLimited, "slow down")
	licPath := "/v1/licenses/" + licID1

	cases := []sample{
		{"license-missing-seats-used", "GET", licPath, 200, hdr(jsonCT), mutate(t, good, func(m map[string]any) { delete(m, "seats_used") })},
		{"license-missing-expires-at", "GET", licPath, 200, hdr(jsonCT), mutate(t, good, func(m map[string]any) { delete(m, "expires_at") })},
		{"license-seat-limit-string", "GET", licPath, 200, hdr(jsonCT), mutate(t, good, func(m map[string]any) { m["seat_limit"] = "3" })},
		{"license-seats-used-null", "GET", licPath, 200, hdr(jsonCT), mutate(t, good, func(m map[string]any) { m["seats_used"] = nil })},
		{"license-unknown-status", "GET", licPath, 200, hdr(jsonCT), mutate(t, good, func(m map[string]any) { m["status"] = "active" })},
		{"license-expires-not-a-time", "GET", licPath, 200, hdr(jsonCT), mutate(t, good, func(m map[string]any) { m["expires_at"] = "tomorrow" })},
		{"license-id-not-uuid", "GET", licPath, 200, hdr(jsonCT), mutate(t, good, func(m map[string]any) { m["id"] = "42" })},
		{"license-key-bad-alphabet", "GET", licPath, 200, hdr(jsonCT), mutate(t, good, func(m map[string]any) { m["license_key"] = "OOOOO-11111-IIIII-LLLLL-00000" })},
		{"license-key-nil-licenses", "GET", "/v1/license-keys/" + keyStr, 200, hdr(jsonCT), mutate(t, goodKey, func(m map[string]any) { m["licenses"] = nil })},
		{"license-key-bad-email", "GET", "/v1/license-keys/" + keyStr, 200, hdr(jsonCT), mutate(t, goodKey, func(m map[string]any) { m["customer_email"] = "not-an-email" })},
		{"list-nil-data", "GET", "/v1/products", 200, hdr(jsonCT), mustJSON(t, resource.List[resource.Product]{})},
		{"list-missing-next-cursor", "GET", "/v1/products", 200, hdr(jsonCT), []byte(`{"data":[]}`)},
		{"status-unknown-code", "GET", "/v1/public/rankmath/licenses/" + keyStr + "/status", 200, hdr(jsonCT, "Cache-Control", "max-age=60"), mutate(t, goodStatus, func(m map[string]any) { m["code"] = "ok" })},
		{"status-missing-cache-control", "GET", "/v1/public/rankmath/licenses/" + keyStr + "/status", 200, hdr(jsonCT), goodStatus},
		{"status-missing-vary", "GET", "/v1/public/rankmath/licenses/" + keyStr + "/status", 200, hdr(jsonCT, "Cache-Control", "max-age=60"), goodStatus},
		{"status-signed-as-text", "GET", "/v1/public/rankmath/licenses/" + keyStr + "/status", 200, hdr("text/plain", "Cache-Control", "max-age=60", "Vary", "Accept"), []byte("a.b.c")},
		{"jwks-rsa-key", "GET", "/.well-known/jwks.json", 200, hdr(jsonCT, "Cache-Control", "max-age=300"), []byte(`{"keys":[{"kty":"RSA","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)},
		{"jwks-without-cache-control", "GET", "/.well-known/jwks.json", 200, hdr(jsonCT), []byte(`{"keys":[]}`)},
		{"status-instance-missing-activated", "GET", "/v1/public/rankmath/licenses/" + keyStr + "/status", 200, hdr(jsonCT, "Cache-Control", "max-age=60"), mutate(t, goodStatus, func(m map[string]any) { m["instance"] = map[string]any{"id": "example.com"} })},
		{"masked-entry-with-activations", "GET", "/v1/customers/jane@example.com/licenses", 200, hdr(jsonCT), mustJSON(t, resource.List[resource.CustomerLicense]{Data: []resource.CustomerLicense{
			{Brand: "wp-rocket", LicenseKey: "*********************WXYZ", Product: "rocket", Status: "valid", Masked: true, Activations: lic.Activations},
		}})},
		{"undocumented-status-418", "GET", licPath, 418, hdr(jsonCT), good},
		{"undocumented-status-201-on-get", "GET", licPath, 201, hdr(jsonCT), good},
		{"undocumented-status-404-on-products", "GET", "/v1/products", 404, hdr(problemCT), seatBody},
		{"undocumented-path", "GET", "/v1/nope", 200, hdr(jsonCT), []byte(`{}`)},
		{"undocumented-method", "PUT", "/v1/products", 200, hdr(jsonCT), []byte(`{}`)},
		{"problem-as-plain-json", "POST", "/v1/public/rankmath/activations", 409, hdr(jsonCT), seatBody},
		{"problem-missing-code", "POST", "/v1/public/rankmath/activations", 409, hdr(problemCT), mutate(t, seatBody, func(m map[string]any) { delete(m, "code") })},
		{"problem-unknown-code", "POST", "/v1/public/rankmath/activations", 409, hdr(problemCT), mutate(t, seatBody, func(m map[string]any) { m["code"] = "too_many" })},
		{"license-as-text", "GET", licPath, 200, hdr("text/plain"), good},
		{"missing-x-request-id", "GET", licPath, 200, http.Header{"Content-Type": {jsonCT}}, good},
		{"429-without-retry-after", "GET", "/v1/products", 429, hdr(problemCT), rateBody},
		{"429-retry-after-not-a-number", "GET", "/v1/products", 429, hdr(problemCT, "Retry-After", "soon"), rateBody},
		{"204-with-body", "DELETE", licPath + "/activations/" + actID, 204, hdr(jsonCT), []byte(`{}`)},
		{"not-json", "GET", licPath, 200, hdr(jsonCT), []byte(`{"id":`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.target, nil)
			err := v.ValidateResponse(req, c.status, c.header, c.body)
			if err == nil {
				t.Fatalf("broken response accepted: %d %s", c.status, c.body)
			}
			t.Logf("rejected as expected: %v", err)
		})
	}
}

func TestRegisterServesSpecAndDocs(t *testing.T) {
	mux := http.NewServeMux()
	openapi.Register(mux)
	// The writer's middleware sets X-Request-Id on every response; mimic it so the answers
	// can be checked against the document too.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", reqID)
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	get := func(t *testing.T, p string) (*http.Response, []byte) {
		t.Helper()
		resp, err := client.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(p)
		req := httptest.NewRequest(http.MethodGet, u.String(), nil)
		if err := v.ValidateResponse(req, resp.StatusCode, resp.Header, body); err != nil {
			t.Errorf("GET %s does not match its own document: %v", p, err)
		}
		return resp, body
	}

	t.Run("spec", func(t *testing.T) {
		resp, body := get(t, "/api/openapi.yaml")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" {
			t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if string(body) != string(openapi.Spec()) {
			t.Fatal("served document differs from openapi.Spec()")
		}
	})
	t.Run("docs-index", func(t *testing.T) {
		resp, body := get(t, "/api/docs/")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, want := range []string{`src="./swagger-ui-bundle.js"`, `href="./swagger-ui.css"`, `src="./swagger-initializer.js"`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("index.html lacks %s", want)
			}
		}
		if strings.Contains(string(body), "http://") || strings.Contains(string(body), "https://") {
			t.Error("index.html references an external URL")
		}
	})
	t.Run("docs-initializer-points-at-spec", func(t *testing.T) {
		resp, body := get(t, "/api/docs/swagger-initializer.js")
		if resp.StatusCode != 200 || !strings.Contains(string(body), `url: "/api/openapi.yaml"`) || !strings.Contains(string(body), "validatorUrl: null") {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
		if strings.Contains(string(body), "http://") || strings.Contains(string(body), "https://") {
			t.Error("initializer references an external URL")
		}
	})
	t.Run("docs-assets", func(t *testing.T) {
		for _, name := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"} {
			resp, body := get(t, "/api/docs/"+name)
			if resp.StatusCode != 200 || len(body) == 0 {
				t.Errorf("%s: got %d, %d bytes", name, resp.StatusCode, len(body))
			}
		}
		if resp, _ := get(t, "/api/docs/nope.js"); resp.StatusCode != 404 {
			t.Errorf("unknown asset: got %d", resp.StatusCode)
		}
	})
	t.Run("docs-redirect", func(t *testing.T) {
		resp, _ := get(t, "/api/docs")
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/api/docs/" {
			t.Fatalf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}
