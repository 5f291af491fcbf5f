// Package storetest is the conformance table of the seat statements: the activation and
// deactivation rules live in SQL in writer/postgres (license_activate, license_deactivate)
// and in Go in writer/memstore, and Run drives both through the domain with the same cases,
// so the fake the domain's tests rely on cannot drift from the real statements. Each case
// checks the outcome, the seat count against the activation rows, and the change events
// (version, type, the instance an activation event names).
package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/licensing"
)

// Inspector reads back what a store wrote.
type Inspector interface {
	// Events returns the change events written under the license key keyID, oldest first.
	Events(t testing.TB, keyID string) []event.Change
	// KeyID returns the id of a license key.
	KeyID(t testing.TB, key string) string
}

// NewStore makes a fresh, empty store for one test.
type NewStore func(t *testing.T) (licensing.Store, Inspector)

// Clock is a settable clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// World is a service over a fresh store with one brand ("acme", products "pro" and
// "lite") and a clock a case can move.
type World struct {
	T     *testing.T
	Svc   *licensing.Service
	Store licensing.Store
	Look  Inspector
	Clock *Clock
	P     licensing.Principal
	Ctx   context.Context
}

// NewWorld sets up a world on a new store.
func NewWorld(t *testing.T, newStore NewStore) *World {
	t.Helper()
	st, look := newStore(t)
	clk := &Clock{t: time.Now().UTC().Truncate(time.Second)}
	w := &World{T: t, Store: st, Look: look, Clock: clk, Ctx: context.Background(),
		Svc: licensing.New(st, clk.Now, slog.New(slog.DiscardHandler))}
	b, err := w.Svc.CreateBrand(w.Ctx, w.meta(), "acme", "Acme")
	if err != nil {
		t.Fatalf("create brand: %v", err)
	}
	w.P = licensing.Principal{BrandID: b.Brand.ID, BrandSlug: "acme", KeyID: b.APIKey.ID}
	for _, code := range []string{"pro", "lite"} {
		if _, err := w.Svc.CreateProduct(w.Ctx, w.meta(), w.P, licensing.ProductSpec{Code: code, Name: code}); err != nil {
			t.Fatalf("create product: %v", err)
		}
	}
	return w
}

func (w *World) meta() licensing.Meta { return licensing.Meta{Actor: "test", RequestID: "rid"} }

// Provision creates a key with one license of product.
func (w *World) Provision(product string, seats *int, expires *time.Time) resource.LicenseKey {
	w.T.Helper()
	k, err := w.Svc.Provision(w.Ctx, w.meta(), w.P, "jane@example.com", []licensing.LicenseSpec{{Product: product, SeatLimit: seats, ExpiresAt: expires}})
	if err != nil {
		w.T.Fatalf("provision: %v", err)
	}
	return k
}

// Transition applies a lifecycle change and fails the test on an error.
func (w *World) Transition(id string, t license.Transition, exp *time.Time) {
	w.T.Helper()
	if _, err := w.Svc.Transition(w.Ctx, w.meta(), w.P, id, t, exp); err != nil {
		w.T.Fatalf("%s: %v", t, err)
	}
}

// Activate activates instance through the domain.
func (w *World) Activate(key, product, instance string) (licensing.ActivateResult, error) {
	return w.Svc.Activate(w.Ctx, licensing.Meta{Actor: "public:192.0.2.1", RequestID: "rid"}, "acme", key, product, instance)
}

// Deactivate deactivates instance through the domain.
func (w *World) Deactivate(key, product, instance string) (resource.DeactivationResult, error) {
	return w.Svc.Deactivate(w.Ctx, licensing.Meta{Actor: "public:192.0.2.1", RequestID: "rid"}, "acme", key, product, instance)
}

// License reads a license with its activations.
func (w *World) License(id string) resource.License {
	w.T.Helper()
	l, err := w.Svc.GetLicense(w.Ctx, w.P, id)
	if err != nil {
		w.T.Fatalf("get license: %v", err)
	}
	return l
}

func ptr[T any](v T) *T { return &v }

type step struct {
	do       func(w *World, key string) error
	wantKind problem.Kind // "" for success
	created  *bool        // for an activation: whether a seat was taken
	event    string       // the change event the step writes ("" for none)
	instance string       // the instance that event names
	dev      *bool        // the development flag that event's activation carries (nil: not checked)
}

func activate(product, instance string, created bool, ev string) step {
	return step{do: func(w *World, key string) error {
		r, err := w.Activate(key, product, instance)
		if err == nil && r.Created != created {
			return fmt.Errorf("created = %v, want %v", r.Created, created)
		}
		return err
	}, created: &created, event: ev, instance: mustNormalize(instance)}
}

