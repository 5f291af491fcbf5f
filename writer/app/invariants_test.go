package app_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/internal/syncbuf"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/app"
)

// provision creates a key with one license of product and the given seat limit.
func (e *env) provision(t testing.TB, brandKey, product string, seats *int) resource.LicenseKey {
	t.Helper()
	spec := map[string]any{"product": product}
	if seats != nil {
		spec["seat_limit"] = *seats
	}
	var k resource.LicenseKey
	e.must(t, 201, "POST", "/v1/license-keys", brandKey, map[string]any{"customer_email": "c@example.com",
		"licenses": []map[string]any{spec}}).JSON(t, &k)
	return k
}

func ptr[T any](v T) *T { return &v }

func TestSeatsCannotBeOversold(t *testing.T) {
	e := start(t)
	key := e.brand(t, "seats", "plugin")
	for _, c := range []struct {
		name            string
		seats, attempts int
	}{
		{"100-attempts-on-1-seat", 1, 100},
		{"200-attempts-on-5-seats", 5, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := e.provision(t, key, "plugin", ptr(c.seats))
			codes := make([]int, c.attempts)
			var wg sync.WaitGroup
			startGate := make(chan struct{})
			for i := range c.attempts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-startGate
					r, err := e.do(t, "POST", "/v1/public/seats/activations", "", map[string]string{
						"license_key": k.Key, "product": "plugin", "instance": fmt.Sprintf("site-%d.example", i)})
					if err != nil {
						t.Error(err)
						return
					}
					if r.Status == 409 && r.Code() != "seat_limit_reached" {
						t.Errorf("409 with code %s", r.Code())
					}
					codes[i] = r.Status
				}()
			}
			close(startGate)
			wg.Wait()
			if t.Failed() {
				t.FailNow() // a request failed (above)
			}
			n := map[int]int{}
			for _, s := range codes {
				n[s]++
			}
			if n[201] != c.seats || n[409] != c.attempts-c.seats {
				t.Fatalf("statuses = %v, want %d×201 and %d×409", n, c.seats, c.attempts-c.seats)
			}
			var l resource.License
			e.must(t, 200, "GET", "/v1/licenses/"+k.Licenses[0].ID, key, nil).JSON(t, &l)
			if l.SeatsUsed != c.seats || len(*l.Activations) != c.seats || *l.SeatsRemaining != 0 {
				t.Fatalf("license after storm = seats_used %d, %d activations", l.SeatsUsed, len(*l.Activations))
			}
			if got := e.count(t, "SELECT count(*) FROM activations WHERE license_id = $1", l.ID); got != c.seats {
				t.Fatalf("%d activation rows, want %d", got, c.seats)
			}
			if got := e.count(t, "SELECT count(*) FROM outbox o WHERE payload->'license'->>'id' = $1 AND payload->>'type' = 'activation.created'", l.ID); got != c.seats {
				t.Fatalf("%d outbox events for %d activations", got, c.seats)
			}
		})
	}
	t.Run("40-development-instances-at-once-take-20-slots-and-no-seat", func(t *testing.T) {
		k := e.provision(t, key, "plugin", ptr(1))
		var wg sync.WaitGroup
		statuses := make([]int, 40)
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.do(t, "POST", "/v1/public/seats/activations", "", map[string]string{
					"license_key": k.Key, "product": "plugin", "instance": fmt.Sprintf("https://staging.site-%d.example.com", i)})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Status == 409 && r.Code() != "dev_instance_limit_reached" {
					t.Errorf("409 with code %s", r.Code())
				}
				statuses[i] = r.Status
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		n := map[int]int{}
		for _, s := range statuses {
			n[s]++
		}
		id := k.Licenses[0].ID
		if n[201] != 20 || n[409] != 20 || e.count(t, "SELECT seats_used FROM licenses WHERE id = $1", id) != 0 ||
			e.count(t, "SELECT dev_instances_used FROM licenses WHERE id = $1", id) != 20 ||
			e.count(t, "SELECT count(*) FROM activations WHERE license_id = $1 AND development", id) != 20 {
			t.Fatalf("statuses %v; want 20×201, 20×409, no seat and 20 development rows", n)
		}
		// the one seat is still free
		e.must(t, 201, "POST", "/v1/public/seats/activations", "", map[string]string{
			"license_key": k.Key, "product": "plugin", "instance": "https://www.site.example.com"})
	})
	t.Run("same-instance-concurrently-takes-one-seat", func(t *testing.T) {
		k := e.provision(t, key, "plugin", ptr(3))
		var wg sync.WaitGroup
		statuses := make([]int, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.do(t, "POST", "/v1/public/seats/activations", "", map[string]string{
					"license_key": k.Key, "product": "plugin", "instance": "https://www.same.example.com/"})
				if err != nil {
					t.Error(err)
					return
				}
				statuses[i] = r.Status
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow() // a request failed (above)
		}
		created := 0
		for _, s := range statuses {
			if s == 201 {
				created++
			} else if s != 200 {
				t.Fatalf("status %d", s)
			}
		}
		if created != 1 || e.count(t, "SELECT seats_used FROM licenses WHERE id = $1", k.Licenses[0].ID) != 1 {
			t.Fatalf("created %d, seats_used %d", created, e.count(t, "SELECT seats_used FROM licenses WHERE id = $1", k.Licenses[0].ID))
		}
	})
}

