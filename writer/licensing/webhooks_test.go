package licensing_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/sealbox"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/writer/licensing"
)

func webhooksOn(t *testing.T, w interface{ SetWebhooks(licensing.Webhooks) }) *sealbox.Box {
	t.Helper()
	box, err := sealbox.New([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	w.SetWebhooks(licensing.Webhooks{Sealer: box, CheckURL: func(_ context.Context, raw string) (string, error) {
		if !strings.HasPrefix(raw, "https://") {
			return "", problem.Unacceptable("url", "must be https")
		}
		return raw, nil
	}})
	return box
}

// An expiry is recorded once, as a change (version, audit by system, outbox event), however
// often the job runs; a renewal and a second expiry record it again; suspended and
// cancelled licenses are not expiring.
func TestRecordExpiries(t *testing.T) {
	w, ms := world(t)
	exp := w.Clock.Now().Add(time.Hour)
	k := w.Provision("pro", nil, &exp)
	other := w.Provision("lite", nil, &exp)
	w.Transition(other.Licenses[0].ID, license.Suspend, nil)
	w.Provision("pro", nil, nil) // perpetual: never expires
	if n, err := w.Svc.RecordExpiries(w.Ctx, 100); err != nil || n != 0 {
		t.Fatalf("before the expiry: %d, %v", n, err)
	}
	w.Clock.Advance(time.Hour)
	recorded := 0
	for range 3 {
		n, err := w.Svc.RecordExpiries(w.Ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		recorded += n
	}
	if recorded != 1 {
		t.Fatalf("three runs recorded %d expiries, want 1", recorded)
	}
	var expired []event.Change
	for _, o := range ms.Outbox() {
		if o.Change.Type == event.LicenseExpired {
			expired = append(expired, o.Change)
		}
	}
	if len(expired) != 1 || expired[0].License.ID != k.Licenses[0].ID {
		t.Fatalf("license.expired events: %+v", expired)
	}
	audits := 0
	for _, a := range ms.Audit() {
		if a.Action == "license.expired" {
			audits++
			if a.Actor != "system" || a.LicenseID != k.Licenses[0].ID {
				t.Fatalf("audit %+v", a)
			}
		}
	}
	if audits != 1 {
		t.Fatalf("%d license.expired audit events", audits)
	}
	body, err := licensing.WebhookBody(&expired[0])
	if err != nil {
		t.Fatal(err)
	}
	var payload struct {
		Type string `json:"type"`
		Data struct {
			Status     string `json:"status"`
			LicenseKey string `json:"license_key"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &payload); err != nil || payload.Type != "license.expired" ||
		payload.Data.Status != "expired" || payload.Data.LicenseKey != k.Key {
		t.Fatalf("payload %s", body)
	}
	// renewed, expired again: once more
	again := w.Clock.Now().Add(time.Minute)
	w.Transition(k.Licenses[0].ID, license.Renew, &again)
	w.Clock.Advance(2 * time.Minute)
	n, err := w.Svc.RecordExpiries(w.Ctx, 100)
	if err != nil || n != 1 {
		t.Fatalf("second expiry: %d, %v", n, err)
	}
	if n, _ := w.Svc.RecordExpiries(w.Ctx, 100); n != 0 {
		t.Fatalf("second expiry recorded %d more times", n)
	}
}

func TestWebhookEndpointsDomain(t *testing.T) {
	w, ms := world(t)
	if _, err := w.Svc.CreateEndpoint(w.Ctx, licensing.Meta{Actor: "t"}, w.P, "https://example.com/h", nil, ""); kind(err) != "unavailable" {
		t.Fatalf("without a webhook key: %v", err)
	}
	box := webhooksOn(t, w.Svc)
	m := licensing.Meta{Actor: "t", Idempotency: &licensing.Idempotency{Key: "k1", Fingerprint: []byte("f")}}
	ep, err := w.Svc.CreateEndpoint(w.Ctx, m, w.P, "https://example.com/h", []string{"license.created", "license.created", "activation.deleted"}, "  mine ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.Secret, "whsec_") || len(ep.Events) != 2 || ep.Events[0] != "activation.deleted" || ep.Description != "mine" {
		t.Fatalf("endpoint %+v", ep)
	}
	// the replay returns the same secret, opened from the sealed record
	again, err := w.Svc.CreateEndpoint(w.Ctx, m, w.P, "https://example.com/h", []string{"license.created", "license.created", "activation.deleted"}, "  mine ")
	var replay *licensing.Replay
	if !errors.As(err, &replay) || !strings.Contains(string(replay.Body), ep.Secret) {
		t.Fatalf("replay: %+v %v", again, err)
	}
	for _, bad := range []struct {
		url    string
		events []string
		desc   string
	}{
		{"http://example.com", nil, ""},
		{"", nil, ""},
		{"https://example.com/" + strings.Repeat("a", 2048), nil, ""},
		{"https://example.com", []string{"license.exploded"}, ""},
		{"https://example.com", []string{"webhook.test"}, ""},
		{"https://example.com", nil, strings.Repeat("d", 256)},
	} {
		if _, err := w.Svc.CreateEndpoint(w.Ctx, licensing.Meta{}, w.P, bad.url, bad.events, bad.desc); kind(err) != "invalid_request" {
			t.Errorf("%q %v: %v", bad.url, bad.events, err)
		}
	}
	// stored sealed, bound to its endpoint
	var stored licensing.EndpointRow
	_ = w.Store.ReadTx(w.Ctx, licensing.BrandScope(w.P.BrandID), func(tx licensing.Tx) error {
		var err error
		stored, err = tx.EndpointByID(w.Ctx, w.P.BrandID, ep.ID)
		return err
	})
	if strings.Contains(string(stored.Secret), ep.Secret) {
		t.Fatal("secret stored in plaintext")
	}
	secrets, err := licensing.OpenSecrets(box, stored, w.Clock.Now())
	if err != nil || len(secrets) != 1 || secrets[0] != ep.Secret {
		t.Fatalf("open: %v %v", secrets, err)
	}
	// rotation: both sign for 24 h, then the new one alone
	rot, err := w.Svc.RotateSecret(w.Ctx, licensing.Meta{}, w.P, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Store.ReadTx(w.Ctx, licensing.BrandScope(w.P.BrandID), func(tx licensing.Tx) error {
		var err error
		stored, err = tx.EndpointByID(w.Ctx, w.P.BrandID, ep.ID)
		return err
	})
	secrets, _ = licensing.OpenSecrets(box, stored, w.Clock.Now().Add(23*time.Hour))
	if len(secrets) != 2 || secrets[0] != rot.Secret || secrets[1] != ep.Secret {
		t.Fatalf("during the overlap: %v", secrets)
	}
	secrets, _ = licensing.OpenSecrets(box, stored, w.Clock.Now().Add(25*time.Hour))
	if len(secrets) != 1 || secrets[0] != rot.Secret {
		t.Fatalf("after the overlap: %v", secrets)
	}
	// a test event is logged as a pending delivery
	d, err := w.Svc.TestEndpoint(w.Ctx, licensing.Meta{}, w.P, ep.ID)
	if err != nil || d.Type != "webhook.test" || d.Status != "pending" {
		t.Fatalf("test: %+v %v", d, err)
	}
	if ds := ms.Deliveries(); len(ds) != 1 || ds[0].EndpointID != ep.ID {
		t.Fatalf("deliveries %+v", ds)
	}
	// another brand sees none of it
	b2, err := w.Svc.CreateBrand(w.Ctx, licensing.Meta{}, "other", "Other")
	if err != nil {
		t.Fatal(err)
	}
	p2 := licensing.Principal{BrandID: b2.Brand.ID, BrandSlug: "other"}
	if _, err := w.Svc.GetEndpoint(w.Ctx, p2, ep.ID); kind(err) != "not_found" {
		t.Fatalf("foreign get: %v", err)
	}
	if _, err := w.Svc.RetryDelivery(w.Ctx, licensing.Meta{}, p2, d.ID); kind(err) != "not_found" {
		t.Fatalf("foreign retry: %v", err)
	}
	if err := w.Svc.DeleteEndpoint(w.Ctx, licensing.Meta{}, p2, ep.ID); kind(err) != "not_found" {
		t.Fatalf("foreign delete: %v", err)
	}
	// disabling by hand records why; enabling clears it
	st := "disabled"
	out, err := w.Svc.UpdateEndpoint(w.Ctx, licensing.Meta{}, w.P, ep.ID, licensing.EndpointPatch{Status: &st})
	if err != nil || out.Status != "disabled" || out.DisabledReason == nil || *out.DisabledReason != "manual" {
		t.Fatalf("disable: %+v %v", out, err)
	}
	st = "enabled"
	out, _ = w.Svc.UpdateEndpoint(w.Ctx, licensing.Meta{}, w.P, ep.ID, licensing.EndpointPatch{Status: &st})
	if out.DisabledReason != nil {
		t.Fatalf("enabled again: %+v", out)
	}
	if err := w.Svc.DeleteEndpoint(w.Ctx, licensing.Meta{}, w.P, ep.ID); err != nil {
		t.Fatal(err)
	}
	if ds := ms.Deliveries(); len(ds) != 0 {
		t.Fatalf("deliveries of a deleted endpoint remain: %+v", ds)
	}
}