// activateDev is activate that also checks the activation's development flag.
func activateDev(product, instance string, created, dev bool, ev string) step {
	s := activate(product, instance, created, ev)
	s.dev = &dev
	do := s.do
	s.do = func(w *World, key string) error {
		if err := do(w, key); err != nil {
			return err
		}
		r, err := w.Activate(key, product, instance) // a reinstall: answers the same activation
		if err == nil && r.Activation.Development != dev {
			return fmt.Errorf("%s: development = %v, want %v", instance, r.Activation.Development, dev)
		}
		return err
	}
	return s
}

// patchProduct changes the "pro" product (no event: products are not under a key).
func patchProduct(patch licensing.ProductPatch) step {
	return step{do: func(w *World, _ string) error {
		_, err := w.Svc.UpdateProduct(w.Ctx, w.meta(), w.P, "pro", patch)
		return err
	}}
}

func refuse(product, instance string, kind problem.Kind) step {
	return step{do: func(w *World, key string) error { _, err := w.Activate(key, product, instance); return err }, wantKind: kind}
}

func deactivate(product, instance string, kind problem.Kind) step {
	s := step{do: func(w *World, key string) error { _, err := w.Deactivate(key, product, instance); return err }, wantKind: kind}
	if kind == "" {
		s.event, s.instance = event.ActivationDeleted, mustNormalize(instance)
	}
	return s
}

func mustNormalize(s string) string {
	n, err := license.NormalizeInstance(s)
	if err != nil {
		panic(err)
	}
	return n
}

