package app_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/resource"
)

func future(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }

func TestUserStories(t *testing.T) {
	e := start(t)
	rm := e.brand(t, "rankmath", "rankmath-pro", "content-ai")

	// US1: provision one key that unlocks two products.
	var key resource.LicenseKey
	e.must(t, 201, "POST", "/v1/license-keys", rm, map[string]any{
		"customer_email": "  Jane@Example.COM ",
		"licenses": []map[string]any{
			{"product": "rankmath-pro", "seat_limit": 2, "expires_at": future(48 * time.Hour)},
			{"product": "content-ai"},
		},
	}).JSON(t, &key)
	if !license.ValidKey(key.Key) || key.CustomerEmail != "jane@example.com" || key.Brand != "rankmath" || len(key.Licenses) != 2 {
		t.Fatalf("provisioned key = %+v", key)
	}
	pro, cai := key.Licenses[0], key.Licenses[1]
	if pro.Product != "rankmath-pro" || *pro.SeatLimit != 2 || *pro.SeatsRemaining != 2 || pro.Status != "valid" {
		t.Fatalf("pro license = %+v", pro)
	}
	if cai.SeatLimit != nil || cai.SeatsRemaining != nil || cai.ExpiresAt != nil {
		t.Fatalf("content-ai license should be perpetual and unlimited: %+v", cai)
	}

	t.Run("us1-add-license-409-product-already-licensed", func(t *testing.T) {
		r := e.must(t, 409, "POST", "/v1/license-keys/"+key.Key+"/licenses", rm, map[string]any{"product": "content-ai"})
		if r.Code() != "product_already_licensed" {
			t.Fatalf("code = %s", r.Code())
		}
	})
	t.Run("us1-422-unknown-product", func(t *testing.T) {
		r := e.must(t, 422, "POST", "/v1/license-keys", rm, map[string]any{"customer_email": "a@b.co",
			"licenses": []map[string]any{{"product": "nope"}}})
		if r.Code() != "unknown_product" {
			t.Fatalf("code = %s", r.Code())
		}
	})

	// US3: activate seats.
	act := func(t *testing.T, instance string) resp {
		return e.call(t, "POST", "/v1/public/rankmath/activations", "", map[string]string{
			"license_key": key.Key, "product": "rankmath-pro", "instance": instance})
	}
	var ar resource.ActivationResult
	r := act(t, "https://WWW.Example.com:443/")
	if r.Status != 201 {
		t.Fatalf("activate: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &ar)
	if ar.Activation.Instance != "example.com" || ar.License.SeatsUsed != 1 || *ar.License.SeatsRemaining != 1 {
		t.Fatalf("activation = %+v", ar)
	}
	t.Run("us3-200-reinstall-costs-no-seat", func(t *testing.T) {
		var again resource.ActivationResult
		r := act(t, "http://example.com")
		if r.Status != 200 {
			t.Fatalf("reinstall: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &again)
		if again.Activation.ID != ar.Activation.ID || again.License.SeatsUsed != 1 {
			t.Fatalf("reinstall = %+v", again)
		}
	})
	if r := act(t, "https://example.com/blog"); r.Status != 201 {
		t.Fatalf("sub-site is a distinct instance: %d %s", r.Status, r.Body)
	}
	for _, c := range []struct {
		name, brand, key, product, instance string
		status                              int
		code                                string
	}{
		{"us3-409-seat-limit", "rankmath", key.Key, "rankmath-pro", "third.example", 409, "seat_limit_reached"},
		{"us3-404-unknown-key", "rankmath", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "rankmath-pro", "x.example", 404, "license_not_found"},
		{"us3-404-product-not-on-key", "rankmath", key.Key, "other", "x.example", 404, "license_not_found"},
		{"us3-404-unknown-brand", "nobrand", key.Key, "rankmath-pro", "x.example", 404, "license_not_found"},
		{"us3-422-empty-instance", "rankmath", key.Key, "rankmath-pro", "   ", 422, "invalid_request"},
		{"us3-422-long-instance", "rankmath", key.Key, "rankmath-pro", strings.Repeat("é", 256), 422, "invalid_request"},
		{"us3-400-nul-in-instance", "rankmath", key.Key, "rankmath-pro", "x\x00.example", 400, "invalid_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.call(t, "POST", "/v1/public/"+c.brand+"/activations", "", map[string]string{
				"license_key": c.key, "product": c.product, "instance": c.instance})
			if r.Status != c.status || r.Code() != c.code {
				t.Fatalf("got %d %s, want %d %s: %s", r.Status, r.Code(), c.status, c.code, r.Body)
			}
		})
	}

	// US4: status on the writer.
	t.Run("us4-status", func(t *testing.T) {
		var st resource.Status
		r := e.must(t, 200, "GET", "/v1/public/rankmath/licenses/"+key.Key+"/status?product=rankmath-pro&instance="+url.QueryEscape("https://example.com"), "", nil)
		r.JSON(t, &st)
		if !st.Valid || st.Code != "valid" || st.Instance == nil || !st.Instance.Activated || len(st.Licenses) != 1 || st.Licenses[0].SeatsUsed != 2 {
			t.Fatalf("status = %+v", st)
		}
		if r.Header.Get("Cache-Control") == "" {
			t.Fatal("no Cache-Control on status")
		}
		e.must(t, 200, "GET", "/v1/public/rankmath/licenses/"+key.Key+"/status?product=rankmath-pro&instance=nowhere.example", "", nil).JSON(t, &st)
		if st.Valid || st.Code != "instance_not_activated" {
			t.Fatalf("status for unknown instance = %+v", st)
		}
		e.must(t, 200, "GET", "/v1/public/rankmath/licenses/"+key.Key+"/status?product=unknown", "", nil).JSON(t, &st)
		if st.Valid || st.Code != "product_not_licensed" {
			t.Fatalf("status for unlicensed product = %+v", st)
		}
		if r := e.call(t, "GET", "/v1/public/rankmath/licenses/AAAAA-BBBBB-CCCCC-DDDDD-EEEEE/status", "", nil); r.Status != 404 || r.Code() != "license_not_found" {
			t.Fatalf("unknown key: %d %s", r.Status, r.Body)
		}
	})

	// US2: lifecycle.
	path := "/v1/licenses/" + pro.ID
	var l resource.License
	e.must(t, 200, "POST", path+"/suspend", rm, nil).JSON(t, &l)
	if l.Status != "suspended" {
		t.Fatalf("suspend: %+v", l)
	}
	t.Run("us2-suspend-again-is-noop", func(t *testing.T) {
		before := e.count(t, "SELECT count(*) FROM audit_events WHERE license_id = $1", pro.ID)
		e.must(t, 200, "POST", path+"/suspend", rm, nil)
		if after := e.count(t, "SELECT count(*) FROM audit_events WHERE license_id = $1", pro.ID); after != before {
			t.Fatalf("no-op wrote %d events", after-before)
		}
	})
	if r := act(t, "https://new.example"); r.Status != 403 || r.Code() != "license_suspended" {
		t.Fatalf("activate suspended: %d %s", r.Status, r.Body)
	}
	e.must(t, 200, "POST", path+"/renew", rm, map[string]string{"expires_at": future(365 * 24 * time.Hour)}).JSON(t, &l)
	if l.Status != "suspended" {
		t.Fatalf("renew must keep suspended: %+v", l)
	}
	e.must(t, 200, "POST", path+"/resume", rm, nil).JSON(t, &l)
	if l.Status != "valid" {
		t.Fatalf("resume: %+v", l)
	}
	t.Run("us2-422-renew-in-the-past", func(t *testing.T) {
		r := e.must(t, 422, "POST", path+"/renew", rm, map[string]string{"expires_at": "2001-01-01T00:00:00Z"})
		if r.Code() != "invalid_request" {
			t.Fatalf("code %s", r.Code())
		}
	})
	e.must(t, 200, "POST", path+"/cancel", rm, nil).JSON(t, &l)
	if l.Status != "cancelled" {
		t.Fatalf("cancel: %+v", l)
	}
	for _, tr := range []string{"resume", "suspend"} {
		t.Run("us2-409-"+tr+"-out-of-cancelled", func(t *testing.T) {
			if r := e.call(t, "POST", path+"/"+tr, rm, nil); r.Status != 409 || r.Code() != "invalid_transition" {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})
	}
	if r := e.call(t, "POST", path+"/renew", rm, map[string]string{"expires_at": future(time.Hour)}); r.Status != 409 {
		t.Fatalf("renew cancelled: %d", r.Status)
	}
	e.must(t, 200, "POST", path+"/cancel", rm, nil) // cancel again: no-op
	if r := act(t, "https://new.example"); r.Status != 403 || r.Code() != "license_cancelled" {
		t.Fatalf("activate cancelled: %d %s", r.Status, r.Body)
	}
	// a cancelled license frees its product for a new license on the same key
	var again resource.License
	e.must(t, 201, "POST", "/v1/license-keys/"+key.Key+"/licenses", rm, map[string]any{"product": "rankmath-pro", "seat_limit": 1}).JSON(t, &again)

	// US5: deactivate by instance, and by id (support desk).
	var dr resource.DeactivationResult
	caiAct := e.call(t, "POST", "/v1/public/rankmath/activations", "", map[string]string{"license_key": key.Key, "product": "content-ai", "instance": "site.example"})
	if caiAct.Status != 201 {
		t.Fatalf("activate unlimited: %d %s", caiAct.Status, caiAct.Body)
	}
	e.must(t, 200, "POST", "/v1/public/rankmath/deactivations", "", map[string]string{"license_key": key.Key, "product": "content-ai", "instance": "https://site.example/"}).JSON(t, &dr)
	if dr.License.SeatsUsed != 0 {
		t.Fatalf("deactivate: %+v", dr)
	}
	if r := e.call(t, "POST", "/v1/public/rankmath/deactivations", "", map[string]string{"license_key": key.Key, "product": "content-ai", "instance": "site.example"}); r.Status != 404 || r.Code() != "activation_not_found" {
		t.Fatalf("deactivate twice: %d %s", r.Status, r.Body)
	}
	if r := e.call(t, "POST", "/v1/public/nobrand/deactivations", "", map[string]string{"license_key": key.Key, "product": "content-ai", "instance": "site.example"}); r.Status != 404 || r.Code() != "activation_not_found" {
		t.Fatalf("deactivate under an unknown brand: %d %s", r.Status, r.Body)
	}
	e.call(t, "POST", "/v1/public/rankmath/activations", "", map[string]string{"license_key": key.Key, "product": "rankmath-pro", "instance": "desk.example"})
	var full resource.License
	e.must(t, 200, "GET", "/v1/licenses/"+again.ID, rm, nil).JSON(t, &full)
	if full.Activations == nil || len(*full.Activations) != 1 || full.SeatsUsed != 1 {
		t.Fatalf("license with activations = %+v", full)
	}
	e.must(t, 204, "DELETE", "/v1/licenses/"+again.ID+"/activations/"+(*full.Activations)[0].ID, rm, nil)
	full = resource.License{}
	e.must(t, 200, "GET", "/v1/licenses/"+again.ID, rm, nil).JSON(t, &full)
	if full.Activations == nil || len(*full.Activations) != 0 || full.SeatsUsed != 0 {
		t.Fatalf("after support-desk removal = %+v", full)
	}
	if r := e.call(t, "DELETE", "/v1/licenses/"+again.ID+"/activations/"+ar.Activation.ID, rm, nil); r.Status != 404 {
		t.Fatalf("remove foreign activation: %d", r.Status)
	}

	// GET key with activations
	var got resource.LicenseKey
	e.must(t, 200, "GET", "/v1/license-keys/"+key.Key, rm, nil).JSON(t, &got)
	if len(got.Licenses) != 3 {
		t.Fatalf("key has %d licenses, want 3", len(got.Licenses))
	}
	for _, gl := range got.Licenses {
		if gl.Activations == nil {
			t.Fatalf("license %s without activations array", gl.ID)
		}
	}

	// US6: look customers up.
	wr := e.brand(t, "wp-rocket", "wp-rocket")
	e.must(t, 201, "POST", "/v1/license-keys", wr, map[string]any{"customer_email": "jane@example.com", "licenses": []map[string]any{{"product": "wp-rocket"}}})
	var list resource.List[resource.License]
	e.must(t, 200, "GET", "/v1/licenses?customer_email="+url.QueryEscape("JANE@example.com"), rm, nil).JSON(t, &list)
	if len(list.Data) != 3 {
		t.Fatalf("brand list = %d licenses, want 3", len(list.Data))
	}
	for _, l := range list.Data {
		if l.LicenseKey != key.Key {
			t.Fatalf("foreign license in brand list: %+v", l)
		}
	}
	t.Run("us6-pagination", func(t *testing.T) {
		var p1, p2 resource.List[resource.License]
		e.must(t, 200, "GET", "/v1/licenses?limit=2&customer_email=jane@example.com", rm, nil).JSON(t, &p1)
		if len(p1.Data) != 2 || p1.NextCursor == nil {
			t.Fatalf("page 1 = %+v", p1)
		}
		e.must(t, 200, "GET", "/v1/licenses?limit=2&customer_email=jane@example.com&cursor="+*p1.NextCursor, rm, nil).JSON(t, &p2)
		if len(p2.Data) != 1 || p2.NextCursor != nil || p2.Data[0].ID == p1.Data[0].ID || p2.Data[0].ID == p1.Data[1].ID {
			t.Fatalf("page 2 = %+v", p2)
		}
		if r := e.call(t, "GET", "/v1/licenses?limit=501&customer_email=jane@example.com", rm, nil); r.Status != 400 {
			t.Fatalf("limit 501: %d", r.Status)
		}
	})
	t.Run("us6-403-across-brands-without-scope", func(t *testing.T) {
		if r := e.call(t, "GET", "/v1/customers/jane@example.com/licenses", rm, nil); r.Status != 403 || r.Code() != "insufficient_scope" {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("us6-across-brands-masks-others", func(t *testing.T) {
		var k resource.APIKey
		e.must(t, 201, "POST", "/v1/brands/rankmath/api-keys", e.operator, map[string]any{"scopes": []string{"customers:read-all"}}).JSON(t, &k)
		var all resource.List[resource.CustomerLicense]
		e.must(t, 200, "GET", "/v1/customers/jane@example.com/licenses", k.Secret, nil).JSON(t, &all)
		if len(all.Data) != 4 {
			t.Fatalf("cross-brand list = %d, want 4", len(all.Data))
		}
		for _, c := range all.Data {
			switch c.Brand {
			case "wp-rocket":
				if !c.Masked || c.LicenseKey[len(c.LicenseKey)-4:] == "" || c.LicenseKey[0] != '*' || c.Activations != nil || c.ID != "" {
					t.Fatalf("foreign entry not masked: %+v", c)
				}
			case "rankmath":
				if c.Masked || c.LicenseKey != key.Key || c.Activations == nil {
					t.Fatalf("own entry masked: %+v", c)
				}
			}
		}
		e.must(t, 200, "GET", "/v1/customers/jane@example.com/licenses", e.operator, nil).JSON(t, &all)
		for _, c := range all.Data {
			if c.Masked {
				t.Fatalf("operator sees masked entry: %+v", c)
			}
		}
		// paginated like every list
		var p1, p2 resource.List[resource.CustomerLicense]
		e.must(t, 200, "GET", "/v1/customers/jane@example.com/licenses?limit=3", e.operator, nil).JSON(t, &p1)
		if len(p1.Data) != 3 || p1.NextCursor == nil {
			t.Fatalf("page 1 = %+v", p1)
		}
		e.must(t, 200, "GET", "/v1/customers/jane@example.com/licenses?limit=3&cursor="+*p1.NextCursor, e.operator, nil).JSON(t, &p2)
		if len(p2.Data) != 1 || p2.NextCursor != nil {
			t.Fatalf("page 2 = %+v", p2)
		}
	})

	// audit trail of the first license, oldest first
	var evs resource.List[resource.Event]
	e.must(t, 200, "GET", "/v1/licenses/"+pro.ID+"/events", rm, nil).JSON(t, &evs)
	var actions []string
	for _, ev := range evs.Data {
		actions = append(actions, ev.Action)
		if ev.RequestID == "" || ev.Actor == "" {
			t.Fatalf("event without request id or actor: %+v", ev)
		}
	}
	want := "[license.created license.activated license.activated license.suspend license.renew license.resume license.cancel]"
	if fmt.Sprint(actions) != want {
		t.Fatalf("events = %v, want %s", actions, want)
	}
}

func TestOperatorAndCredentials(t *testing.T) {
	e := start(t)
	for _, c := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"brands-401-no-token", "GET", "/v1/brands", "", nil, 401, "unauthorized"},
		{"brands-401-wrong-token", "GET", "/v1/brands", "nope", nil, 401, "unauthorized"},
		{"brands-422-bad-slug", "POST", "/v1/brands", e.operator, map[string]string{"slug": "Bad Slug", "name": "x"}, 422, "invalid_request"},
		{"products-401-operator-is-not-a-brand", "GET", "/v1/products", "lsk_aaaa_bbbb", nil, 401, "unauthorized"},
		{"operator-on-brand-endpoint-403", "GET", "/v1/products", e.operator, nil, 403, "insufficient_scope"},
		{"unknown-route-404", "GET", "/v1/nothing", e.operator, nil, 404, "not_found"},
		{"wrong-method-405", "PUT", "/v1/brands", e.operator, nil, 405, "method_not_allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// undocumented routes by design: skip the OpenAPI check for them
			r := e.call(t, c.method, c.path, c.token, c.body, "X-Test-Undocumented", fmt.Sprint(c.status >= 404 && c.status <= 405 && c.token != "" && c.code != "unauthorized"))
			if r.Status != c.status || r.Code() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Code(), c.status, c.code)
			}
		})
	}
	key := e.brand(t, "acme", "tool")
	if r := e.call(t, "POST", "/v1/brands", e.operator, map[string]string{"slug": "acme", "name": "again"}); r.Status != 409 || r.Code() != "conflict" {
		t.Fatalf("duplicate brand: %d %s", r.Status, r.Body)
	}
	if r := e.call(t, "POST", "/v1/products", key, map[string]string{"code": "tool", "name": "again"}); r.Status != 409 || r.Code() != "conflict" {
		t.Fatalf("duplicate product: %d %s", r.Status, r.Body)
	}
	var brands resource.List[resource.Brand]
	e.must(t, 200, "GET", "/v1/brands", e.operator, nil).JSON(t, &brands)
	if len(brands.Data) != 1 || brands.Data[0].Slug != "acme" {
		t.Fatalf("brands = %+v", brands)
	}
	if r := e.call(t, "GET", "/v1/brands", key, nil); r.Status != 403 {
		t.Fatalf("brand key on operator endpoint: %d", r.Status)
	}
	// a second key, then revoke it: 401 at once
	var k2 resource.APIKey
	e.must(t, 201, "POST", "/v1/brands/acme/api-keys", e.operator, map[string]any{}).JSON(t, &k2)
	e.must(t, 200, "GET", "/v1/products", k2.Secret, nil)
	e.must(t, 204, "DELETE", "/v1/brands/acme/api-keys/"+k2.ID, e.operator, nil)
	if r := e.call(t, "GET", "/v1/products", k2.Secret, nil); r.Status != 401 {
		t.Fatalf("revoked key: %d", r.Status)
	}
	e.must(t, 200, "GET", "/v1/products", key, nil)
	// tampered secret with a valid prefix
	if r := e.call(t, "GET", "/v1/products", key[:len(key)-2]+"xx", nil); r.Status != 401 {
		t.Fatalf("tampered key: %d", r.Status)
	}
	// secrets are stored only as hashes
	if n := e.count(t, "SELECT count(*) FROM api_keys WHERE position($1::bytea in secret_hash) > 0", []byte(key)); n != 0 {
		t.Fatal("secret stored in clear")
	}
	for _, p := range []string{"/healthz", "/readyz", "/api/openapi.yaml", "/api/docs/"} {
		e.must(t, http.StatusOK, "GET", p, "", nil)
	}
	r := e.must(t, 200, "GET", "/metrics", "", nil)
	for _, m := range []string{"license_writer_http_requests_total", "license_writer_http_request_duration_seconds", "license_activations_total"} {
		if !strings.Contains(string(r.Body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestDevelopmentInstances (API.md v1.1): a staging copy takes no seat, also on a full
// license, answers development in the activation and the status, counts against the
// license's 20, and the product's settings (POST, PATCH) apply to new activations only.
// Every answer is checked against the OpenAPI document by the harness.
func TestDevelopmentInstances(t *testing.T) {
	e := start(t)
	b := e.brand(t, "devsites")
	var p resource.Product
	e.must(t, 201, "POST", "/v1/products", b, map[string]any{"code": "seo", "name": "SEO",
		"dev_instance_suffixes": []string{".WPEngine.com", "wpengine.com"}}).JSON(t, &p)
	if !p.DevInstances || fmt.Sprint(p.DevInstanceSuffixes) != "[wpengine.com]" {
		t.Fatalf("created product = %+v, want dev_instances true and one normalized suffix", p)
	}
	for _, bad := range []map[string]any{
		{"code": "x1", "name": "X", "dev_instance_suffixes": []string{"com"}},
		{"code": "x2", "name": "X", "dev_instances": "yes"},
		{"code": "x3", "name": "X", "dev_instance_suffixes": []string{"a_b.com"}},
	} {
		if r := e.call(t, "POST", "/v1/products", b, bad); r.Status != 400 && r.Status != 422 {
			t.Fatalf("POST %v: %d, want 400/422", bad, r.Status)
		}
	}
	var k resource.LicenseKey
	e.must(t, 201, "POST", "/v1/license-keys", b, map[string]any{"customer_email": "d@example.com",
		"licenses": []map[string]any{{"product": "seo", "seat_limit": 1}}}).JSON(t, &k)
	act := func(t *testing.T, want int, instance string) resource.ActivationResult {
		t.Helper()
		var out resource.ActivationResult
		e.must(t, want, "POST", "/v1/public/devsites/activations", "", map[string]string{
			"license_key": k.Key, "product": "seo", "instance": instance}).JSON(t, &out)
		return out
	}
	status := func(t *testing.T, instance string) resource.Status {
		t.Helper()
		var st resource.Status
		e.must(t, 200, "GET", "/v1/public/devsites/licenses/"+k.Key+"/status?product=seo&instance="+url.QueryEscape(instance), "", nil).JSON(t, &st)
		return st
	}
	if a := act(t, 201, "https://shop.example.com"); a.Activation.Development || a.License.SeatsUsed != 1 {
		t.Fatalf("production site: %+v", a)
	}
	e.must(t, 409, "POST", "/v1/public/devsites/activations", "", map[string]string{
		"license_key": k.Key, "product": "seo", "instance": "https://other.example.com"})
	// the license is full; staging copies still activate, without a seat
	for _, inst := range []string{"https://staging.shop.example.com", "http://localhost:8080", "https://shop.wpengine.com"} {
		a := act(t, 201, inst)
		if !a.Activation.Development || a.License.SeatsUsed != 1 {
			t.Fatalf("%s: %+v, want development and seats_used 1", inst, a)
		}
		if st := status(t, inst); !st.Valid || st.Instance == nil || !st.Instance.Activated || !st.Instance.Development {
			t.Fatalf("status of %s: %+v", inst, st)
		}
	}
	if a := act(t, 200, "https://staging.shop.example.com/"); !a.Activation.Development {
		t.Fatalf("reinstall: %+v", a)
	}
	if st := status(t, "https://shop.example.com"); !st.Valid || st.Instance.Development {
		t.Fatalf("status of the production site: %+v", st.Instance)
	}

	// PATCH: settings apply to new activations only
	var p2 resource.Product
	e.must(t, 200, "PATCH", "/v1/products/seo", b, map[string]any{"dev_instances": false}).JSON(t, &p2)
	if p2.DevInstances || fmt.Sprint(p2.DevInstanceSuffixes) != "[wpengine.com]" || p2.Name != "SEO" {
		t.Fatalf("patched product = %+v", p2)
	}
	e.must(t, 409, "POST", "/v1/public/devsites/activations", "", map[string]string{
		"license_key": k.Key, "product": "seo", "instance": "https://staging.new.example.com"})
	if a := act(t, 200, "http://localhost:8080"); !a.Activation.Development {
		t.Fatalf("an existing development activation lost its classification: %+v", a)
	}
	e.must(t, 404, "PATCH", "/v1/products/nope", b, map[string]any{"dev_instances": true})
	for _, bad := range []any{map[string]any{}, map[string]any{"dev_instance_suffixes": []string{"x"}}, map[string]any{"code": "x"}} {
		if r := e.call(t, "PATCH", "/v1/products/seo", b, bad); r.Status != 400 && r.Status != 422 {
			t.Fatalf("PATCH %v: %d, want 400/422", bad, r.Status)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM audit_events WHERE action = 'product.updated'"); n != 1 {
		t.Fatalf("%d product.updated audit events, want 1", n)
	}
	e.must(t, 200, "PATCH", "/v1/products/seo", b, map[string]any{"dev_instances": true})

	// the cap: 20 development instances per license
	for i := 3; i < 20; i++ {
		act(t, 201, fmt.Sprintf("http://site%d.test", i))
	}
	r := e.must(t, 409, "POST", "/v1/public/devsites/activations", "", map[string]string{
		"license_key": k.Key, "product": "seo", "instance": "http://one-more.test"})
	if r.Code() != "dev_instance_limit_reached" {
		t.Fatalf("code = %s", r.Code())
	}
	var l resource.License
	e.must(t, 200, "GET", "/v1/licenses/"+k.Licenses[0].ID, b, nil).JSON(t, &l)
	if l.SeatsUsed != 1 || e.count(t, "SELECT dev_instances_used FROM licenses WHERE id = $1", l.ID) != 20 ||
		e.count(t, "SELECT count(*) FROM activations WHERE license_id = $1 AND development", l.ID) != 20 {
		t.Fatalf("seats_used %d; development counts in the table differ from 20", l.SeatsUsed)
	}
	// deactivating one frees a development slot, not a seat
	e.must(t, 200, "POST", "/v1/public/devsites/deactivations", "", map[string]string{
		"license_key": k.Key, "product": "seo", "instance": "http://site3.test"})
	act(t, 201, "http://one-more.test")
	// the audit records (the outbox rows, which the relay deletes once sent, are built
	// from the same activation_json) say which activations were development instances
	if n := e.count(t, "SELECT count(*) FROM audit_events WHERE action = 'license.activated' AND (after->'activation'->>'development')::boolean"); n != 21 {
		t.Fatalf("%d license.activated audit events say development, want 21", n)
	}
}
