package licensing_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/memstore"
	"github.com/licensing/licensing/writer/storetest"
)

// The domain's tests run on the in-memory store: no server, part of go test -short.

func world(t *testing.T) (*storetest.World, *memstore.Store) {
	t.Helper()
	var ms *memstore.Store
	w := storetest.NewWorld(t, func(*testing.T) (licensing.Store, storetest.Inspector) {
		ms = memstore.New()
		return ms, nil
	})
	return w, ms
}

func ptr[T any](v T) *T { return &v }

func kind(err error) string {
	if err == nil {
		return ""
	}
	return string(problem.KindOf(err))
}

func TestLifecycleTransitions(t *testing.T) {
	// from: how the license is set up; then the transition and what it must do
	type setup func(w *storetest.World, id string)
	suspended := func(w *storetest.World, id string) { w.Transition(id, license.Suspend, nil) }
	cancelled := func(w *storetest.World, id string) { w.Transition(id, license.Cancel, nil) }
	expired := func(w *storetest.World, id string) { w.Clock.Advance(2 * time.Hour) } // provisioned to expire in 1h
	for _, c := range []struct {
		name       string
		from       setup
		t          license.Transition
		renewBy    time.Duration // for renew: expires_at = now + renewBy (0: none given)
		wantKind   string
		wantStatus string
		wantEvent  bool
	}{
		{"suspend-valid", nil, license.Suspend, 0, "", "suspended", true},
		{"suspend-expired", expired, license.Suspend, 0, "", "suspended", true},
		{"suspend-suspended-is-a-no-op", suspended, license.Suspend, 0, "", "suspended", false},
		{"resume-suspended", suspended, license.Resume, 0, "", "valid", true},
		{"resume-valid-is-a-no-op", nil, license.Resume, 0, "", "valid", false},
		{"resume-expired-409", expired, license.Resume, 0, "invalid_transition", "", false},
		{"renew-valid", nil, license.Renew, 48 * time.Hour, "", "valid", true},
		{"renew-expired-makes-it-valid", expired, license.Renew, 48 * time.Hour, "", "valid", true},
		{"renew-keeps-suspended", suspended, license.Renew, 48 * time.Hour, "", "suspended", true},
		{"renew-422-past-date", nil, license.Renew, -time.Hour, "invalid_request", "", false},
		{"renew-422-without-date", nil, license.Renew, 0, "invalid_request", "", false},
		{"cancel-valid", nil, license.Cancel, 0, "", "cancelled", true},
		{"cancel-suspended", suspended, license.Cancel, 0, "", "cancelled", true},
		{"cancel-cancelled-is-a-no-op", cancelled, license.Cancel, 0, "", "cancelled", false},
		{"resume-cancelled-409", cancelled, license.Resume, 0, "invalid_transition", "", false},
		{"renew-cancelled-409", cancelled, license.Renew, 48 * time.Hour, "invalid_transition", "", false},
		{"suspend-cancelled-409", cancelled, license.Suspend, 0, "invalid_transition", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, ms := world(t)
			exp := w.Clock.Now().Add(time.Hour)
			k := w.Provision("pro", nil, &exp)
			id := k.Licenses[0].ID
			if c.from != nil {
				c.from(w, id)
			}
			events := len(ms.Outbox())
			var renew *time.Time
			if c.renewBy != 0 {
				renew = ptr(w.Clock.Now().Add(c.renewBy))
			}
			l, err := w.Svc.Transition(w.Ctx, licensing.Meta{Actor: "t"}, w.P, id, c.t, renew)
			if kind(err) != c.wantKind {
				t.Fatalf("err %v, want kind %q", err, c.wantKind)
			}
			if err == nil && l.Status != c.wantStatus {
				t.Fatalf("status %s, want %s", l.Status, c.wantStatus)
			}
			if wrote := len(ms.Outbox()) > events; wrote != c.wantEvent {
				t.Fatalf("wrote an event: %v, want %v", wrote, c.wantEvent)
			}
			if c.wantEvent && c.t == license.Renew && !l.ExpiresAt.Equal(*renew) {
				t.Fatalf("expires_at %v, want %v", l.ExpiresAt, renew)
			}
		})
	}
	t.Run("unknown-or-foreign-license-404", func(t *testing.T) {
		w, _ := world(t)
		for _, id := range []string{"nope", "01900000-0000-7000-8000-000000000009", "01900000-0000-7000-8000-00000000000A"} {
			if _, err := w.Svc.Transition(w.Ctx, licensing.Meta{}, w.P, id, license.Suspend, nil); kind(err) != "not_found" {
				t.Errorf("%s: %v", id, err)
			}
		}
	})
}