func TestIdempotency(t *testing.T) {
	e := start(t)
	key := e.brand(t, "idem", "plugin")
	body := map[string]any{"customer_email": "idem@example.com", "licenses": []map[string]any{{"product": "plugin", "seat_limit": 2}}}

	t.Run("50-concurrent-duplicates-make-one-key", func(t *testing.T) {
		var wg sync.WaitGroup
		res := make([]resp, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.do(t, "POST", "/v1/license-keys", key, body, "Idempotency-Key", "order-1")
				if err != nil {
					t.Error(err)
					return
				}
				res[i] = r
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow() // a request failed (above)
		}
		keys := map[string]bool{}
		for _, r := range res {
			switch r.Status {
			case 201:
				var k resource.LicenseKey
				r.JSON(t, &k)
				keys[k.Key] = true
			case 409:
				if r.Code() != "idempotency_in_progress" {
					t.Fatalf("409 %s", r.Code())
				}
			default:
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
		}
		if len(keys) != 1 {
			t.Fatalf("%d distinct keys from one Idempotency-Key", len(keys))
		}
		if n := e.count(t, "SELECT count(*) FROM license_keys WHERE customer_email = 'idem@example.com'"); n != 1 {
			t.Fatalf("%d keys stored", n)
		}
	})
	t.Run("replay-returns-first-response", func(t *testing.T) {
		first := e.must(t, 201, "POST", "/v1/license-keys", key, body, "Idempotency-Key", "order-2")
		again := e.must(t, 201, "POST", "/v1/license-keys", key, body, "Idempotency-Key", "order-2")
		if string(first.Body) != string(again.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay differs or is not marked:\n%s\n%s", first.Body, again.Body)
		}
		if first.Header.Get("Idempotent-Replayed") != "" {
			t.Fatal("first response marked as replayed")
		}
	})
	t.Run("422-same-key-different-request", func(t *testing.T) {
		e.must(t, 201, "POST", "/v1/license-keys", key, body, "Idempotency-Key", "order-3")
		other := map[string]any{"customer_email": "other@example.com", "licenses": []map[string]any{{"product": "plugin"}}}
		r := e.call(t, "POST", "/v1/license-keys", key, other, "Idempotency-Key", "order-3")
		if r.Status != 422 || r.Code() != "idempotency_key_reused" {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		if n := e.count(t, "SELECT count(*) FROM license_keys WHERE customer_email = 'other@example.com'"); n != 0 {
			t.Fatal("reused key wrote a license key")
		}
	})
	t.Run("409-while-first-is-running", func(t *testing.T) {
		// a request holding the key right now: claim it as a crashed-or-slow request would
		var brandID string
		c := e.admin(t)
		if err := c.QueryRow(context.Background(), "SELECT id FROM brands WHERE slug = 'idem'").Scan(&brandID); err != nil {
			t.Fatal(err)
		}
		e.must(t, 201, "POST", "/v1/license-keys", key, body, "Idempotency-Key", "order-4")
		if _, err := c.Exec(context.Background(), "UPDATE idempotency_keys SET state = 'running', renewed_at = now() WHERE brand_id = $1 AND key = 'order-4'", brandID); err != nil {
			t.Fatal(err)
		}
		r := e.call(t, "POST", "/v1/license-keys", key, body, "Idempotency-Key", "order-4")
		if r.Status != 409 || r.Code() != "idempotency_in_progress" {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("domain-errors-are-replayed-too", func(t *testing.T) {
		bad := map[string]any{"customer_email": "x@example.com", "licenses": []map[string]any{{"product": "missing"}}}
		a := e.must(t, 422, "POST", "/v1/license-keys", key, bad, "Idempotency-Key", "order-5")
		// the product now exists, but the key replays the first answer
		e.must(t, 201, "POST", "/v1/products", key, map[string]string{"code": "missing", "name": "M"})
		b := e.must(t, 422, "POST", "/v1/license-keys", key, bad, "Idempotency-Key", "order-5")
		if b.Header.Get("Idempotent-Replayed") != "true" || a.Code() != b.Code() {
			t.Fatalf("not replayed: %s", b.Body)
		}
	})
	t.Run("keys-are-scoped-per-brand", func(t *testing.T) {
		other := e.brand(t, "idem-two", "plugin")
		a := e.must(t, 201, "POST", "/v1/license-keys", key, body, "Idempotency-Key", "shared-key")
		b := e.must(t, 201, "POST", "/v1/license-keys", other, body, "Idempotency-Key", "shared-key")
		if string(a.Body) == string(b.Body) || b.Header.Get("Idempotent-Replayed") != "" {
			t.Fatal("idempotency key leaked across brands")
		}
	})
	t.Run("400-over-long-key", func(t *testing.T) {
		if r := e.call(t, "POST", "/v1/license-keys", key, body, "Idempotency-Key", strings.Repeat("k", 256)); r.Status != 400 {
			t.Fatalf("%d", r.Status)
		}
	})
}

func TestUnknownProductInBundleCreatesNothing(t *testing.T) {
	e := start(t)
	key := e.brand(t, "bundle", "alpha", "beta")
	before := e.rowCounts(t)
	r := e.call(t, "POST", "/v1/license-keys", key, map[string]any{"customer_email": "b@example.com",
		"licenses": []map[string]any{{"product": "alpha"}, {"product": "beta"}, {"product": "ghost"}}})
	if r.Status != 422 || r.Code() != "unknown_product" || !strings.Contains(string(r.Body), "ghost") {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if after := e.rowCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("rows changed:\nbefore %v\nafter  %v", before, after)
	}
}

func TestBrandIsolation(t *testing.T) {
	e := start(t)
	a := e.brand(t, "brand-a", "pa")
	b := e.brand(t, "brand-b", "pb")
	kb := e.provision(t, b, "pb", ptr(2))
	e.must(t, 201, "POST", "/v1/public/brand-b/activations", "", map[string]string{"license_key": kb.Key, "product": "pb", "instance": "b.example"})
	var lb resource.License
	e.must(t, 200, "GET", "/v1/licenses/"+kb.Licenses[0].ID, b, nil).JSON(t, &lb)
	lic := "/v1/licenses/" + lb.ID
	before := e.rowCounts(t)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/license-keys/" + kb.Key, nil},
		{"POST", "/v1/license-keys/" + kb.Key + "/licenses", map[string]any{"product": "pa"}},
		{"GET", lic, nil},
		{"POST", lic + "/renew", map[string]string{"expires_at": future(time.Hour)}},
		{"POST", lic + "/suspend", nil},
		{"POST", lic + "/resume", nil},
		{"POST", lic + "/cancel", nil},
		{"DELETE", lic + "/activations/" + (*lb.Activations)[0].ID, nil},
		{"GET", lic + "/events", nil},
	} {
		t.Run(strings.ReplaceAll(c.method+c.path, "/", "_")+"-404", func(t *testing.T) {
			r := e.call(t, c.method, c.path, a, c.body)
			if r.Status != 404 {
				t.Fatalf("brand A on brand B's resource: %d %s", r.Status, r.Body)
			}
		})
	}
	t.Run("lists-show-only-own-brand", func(t *testing.T) {
		var ps resource.List[resource.Product]
		e.must(t, 200, "GET", "/v1/products", a, nil).JSON(t, &ps)
		if len(ps.Data) != 1 || ps.Data[0].Code != "pa" {
			t.Fatalf("products = %+v", ps.Data)
		}
		var ls resource.List[resource.License]
		e.must(t, 200, "GET", "/v1/licenses?customer_email=c@example.com", a, nil).JSON(t, &ls)
		if len(ls.Data) != 0 {
			t.Fatalf("brand A sees %d of brand B's licenses", len(ls.Data))
		}
	})
	t.Run("public-under-wrong-brand-404", func(t *testing.T) {
		for _, p := range []struct{ method, path string }{
			{"POST", "/v1/public/brand-a/activations"},
			{"POST", "/v1/public/brand-a/deactivations"},
			{"GET", "/v1/public/brand-a/licenses/" + kb.Key + "/status"},
		} {
			var body any
			if p.method == "POST" {
				body = map[string]string{"license_key": kb.Key, "product": "pb", "instance": "b.example"}
			}
			if r := e.call(t, p.method, p.path, "", body); r.Status != 404 {
				t.Fatalf("%s %s: %d %s", p.method, p.path, r.Status, r.Body)
			}
		}
	})
	if after := e.rowCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("cross-brand calls changed rows:\nbefore %v\nafter  %v", before, after)
	}
	t.Run("row-level-security-is-a-second-wall", func(t *testing.T) {
		// as the application role, scoped to brand A, brand B's rows do not exist even
		// for a query that forgets its brand filter
		ctx := context.Background()
		c, err := pgx.Connect(ctx, e.db.AppURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var idA string
		if err := c.QueryRow(ctx, "SELECT id FROM brands WHERE slug = 'brand-a'").Scan(&idA); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SELECT set_config('app.brand_id', $1, false)", idA); err != nil {
			t.Fatal(err)
		}
		for _, tbl := range []string{"license_keys", "licenses", "activations", "audit_events", "outbox", "products", "api_keys"} {
			var n int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM "+tbl+" WHERE brand_id <> $1", idA).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%s: brand A's scope sees %d foreign rows", tbl, n)
			}
		}
		if _, err := c.Exec(ctx, "SELECT set_config('app.brand_id', '', false)"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM licenses").Scan(&n); err != nil || n != 0 {
			t.Fatalf("unscoped session sees %d licenses (%v)", n, err)
		}
	})
}

func TestAuditIsAppendOnly(t *testing.T) {
	e := start(t)
	key := e.brand(t, "audit", "pp")
	k := e.provision(t, key, "pp", nil)
	e.must(t, 200, "POST", "/v1/licenses/"+k.Licenses[0].ID+"/suspend", key, nil)
	ctx := context.Background()
	for _, who := range []struct{ name, url string }{{"app-role", e.db.AppURL}, {"owner", e.db.AdminURL}} {
		c, err := pgx.Connect(ctx, who.url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "SELECT set_config('app.brand_id', 'all', false)"); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			"UPDATE audit_events SET actor = 'mallory'",
			"DELETE FROM audit_events",
			"TRUNCATE audit_events",
		} {
			t.Run(who.name+"-"+strings.Fields(q)[0]+"-refused", func(t *testing.T) {
				if _, err := c.Exec(ctx, q); err == nil {
					t.Fatalf("%s as %s succeeded", q, who.name)
				}
			})
		}
	}
	if n := e.count(t, "SELECT count(*) FROM audit_events WHERE actor = 'mallory'"); n != 0 {
		t.Fatal("audit rows were changed")
	}
	if n := e.count(t, "SELECT count(*) FROM audit_events WHERE license_id = $1", k.Licenses[0].ID); n != 2 {
		t.Fatalf("%d audit rows for the license, want 2", n)
	}
}