// Run runs the conformance table against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	created, existing := event.ActivationCreated, ""
	cases := []struct {
		name  string
		seats *int
		setup func(w *World, k resource.LicenseKey) string // returns the key string to use
		steps []step
		// seats is the license's seats_used at the end (on the key's first license), dev
		// its development activations
		wantSeats, wantDev int
	}{
		{name: "activate-201-then-200-on-reinstall", seats: ptr(3), steps: []step{
			activate("pro", "https://www.Example.com/", true, created),
			activate("pro", "example.com", false, existing),
			activate("pro", "http://EXAMPLE.com:80/", false, existing),
		}, wantSeats: 1},
		{name: "activate-409-when-every-seat-is-taken", seats: ptr(2), steps: []step{
			activate("pro", "a.example", true, created),
			activate("pro", "b.example", true, created),
			refuse("pro", "c.example", problem.SeatLimitReached),
			activate("pro", "a.example", false, existing), // a reinstall on a full license
		}, wantSeats: 2},
		{name: "activate-unlimited", steps: []step{
			activate("pro", "a.example", true, created), activate("pro", "b.example", true, created), activate("pro", "c.example", true, created),
		}, wantSeats: 3},
		{name: "activate-404-unknown-key", setup: func(*World, resource.LicenseKey) string { return license.NewKey() },
			steps: []step{refuse("pro", "a.example", problem.LicenseNotFound)}},
		{name: "activate-404-product-not-on-key", steps: []step{refuse("lite", "a.example", problem.LicenseNotFound)}},
		{name: "activate-404-unknown-product", steps: []step{refuse("ghost", "a.example", problem.LicenseNotFound)}},
		{name: "activate-403-suspended-even-when-already-active", seats: ptr(2),
			steps: []step{
				activate("pro", "a.example", true, created),
				{do: func(w *World, key string) error {
					w.Transition(w.keyLicense(key), license.Suspend, nil)
					return nil
				}, event: event.LicenseSuspended},
				refuse("pro", "a.example", problem.LicenseSuspended),
				refuse("pro", "b.example", problem.LicenseSuspended),
			}, wantSeats: 1},
		{name: "activate-403-cancelled", steps: []step{
			{do: func(w *World, key string) error { w.Transition(w.keyLicense(key), license.Cancel, nil); return nil }, event: event.LicenseCancelled},
			refuse("pro", "a.example", problem.LicenseCancelled),
		}},
		{name: "activate-403-expired-at-read-time", setup: func(w *World, k resource.LicenseKey) string {
			exp := w.Clock.Now().Add(time.Hour)
			k2 := w.Provision("pro", nil, &exp)
			w.Clock.Advance(2 * time.Hour)
			return k2.Key
		}, steps: []step{refuse("pro", "a.example", problem.LicenseExpired)}},
		{name: "activate-uses-the-live-license-not-the-cancelled-one", seats: ptr(1), steps: []step{
			activate("pro", "old.example", true, created),
			{do: func(w *World, key string) error { w.Transition(w.keyLicense(key), license.Cancel, nil); return nil }, event: event.LicenseCancelled},
			{do: func(w *World, key string) error {
				_, err := w.Svc.AddLicense(w.Ctx, w.meta(), w.P, key, licensing.LicenseSpec{Product: "pro", SeatLimit: ptr(1)})
				return err
			}, event: event.LicenseCreated},
			activate("pro", "new.example", true, created),
			refuse("pro", "third.example", problem.SeatLimitReached),
			// the old seat is freed from the cancelled license: the live one has no such instance
			deactivate("pro", "old.example", ""),
			deactivate("pro", "old.example", problem.ActivationNotFound),
		}, wantSeats: 0},
		{name: "deactivate-frees-the-seat", seats: ptr(1), steps: []step{
			activate("pro", "a.example", true, created),
			refuse("pro", "b.example", problem.SeatLimitReached),
			deactivate("pro", "https://a.example/", ""),
			deactivate("pro", "a.example", problem.ActivationNotFound),
			activate("pro", "b.example", true, created),
		}, wantSeats: 1},
		{name: "deactivate-404-unknown-key-or-product", steps: []step{
			activate("pro", "a.example", true, created),
			deactivate("lite", "a.example", problem.ActivationNotFound),
			{do: func(w *World, _ string) error {
				_, err := w.Deactivate(license.NewKey(), "pro", "a.example")
				return err
			},
				wantKind: problem.ActivationNotFound},
		}, wantSeats: 1},
		{name: "remove-activation-by-id", seats: ptr(2), steps: []step{
			activate("pro", "a.example", true, created),
			{do: func(w *World, key string) error {
				id := w.keyLicense(key)
				l := w.License(id)
				return w.Svc.RemoveActivation(w.Ctx, w.meta(), w.P, id, (*l.Activations)[0].ID)
			}, event: event.ActivationDeleted, instance: "a.example"},
			{do: func(w *World, key string) error {
				return w.Svc.RemoveActivation(w.Ctx, w.meta(), w.P, w.keyLicense(key), "01900000-0000-7000-8000-000000000001")
			}, wantKind: problem.ActivationNotFound},
			{do: func(w *World, key string) error {
				return w.Svc.RemoveActivation(w.Ctx, w.meta(), w.P, "01900000-0000-7000-8000-000000000002", "01900000-0000-7000-8000-000000000001")
			}, wantKind: problem.NotFound},
		}, wantSeats: 0},
		// development instances (API.md v1.1): no seat, their own cap of 20
		{name: "dev-instance-takes-no-seat-even-when-every-seat-is-taken", seats: ptr(1), steps: []step{
			activateDev("pro", "https://shop.example.com", true, false, created),
			refuse("pro", "https://other.example.com", problem.SeatLimitReached),
			activateDev("pro", "https://staging.shop.example.com/", true, true, created),
			activateDev("pro", "http://localhost:8080/wp", true, true, created),
			activateDev("pro", "http://192.168.1.20", true, true, created),
			activateDev("pro", "https://shop.local", true, true, created),
			// not a URL: never a development instance
			refuse("pro", "staging.other.example.com", problem.SeatLimitReached),
			// the same instance without its scheme is a reinstall of the development one
			activateDev("pro", "staging.shop.example.com", false, true, existing),
			// .dev is a public TLD
			refuse("pro", "https://shop.dev", problem.SeatLimitReached),
			deactivate("pro", "localhost:8080/wp", ""),
		}, wantSeats: 1, wantDev: 3},
		{name: "dev-instance-cap-is-20-per-license", seats: ptr(1), steps: append(func() []step {
			var s []step
			for i := range licensing.MaxDevInstances {
				s = append(s, activate("pro", fmt.Sprintf("http://site%d.test", i), true, created))
			}
			return s
		}(),
			refuse("pro", "http://site-x.test", problem.DevInstanceLimitReached),
			activateDev("pro", "http://site3.test", false, true, existing), // a reinstall at the cap
			activateDev("pro", "https://shop.example.com", true, false, created),
			deactivate("pro", "http://site0.test", ""),
			activateDev("pro", "http://site-x.test", true, true, created),
		), wantSeats: 1, wantDev: 20},
		{name: "product-settings-apply-to-new-activations-only", seats: ptr(2), steps: []step{
			activateDev("pro", "https://staging.a.com", true, true, created),
			patchProduct(licensing.ProductPatch{DevInstances: ptr(false)}),
			activateDev("pro", "https://staging.b.com", true, false, created),
			activateDev("pro", "https://staging.a.com", false, true, existing), // keeps its classification
			patchProduct(licensing.ProductPatch{DevInstances: ptr(true), DevInstanceSuffixes: &[]string{".WPEngine.com", "kinsta.cloud"}}),
			activateDev("pro", "https://shop.wpengine.com", true, true, created),
			activateDev("pro", "https://a.b.kinsta.cloud/", true, true, created),
			activateDev("pro", "https://wpengine.com", true, false, created),
			refuse("pro", "https://xwpengine.com", problem.SeatLimitReached),
			deactivate("pro", "https://shop.wpengine.com", ""),
			{do: func(w *World, _ string) error {
				_, err := w.Svc.UpdateProduct(w.Ctx, w.meta(), w.P, "pro", licensing.ProductPatch{DevInstanceSuffixes: &[]string{"com"}})
				return err
			}, wantKind: problem.InvalidRequest},
			{do: func(w *World, _ string) error {
				_, err := w.Svc.UpdateProduct(w.Ctx, w.meta(), w.P, "ghost", licensing.ProductPatch{DevInstances: ptr(true)})
				return err
			}, wantKind: problem.NotFound},
		}, wantSeats: 2, wantDev: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := NewWorld(t, newStore)
			k := w.Provision("pro", c.seats, nil)
			key := k.Key
			if c.setup != nil {
				key = c.setup(w, k)
			}
			keyID := ""
			if c.setup == nil {
				keyID = w.Look.KeyID(t, key)
			}
			wantEvents := []step{}
			for i, s := range c.steps {
				err := s.do(w, key)
				if got := kindOf(err); got != s.wantKind {
					t.Fatalf("step %d: %v, want kind %q", i, err, s.wantKind)
				}
				if s.event != "" {
					wantEvents = append(wantEvents, s)
				}
			}
			if keyID == "" {
				return
			}
			l := w.License(k.Licenses[0].ID)
			dev := 0
			for _, a := range *l.Activations {
				if a.Development {
					dev++
				}
			}
			if l.SeatsUsed != c.wantSeats || len(*l.Activations)-dev != c.wantSeats || dev != c.wantDev {
				t.Fatalf("seats_used %d, %d activations of which %d development; want %d seats and %d development",
					l.SeatsUsed, len(*l.Activations), dev, c.wantSeats, c.wantDev)
			}
			evs := w.Look.Events(t, keyID)
			if len(evs) != 1+len(wantEvents) || evs[0].Type != event.KeyCreated || evs[0].Version != 1 {
				t.Fatalf("%d events (%v), want key creation and %d more", len(evs), types(evs), len(wantEvents))
			}
			for i, s := range wantEvents {
				ev := evs[i+1]
				if ev.Type != s.event || ev.Version != int64(i)+2 || ev.LicenseKey != key || ev.Brand != "acme" {
					t.Fatalf("event %d: %s v%d, want %s v%d", i+1, ev.Type, ev.Version, s.event, i+2)
				}
				if ev.License == nil || ev.License.ID == "" {
					t.Fatalf("event %d carries no license", i+1)
				}
				if s.instance != "" && (ev.Activation == nil || ev.Activation.Instance != s.instance || ev.Activation.LicenseID != ev.License.ID) {
					t.Fatalf("event %d: activation %+v, want instance %q", i+1, ev.Activation, s.instance)
				}
				if s.dev != nil && ev.Activation.Development != *s.dev {
					t.Fatalf("event %d: activation of %s development = %v", i+1, s.instance, ev.Activation.Development)
				}
				if ev.Type == event.ActivationCreated && ev.Activation.Version != ev.Version {
					t.Fatalf("activation event v%d carries activation version %d", ev.Version, ev.Activation.Version)
				}
			}
			// the status check sees the same activations, and the instance's change version
			for _, a := range *l.Activations {
				st, err := w.Svc.Status(w.Ctx, "acme", key, "", a.Instance)
				if err != nil || st.Instance == nil || !st.Instance.Activated || st.Instance.Development != a.Development {
					t.Fatalf("status of active instance %s (development %v): %+v %v", a.Instance, a.Development, st.Instance, err)
				}
			}
		})
	}
}

// keyLicense is the id of the first license of key.
func (w *World) keyLicense(key string) string {
	w.T.Helper()
	k, err := w.Svc.GetLicenseKey(w.Ctx, w.P, key)
	if err != nil || len(k.Licenses) == 0 {
		w.T.Fatalf("get key: %v", err)
	}
	return k.Licenses[0].ID
}

func kindOf(err error) problem.Kind {
	if err == nil {
		return ""
	}
	return problem.KindOf(err)
}

func types(evs []event.Change) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s@%d", e.Type, e.Version)
	}
	return out
}