func TestIdempotencyStateMachine(t *testing.T) {
	idem := func(key, body string) licensing.Meta {
		return licensing.Meta{Actor: "t", Idempotency: &licensing.Idempotency{Key: key, Fingerprint: []byte(body)}}
	}
	provision := func(w *storetest.World, m licensing.Meta, product string) (resource.LicenseKey, error) {
		return w.Svc.Provision(w.Ctx, m, w.P, "jane@example.com", []licensing.LicenseSpec{{Product: product}})
	}
	t.Run("replay-same-key-same-request", func(t *testing.T) {
		w, ms := world(t)
		first, err := provision(w, idem("k1", "a"), "pro")
		if err != nil {
			t.Fatal(err)
		}
		_, err = provision(w, idem("k1", "a"), "pro")
		var rp *licensing.Replay
		if !errors.As(err, &rp) || rp.Err != nil || !strings.Contains(string(rp.Body), first.Key) {
			t.Fatalf("second call: %v", err)
		}
		if n := len(ms.Outbox()); n != 1 {
			t.Fatalf("%d keys created for one idempotency key", n)
		}
	})
	t.Run("422-same-key-other-request", func(t *testing.T) {
		w, _ := world(t)
		if _, err := provision(w, idem("k1", "a"), "pro"); err != nil {
			t.Fatal(err)
		}
		if _, err := provision(w, idem("k1", "b"), "pro"); kind(err) != "idempotency_key_reused" {
			t.Fatalf("other request, same key: %v", err)
		}
	})
	t.Run("domain-error-is-stored-and-replayed", func(t *testing.T) {
		w, _ := world(t)
		if _, err := provision(w, idem("k2", "x"), "ghost"); kind(err) != "unknown_product" {
			t.Fatalf("first: %v", err)
		}
		// the product appears meanwhile: the replay still answers what the first request got
		if _, err := w.Svc.CreateProduct(w.Ctx, licensing.Meta{}, w.P, licensing.ProductSpec{Code: "ghost", Name: "Ghost"}); err != nil {
			t.Fatal(err)
		}
		_, err := provision(w, idem("k2", "x"), "ghost")
		var rp *licensing.Replay
		if !errors.As(err, &rp) || rp.Err == nil || rp.Err.Kind != problem.UnknownProduct || !strings.Contains(rp.Err.Detail, "ghost") {
			t.Fatalf("replay: %+v", err)
		}
	})
	t.Run("409-while-renewed-then-taken-over-once-the-lease-lapses", func(t *testing.T) {
		w, ms := world(t)
		now := w.Clock.Now()
		claim := func() {
			t.Helper()
			if err := ms.Tx(w.Ctx, licensing.BrandScope(w.P.BrandID), func(tx licensing.Tx) error {
				_, ok, err := tx.ClaimIdempotency(w.Ctx, licensing.IdemRow{BrandID: w.P.BrandID, Key: "k3", Fingerprint: []byte("a"),
					CreatedAt: now, Token: "holder-a", RenewedAt: now}, now.Add(-licensing.IdempotencyRetention))
				if !ok {
					t.Fatal("claim not taken")
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		renew := func(token string) bool {
			t.Helper()
			var held bool
			if err := ms.Tx(w.Ctx, licensing.BrandScope(w.P.BrandID), func(tx licensing.Tx) error {
				var err error
				held, err = tx.RenewIdempotency(w.Ctx, w.P.BrandID, "k3", token, w.Clock.Now())
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return held
		}
		claim()
		for range 5 { // a live holder renews: however long its request runs, no takeover
			w.Clock.Advance(licensing.IdempotencyRenewEvery)
			if !renew("holder-a") {
				t.Fatal("renewal of a held claim failed")
			}
			if _, err := provision(w, idem("k3", "a"), "pro"); kind(err) != "idempotency_in_progress" {
				t.Fatalf("while the first runs and renews: %v", err)
			}
		}
		w.Clock.Advance(licensing.IdempotencyLeaseTimeout + time.Millisecond) // holder a stopped renewing
		if _, err := provision(w, idem("k3", "a"), "pro"); err != nil {
			t.Fatalf("after the lease lapsed: %v", err)
		}
		// holder a wakes up (it was paused): it holds nothing any more
		if renew("holder-a") {
			t.Fatal("a paused holder renewed a claim that was taken over")
		}
		err := ms.Tx(w.Ctx, licensing.BrandScope(w.P.BrandID), func(tx licensing.Tx) error {
			return tx.CompleteIdempotency(w.Ctx, w.P.BrandID, "k3", "holder-a", licensing.StoredOutcome{Kind: licensing.OutcomeOK, Body: []byte("{}")})
		})
		if kind(err) != "idempotency_in_progress" {
			t.Fatalf("a paused holder completed a claim that was taken over: %v", err)
		}
		if n := len(ms.Outbox()); n != 1 {
			t.Fatalf("%d keys created", n)
		}
	})
	t.Run("internal-error-releases-the-claim", func(t *testing.T) {
		w, ms := world(t)
		broken := errors.New("connection reset")
		n := 0
		ms.BeforeTx = func(_ int, readOnly bool) error {
			n++
			if n == 2 { // 1: the claim, 2: the operation
				return broken
			}
			return nil
		}
		if _, err := provision(w, idem("k4", "a"), "pro"); !errors.Is(err, broken) || kind(err) != "internal" {
			t.Fatalf("failing operation: %v", err)
		}
		ms.BeforeTx = nil
		if _, err := provision(w, idem("k4", "a"), "pro"); err != nil {
			t.Fatalf("the retry runs: %v", err)
		}
	})
	t.Run("records-expire-after-the-retention", func(t *testing.T) {
		w, _ := world(t)
		if _, err := provision(w, idem("k5", "a"), "pro"); err != nil {
			t.Fatal(err)
		}
		w.Clock.Advance(licensing.IdempotencyRetention + time.Minute)
		if n, err := w.Svc.CleanupIdempotency(w.Ctx); err != nil || n != 1 {
			t.Fatalf("cleanup deleted %d: %v", n, err)
		}
		if _, err := provision(w, idem("k5", "b"), "pro"); err != nil {
			t.Fatalf("an expired key is free: %v", err)
		}
	})
}

// TestCursorsAreOpaqueAndBound: a cursor reveals no id, cannot be forged (the old format,
// the base64 of an id, and garbage are refused), and opens only for the list and caller
// it was made for: another brand's, or the same brand's other list, gets invalid_request.
func TestCursorsAreOpaqueAndBound(t *testing.T) {
	w, _ := world(t)
	other, err := w.Svc.CreateBrand(w.Ctx, licensing.Meta{}, "other", "Other")
	if err != nil {
		t.Fatal(err)
	}
	po := licensing.Principal{BrandID: other.Brand.ID, BrandSlug: "other", KeyID: other.APIKey.ID}
	for i := range 3 {
		for _, p := range []licensing.Principal{w.P, po} {
			if _, err := w.Svc.CreateProduct(w.Ctx, licensing.Meta{}, p, licensing.ProductSpec{Code: fmt.Sprintf("c%d", i), Name: "C"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	first, err := w.Svc.ListProducts(w.Ctx, w.P, licensing.Page{Limit: 1})
	if err != nil || first.NextCursor == nil {
		t.Fatalf("first page: %v %v", first, err)
	}
	cur := *first.NextCursor
	raw, _ := base64.RawURLEncoding.DecodeString(cur)
	if id := first.Data[0].ID; strings.Contains(cur, id) || bytes.Contains(raw, []byte(id)) ||
		bytes.Contains(raw, []byte(strings.ReplaceAll(id, "-", ""))) {
		t.Fatalf("cursor %q reveals the id %s", cur, id)
	}
	if next, err := w.Svc.ListProducts(w.Ctx, w.P, licensing.Page{Limit: 1, Cursor: cur}); err != nil || len(next.Data) != 1 ||
		next.Data[0].ID == first.Data[0].ID {
		t.Fatalf("second page: %v %v", next, err)
	}
	forged := base64.RawURLEncoding.EncodeToString([]byte(first.Data[0].ID))
	for name, c := range map[string]string{"another brand": cur, "forged": forged, "garbage": "%%%", "truncated": cur[:10]} {
		p := w.P
		if name == "another brand" {
			p = po
		}
		if _, err := w.Svc.ListProducts(w.Ctx, p, licensing.Page{Limit: 1, Cursor: c}); kind(err) != "invalid_request" {
			t.Errorf("%s cursor: %v, want invalid_request", name, err)
		}
	}
	k := w.Provision("pro", nil, nil)
	lic := k.Licenses[0].ID
	if _, err := w.Svc.ListActivations(w.Ctx, w.P, lic, licensing.Page{Limit: 1, Cursor: cur}); kind(err) != "invalid_request" {
		t.Errorf("a products cursor on the activations list: %v, want invalid_request", err)
	}
}

func TestParsePage(t *testing.T) {
	for _, c := range []struct {
		limit, cursor string
		ok            bool
		want          int
	}{
		{"", "", true, licensing.DefaultLimit},
		{"1", "", true, 1},
		{"500", "", true, 500},
		{"0", "", false, 0},
		{"501", "", false, 0},
		{"-1", "", false, 0},
		{"07", "", false, 0},
		{"1e2", "", false, 0},
		{"", strings.Repeat("a", 513), false, 0},
	} {
		p, err := licensing.ParsePage(c.limit, c.cursor)
		if (err == nil) != c.ok || (c.ok && p.Limit != c.want) {
			t.Errorf("ParsePage(%q, %q) = %+v, %v", c.limit, c.cursor, p, err)
		}
		if err != nil && kind(err) != "invalid_request" {
			t.Errorf("kind %s", kind(err))
		}
	}
}

func TestPaginationWalksEveryRowOnce(t *testing.T) {
	w, _ := world(t)
	for i := range 7 {
		if _, err := w.Svc.CreateProduct(w.Ctx, licensing.Meta{}, w.P, licensing.ProductSpec{Code: fmt.Sprintf("p%d", i), Name: "P"}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	page := licensing.Page{Limit: 3}
	for pages := 0; ; pages++ {
		out, err := w.Svc.ListProducts(w.Ctx, w.P, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range out.Data {
			if seen[p.ID] {
				t.Fatalf("product %s on two pages", p.Code)
			}
			seen[p.ID] = true
		}
		if out.NextCursor == nil {
			if pages != 2 || len(seen) != 9 { // 7 + pro + lite
				t.Fatalf("%d pages, %d products", pages+1, len(seen))
			}
			return
		}
		if page, err = licensing.ParsePage("3", *out.NextCursor); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	w, _ := world(t)
	k, err := w.Svc.CreateAPIKey(w.Ctx, licensing.Meta{}, "acme", []string{licensing.ScopeCustomersReadAll})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := w.Svc.CreateAPIKey(w.Ctx, licensing.Meta{}, "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Svc.RevokeAPIKey(w.Ctx, licensing.Meta{}, "acme", revoked.ID); err != nil {
		t.Fatal(err)
	}
	const op = "operator-secret"
	for _, c := range []struct {
		name, token string
		operator    bool
		brand       string
		ok          bool
	}{
		{"operator", op, true, "", true},
		{"api-key", k.Secret, false, "acme", true},
		{"empty", "", false, "", false},
		{"operator-token-prefix", op[:5], false, "", false},
		{"revoked", revoked.Secret, false, "", false},
		{"wrong-secret", k.Secret[:len(k.Secret)-2] + "zz", false, "", false},
		{"unknown-prefix", "lsk_aaaaaaaa_" + strings.Repeat("b", 52), false, "", false},
		{"malformed-no-secret", "lsk_" + k.Prefix, false, "", false},
		{"not-an-api-key", "Bearer " + k.Secret, false, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := w.Svc.Authenticate(w.Ctx, c.token, op)
			if (err == nil) != c.ok {
				t.Fatalf("err %v", err)
			}
			if !c.ok {
				if kind(err) != "unauthorized" {
					t.Fatalf("kind %s", kind(err))
				}
				return
			}
			if p.Operator != c.operator || p.BrandSlug != c.brand {
				t.Fatalf("principal %+v", p)
			}
			if !c.operator && !p.Has(licensing.ScopeCustomersReadAll) {
				t.Fatal("scope lost")
			}
		})
	}
	if _, err := w.Svc.Authenticate(w.Ctx, "", ""); kind(err) != "unauthorized" {
		t.Fatalf("no operator token configured and no credential: %v", err)
	}
}

func TestLargeLicenseEmbedsTheNewestActivationsAndListsThemAll(t *testing.T) {
	w, _ := world(t)
	k := w.Provision("pro", nil, nil)
	const n = 230
	for i := range n {
		if _, err := w.Activate(k.Key, "pro", fmt.Sprintf("site-%03d.example", i)); err != nil {
			t.Fatal(err)
		}
	}
	l := w.License(k.Licenses[0].ID)
	acts := *l.Activations
	if len(acts) != licensing.MaxEmbeddedActivations || !*l.ActivationsTruncated || l.SeatsUsed != n {
		t.Fatalf("%d embedded, truncated %v, seats %d", len(acts), *l.ActivationsTruncated, l.SeatsUsed)
	}
	if acts[0].Instance != "site-130.example" || acts[len(acts)-1].Instance != "site-229.example" {
		t.Fatalf("embedded %s..%s, want the newest 100, oldest first", acts[0].Instance, acts[len(acts)-1].Instance)
	}
	key, err := w.Svc.GetLicenseKey(w.Ctx, w.P, k.Key)
	if err != nil || len(*key.Licenses[0].Activations) != 100 || !*key.Licenses[0].ActivationsTruncated {
		t.Fatalf("key read: %v", err)
	}
	var all []string
	page := licensing.Page{Limit: 100}
	for {
		out, err := w.Svc.ListActivations(w.Ctx, w.P, l.ID, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range out.Data {
			all = append(all, a.Instance)
		}
		if out.NextCursor == nil {
			break
		}
		page, _ = licensing.ParsePage("100", *out.NextCursor)
	}
	if len(all) != n || all[0] != "site-000.example" || all[n-1] != "site-229.example" {
		t.Fatalf("listed %d activations", len(all))
	}
	small := w.Provision("pro", nil, nil)
	if l := w.License(small.Licenses[0].ID); len(*l.Activations) != 0 || *l.ActivationsTruncated {
		t.Fatalf("empty license: %+v", l)
	}
	if _, err := w.Svc.ListActivations(w.Ctx, w.P, "01900000-0000-7000-8000-000000000009", licensing.Page{Limit: 10}); kind(err) != "not_found" {
		t.Fatalf("unknown license: %v", err)
	}
}

func TestStatusFromThePrimary(t *testing.T) {
	w, _ := world(t)
	k := w.Provision("pro", ptr(2), nil)
	if _, err := w.Activate(k.Key, "pro", "https://www.one.example.com/"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		product, instance string
		valid             bool
		code              string
	}{
		{"", "", true, "valid"},
		{"pro", "one.example.com", true, "valid"},
		{"pro", "https://ONE.example.com", true, "valid"},
		{"pro", "two.example", false, "instance_not_activated"},
		{"lite", "", false, "product_not_licensed"},
	} {
		st, err := w.Svc.Status(w.Ctx, "acme", strings.ToLower(k.Key), c.product, c.instance)
		if err != nil || st.Valid != c.valid || st.Code != c.code {
			t.Errorf("Status(%q, %q) = %v %s %v", c.product, c.instance, st.Valid, st.Code, err)
		}
	}
	for _, c := range []struct{ brand, key string }{{"acme", license.NewKey()}, {"nobody", k.Key}, {"acme", "short"}} {
		if _, err := w.Svc.Status(w.Ctx, c.brand, c.key, "", ""); kind(err) != "license_not_found" {
			t.Errorf("Status(%s, %s): %v", c.brand, c.key, err)
		}
	}
	if _, err := w.Svc.Status(w.Ctx, "acme", k.Key, "", strings.Repeat("x", 300)); kind(err) != "invalid_request" {
		t.Errorf("over-long instance: %v", err)
	}
}

func TestBrandIsolationInTheDomain(t *testing.T) {
	w, _ := world(t)
	k := w.Provision("pro", nil, nil)
	other, err := w.Svc.CreateBrand(context.Background(), licensing.Meta{}, "other", "Other")
	if err != nil {
		t.Fatal(err)
	}
	o := licensing.Principal{BrandID: other.Brand.ID, BrandSlug: "other"}
	if _, err := w.Svc.GetLicense(w.Ctx, o, k.Licenses[0].ID); kind(err) != "not_found" {
		t.Fatalf("foreign license: %v", err)
	}
	if _, err := w.Svc.GetLicenseKey(w.Ctx, o, k.Key); kind(err) != "not_found" {
		t.Fatalf("foreign key: %v", err)
	}
	if _, err := w.Svc.Transition(w.Ctx, licensing.Meta{}, o, k.Licenses[0].ID, license.Cancel, nil); kind(err) != "not_found" {
		t.Fatalf("foreign transition: %v", err)
	}
	if _, err := w.Svc.Activate(w.Ctx, licensing.Meta{}, "other", k.Key, "pro", "a.example"); kind(err) != "license_not_found" {
		t.Fatalf("activation under another brand's slug: %v", err)
	}
}