func TestMalformedInputWritesNothing(t *testing.T) {
	e := start(t)
	key := e.brand(t, "bad", "pp")
	k := e.provision(t, key, "pp", ptr(1))
	huge := `{"customer_email":"a@b.co","licenses":[{"product":"pp"}],"x":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, c := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		field                     string
	}{
		{"bad-json-400", "POST", "/v1/license-keys", key, `{"customer_email":`, 400, "body"},
		{"not-an-object-400", "POST", "/v1/license-keys", key, `[1,2]`, 400, "body"},
		{"trailing-data-400", "POST", "/v1/license-keys", key, `{"customer_email":"a@b.co","licenses":[{"product":"pp"}]} {}`, 400, "body"},
		{"unknown-field-400", "POST", "/v1/license-keys", key, `{"customer_email":"a@b.co","licenses":[{"product":"pp"}],"admin":true}`, 400, "admin"},
		{"wrong-type-400", "POST", "/v1/license-keys", key, `{"customer_email":"a@b.co","licenses":[{"product":"pp","seat_limit":"three"}]}`, 400, "seat_limit"},
		{"bad-email-422", "POST", "/v1/license-keys", key, `{"customer_email":"not-an-email","licenses":[{"product":"pp"}]}`, 422, "customer_email"},
		{"no-licenses-422", "POST", "/v1/license-keys", key, `{"customer_email":"a@b.co","licenses":[]}`, 422, "licenses"},
		{"zero-seats-422", "POST", "/v1/license-keys", key, `{"customer_email":"a@b.co","licenses":[{"product":"pp","seat_limit":0}]}`, 422, "seat_limit"},
		{"bad-date-400", "POST", "/v1/license-keys", key, `{"customer_email":"a@b.co","licenses":[{"product":"pp","expires_at":"next tuesday"}]}`, 400, "expires_at"},
		{"past-date-422", "POST", "/v1/license-keys", key, `{"customer_email":"a@b.co","licenses":[{"product":"pp","expires_at":"2000-01-01T00:00:00Z"}]}`, 422, "expires_at"},
		{"huge-body-400", "POST", "/v1/license-keys", key, huge, 400, "body"},
		{"renew-bad-date-400", "POST", "/v1/licenses/" + k.Licenses[0].ID + "/renew", key, `{"expires_at":"2030-13-45"}`, 400, "expires_at"},
		{"product-bad-code-422", "POST", "/v1/products", key, `{"code":"Has Spaces","name":"x"}`, 422, "code"},
		{"activation-unknown-field-400", "POST", "/v1/public/bad/activations", "", `{"license_key":"` + k.Key + `","product":"pp","instance":"a.example","x":1}`, 400, "x"},
		{"activation-wrong-type-400", "POST", "/v1/public/bad/activations", "", `{"license_key":"` + k.Key + `","product":"pp","instance":42}`, 400, "instance"},
		{"bad-cursor-400", "GET", "/v1/products?cursor=bm90LWEtdXVpZA", key, nil, 400, "cursor"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.rowCounts(t)
			r := e.call(t, c.method, c.path, c.token, c.body)
			if r.Status != c.status || r.Code() != "invalid_request" {
				t.Fatalf("got %d %s, want %d invalid_request: %s", r.Status, r.Code(), c.status, r.Body)
			}
			var p struct{ Detail string }
			r.JSON(t, &p)
			if !strings.Contains(p.Detail, c.field) {
				t.Fatalf("detail %q does not name %q", p.Detail, c.field)
			}
			if after := e.rowCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("rows changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

var partitionName = regexp.MustCompile(`^activations_p[0-9]+$`)

func TestActivationQueriesTouchOnePartition(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	c := e.admin(t)
	for _, q := range []string{
		"EXPLAIN (FORMAT TEXT) SELECT * FROM activations WHERE license_id = '01900000-0000-7000-8000-000000000001' AND instance = 'x'",
		"EXPLAIN (FORMAT TEXT) SELECT * FROM activations WHERE license_id = '01900000-0000-7000-8000-000000000001'",
		"EXPLAIN (FORMAT TEXT) DELETE FROM activations WHERE license_id = '01900000-0000-7000-8000-000000000001' AND id = '01900000-0000-7000-8000-000000000002'",
	} {
		rows, err := c.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		text := strings.Join(plan, "\n")
		parts := map[string]bool{}
		for _, w := range strings.Fields(text) {
			if partitionName.MatchString(w) {
				parts[w] = true
			}
		}
		if len(parts) != 1 {
			t.Errorf("%s\nscans %d partitions:\n%s", q, len(parts), text)
		}
	}
}

func TestSecretsStayOutOfLogsAndMetrics(t *testing.T) {
	var logs syncbuf.Buffer
	e := start(t, withLog(&logs))
	brandKey := e.brand(t, "secret", "plugin")
	k := e.provision(t, brandKey, "plugin", ptr(1))
	e.must(t, 201, "POST", "/v1/public/secret/activations", "", map[string]string{"license_key": k.Key, "product": "plugin", "instance": "a.example"})
	e.must(t, 409, "POST", "/v1/public/secret/activations", "", map[string]string{"license_key": k.Key, "product": "plugin", "instance": "b.example"})
	e.must(t, 200, "GET", "/v1/public/secret/licenses/"+k.Key+"/status", "", nil)
	e.must(t, 200, "GET", "/v1/license-keys/"+k.Key, brandKey, nil)
	e.must(t, 404, "GET", "/v1/license-keys/"+strings.ToLower(k.Key)+"X", brandKey, nil)
	metrics := string(e.must(t, 200, "GET", "/metrics", "", nil).Body)
	if !strings.Contains(logs.String(), `"route":"GET /v1/license-keys/{key}"`) {
		t.Fatalf("request log lacks the route pattern:\n%s", logs.String())
	}
	for _, secret := range []string{k.Key, strings.ToLower(k.Key), brandKey, e.operator} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a secret appears in the logs")
		}
		if strings.Contains(metrics, secret) {
			t.Errorf("a secret appears in /metrics")
		}
	}
	if !strings.Contains(metrics, `license_activations_total{result="seat_limit_reached"} 1`) {
		t.Errorf("activation outcome not counted")
	}
}

func TestRequestIDIsEchoedAndAudited(t *testing.T) {
	e := start(t)
	brandKey := e.brand(t, "rid", "plugin")
	k := e.provision(t, brandKey, "plugin", nil)
	r := e.must(t, 200, "POST", "/v1/licenses/"+k.Licenses[0].ID+"/suspend", brandKey, nil, "X-Request-Id", "req-abc-123")
	if r.Header.Get("X-Request-Id") != "req-abc-123" {
		t.Fatalf("X-Request-Id = %q", r.Header.Get("X-Request-Id"))
	}
	if n := e.count(t, "SELECT count(*) FROM audit_events WHERE request_id = 'req-abc-123' AND action = 'license.suspend'"); n != 1 {
		t.Fatalf("%d audit events carry the request id", n)
	}
}

func TestExpiredLicense(t *testing.T) {
	e := start(t)
	brandKey := e.brand(t, "exp", "plugin")
	k := e.provision(t, brandKey, "plugin", ptr(2))
	// time passes: the license's expiry is now behind us (no event, no write by the API)
	if _, err := e.admin(t).Exec(context.Background(), "UPDATE licenses SET expires_at = now() - interval '1 minute' WHERE id = $1", k.Licenses[0].ID); err != nil {
		t.Fatal(err)
	}
	r := e.call(t, "POST", "/v1/public/exp/activations", "", map[string]string{"license_key": k.Key, "product": "plugin", "instance": "a.example"})
	if r.Status != 403 || r.Code() != "license_expired" {
		t.Fatalf("activate expired: %d %s", r.Status, r.Body)
	}
	var st resource.Status
	e.must(t, 200, "GET", "/v1/public/exp/licenses/"+k.Key+"/status?product=plugin", "", nil).JSON(t, &st)
	if st.Valid || st.Code != "expired" || st.Licenses[0].Status != "expired" {
		t.Fatalf("status = %+v", st)
	}
	// resume is only for suspended licenses: an expired one needs a renew
	if r := e.call(t, "POST", "/v1/licenses/"+k.Licenses[0].ID+"/resume", brandKey, nil); r.Status != 409 || r.Code() != "invalid_transition" {
		t.Fatalf("resume an expired license: %d %s", r.Status, r.Body)
	}
	// suspend works from expired, renew brings it back (keeping suspended), resume validates
	e.must(t, 200, "POST", "/v1/licenses/"+k.Licenses[0].ID+"/suspend", brandKey, nil)
	e.must(t, 200, "POST", "/v1/licenses/"+k.Licenses[0].ID+"/renew", brandKey, map[string]string{"expires_at": future(time.Hour)})
	var l resource.License
	e.must(t, 200, "POST", "/v1/licenses/"+k.Licenses[0].ID+"/resume", brandKey, nil).JSON(t, &l)
	if l.Status != "valid" {
		t.Fatalf("after renew+resume: %+v", l)
	}
}

func TestIdempotencyRecordsExpire(t *testing.T) {
	e := start(t, withConfig(func(c *app.Config) { c.IdempotencyCleanup = 50 * time.Millisecond }))
	brandKey := e.brand(t, "idem-exp", "plugin")
	body := map[string]any{"customer_email": "x@example.com", "licenses": []map[string]any{{"product": "plugin"}}}
	e.must(t, 201, "POST", "/v1/license-keys", brandKey, body, "Idempotency-Key", "old")
	e.must(t, 201, "POST", "/v1/license-keys", brandKey, body, "Idempotency-Key", "fresh")
	if _, err := e.admin(t).Exec(context.Background(), "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.count(t, "SELECT count(*) FROM idempotency_keys WHERE key = 'old'") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("expired idempotency record not deleted")
		}
		time.Sleep(20 * time.Millisecond) // poll with a deadline
	}
	if e.count(t, "SELECT count(*) FROM idempotency_keys WHERE key = 'fresh'") != 1 {
		t.Fatal("fresh record deleted")
	}
}
