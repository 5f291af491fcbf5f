package app_test

import (
	"context"
	"crypto/hmac"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"syscall"

	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/licensing/licensing/internal/natstest"
	"github.com/licensing/licensing/writer/openapi/openapitest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensing/licensing/writer/app"
)

// ---------------------------------------------------------------- receivers

// hook is one delivery a receiver got.
type hook struct {
	ID, Timestamp, Signature string
	Body                     []byte
	At                       time.Time
	Type                     string
}

// receiver is a webhook endpoint on loopback. respond decides each answer from the
// number of requests seen for the same webhook-id before this one (it may block).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []hook
	respond func(seen int, h hook) int
}

func newReceiver(t testing.TB, respond func(seen int, h hook) int) *receiver {
	t.Helper()
	r := &receiver{respond: respond}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := hook{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
			Signature: req.Header.Get("webhook-signature"), Body: body, At: time.Now()}
		var env struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(body, &env)
		h.Type = env.Type
		r.mu.Lock()
		seen := 0
		for _, g := range r.got {
			if g.ID == h.ID {
				seen++
			}
		}
		r.got = append(r.got, h)
		r.mu.Unlock()
		code := http.StatusNoContent
		if r.respond != nil {
			code = r.respond(seen, h)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) hooks() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor polls until cond holds on the deliveries received, or fails after d.
func (r *receiver) waitFor(t testing.TB, d time.Duration, what string, cond func([]hook) bool) []hook {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := r.hooks()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s; received %d deliveries: %v", d, what, len(got), types(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func types(hs []hook) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Type
	}
	return out
}

// verifySignature checks a delivery the way the Standard Webhooks specification says a
// receiver must, written here from the specification and not with the service's signer:
// the signed content is "{webhook-id}.{webhook-timestamp}.{body}", the key is the base64
// after "whsec_", the header holds space-separated "v1,<base64 HMAC-SHA256>" entries of
// which one must match, and the timestamp must be within five minutes of now.
func verifySignature(secret string, h hook, now time.Time) error {
	ts, err := strconv.ParseInt(h.Timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q: %v", h.Timestamp, err)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %v away", h.Timestamp, d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return fmt.Errorf("secret %q is not whsec_<base64>", secret)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.ID + "." + h.Timestamp + "." + string(h.Body)))
	want := mac.Sum(nil)
	for _, part := range strings.Fields(h.Signature) {
		version, sig, ok := strings.Cut(part, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no v1 signature in %q matches", h.Signature)
}

// referenceVerify verifies a delivery with the Standard Webhooks reference library.
func referenceVerify(secret string, h hook) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	hdr := http.Header{}
	hdr.Set("webhook-id", h.ID)
	hdr.Set("webhook-timestamp", h.Timestamp)
	hdr.Set("webhook-signature", h.Signature)
	return wh.Verify(h.Body, hdr)
}

// ---------------------------------------------------------------- writers

func webhookKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// hooksConfig is a writer with webhooks on, loopback allowed, and a short schedule.
func hooksConfig(key string) func(*app.Config) {
	return func(c *app.Config) {
		c.WebhookKeys = key
		c.WebhookAllowLoopback = true
		c.WebhookSchedule = []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond,
			2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
		c.WebhookTimeout = 2 * time.Second
		c.WebhookRescueAfter = 5 * time.Second
		c.ExpiryInterval = 500 * time.Millisecond
	}
}

type endpoint struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Status string   `json:"status"`
	Secret string   `json:"secret"`
}

func (e *env) subscribe(t testing.TB, apiKey, url string, events ...string) endpoint {
	t.Helper()
	var ep endpoint
	body := map[string]any{"url": url, "description": "test receiver"}
	if len(events) > 0 {
		body["events"] = events
	}
	e.must(t, 201, "POST", "/v1/webhook-endpoints", apiKey, body).JSON(t, &ep)
	return ep
}

type delivery struct {
	ID             string  `json:"id"`
	EventID        string  `json:"event_id"`
	Type           string  `json:"type"`
	Attempt        int     `json:"attempt"`
	Status         string  `json:"status"`
	ResponseStatus *int    `json:"response_status"`
	Error          *string `json:"error"`
}

// settled waits until the delivery log holds want deliveries, all succeeded: nothing is
// left to send, so a receiver's count is final.
func (e *env) settled(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		total := e.count(t, "SELECT count(*) FROM webhook_deliveries")
		ok := e.count(t, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'")
		if total == want && ok == want {
			return
		}
		if total > want {
			t.Fatalf("%d deliveries in the log, want %d", total, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries succeeded (%d in the log)", ok, want, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) deliveries(t testing.TB, apiKey, endpointID string) []delivery {
	t.Helper()
	var out struct {
		Data []delivery `json:"data"`
	}
	e.must(t, 200, "GET", "/v1/webhook-endpoints/"+endpointID+"/deliveries?limit=500", apiKey, nil).JSON(t, &out)
	return out.Data
}

type provisioned struct {
	Key      string `json:"key"`
	Licenses []struct {
		ID      string `json:"id"`
		Product string `json:"product"`
	} `json:"licenses"`
}

// ---------------------------------------------------------------- tests

// Every event type reaches every endpoint subscribed to it once, with Standard Webhooks
// headers whose signature an independent verifier accepts; an endpoint subscribed to a
// few types gets those only; during a rotation both secrets sign.
func TestWebhookEveryEventType(t *testing.T) {
	e := start(t, withConfig(hooksConfig(webhookKey())))
	api := e.brand(t, "hooks", "pro", "lite")
	other := e.brand(t, "other", "pro")
	all := newReceiver(t, nil)
	some := newReceiver(t, nil)
	foreign := newReceiver(t, nil)
	epAll := e.subscribe(t, api, all.URL)
	epSome := e.subscribe(t, api, some.URL+"/some/path", "license.suspended", "activation.created")
	e.subscribe(t, other, foreign.URL)
	if epAll.Secret == "" || !strings.HasPrefix(epAll.Secret, "whsec_") || len(epAll.Events) != 0 || epAll.Status != "enabled" {
		t.Fatalf("created endpoint: %+v", epAll)
	}
	// the secret is shown once: never in reads
	got := e.must(t, 200, "GET", "/v1/webhook-endpoints/"+epAll.ID, api, nil)
	if strings.Contains(string(got.Body), "secret") {
		t.Fatalf("GET shows the secret: %s", got.Body)
	}

	var key provisioned
	e.must(t, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": "c@example.com",
		"licenses": []map[string]any{{"product": "pro", "seat_limit": 3}}}).JSON(t, &key)
	lic := key.Licenses[0].ID
	soon := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	var lite struct {
		ID string `json:"id"`
	}
	e.must(t, 201, "POST", "/v1/license-keys/"+key.Key+"/licenses", api, map[string]any{"product": "lite", "expires_at": soon}).JSON(t, &lite)
	e.must(t, 200, "POST", "/v1/licenses/"+lic+"/renew", api, map[string]any{"expires_at": "2099-01-01T00:00:00Z"})
	e.must(t, 200, "POST", "/v1/licenses/"+lic+"/suspend", api, nil)
	e.must(t, 200, "POST", "/v1/licenses/"+lic+"/resume", api, nil)
	e.must(t, 201, "POST", "/v1/public/hooks/activations", "", map[string]string{"license_key": key.Key, "product": "pro", "instance": "https://site.example"})
	e.must(t, 200, "POST", "/v1/public/hooks/deactivations", "", map[string]string{"license_key": key.Key, "product": "pro", "instance": "https://site.example"})
	e.must(t, 200, "POST", "/v1/licenses/"+lic+"/cancel", api, nil)

	want := []string{"license_key.created", "license.created", "license.renewed", "license.suspended", "license.resumed",
		"activation.created", "activation.deleted", "license.cancelled", "license.expired"}
	all.waitFor(t, 30*time.Second, "every event type once", func(hs []hook) bool { return len(hs) >= len(want) })
	e.settled(t, len(want)+2) // nothing left to send: every delivery in the log succeeded
	hooks := all.hooks()
	gotTypes := types(hooks)
	slices.Sort(gotTypes)
	wantSorted := slices.Clone(want)
	slices.Sort(wantSorted)
	if !slices.Equal(gotTypes, wantSorted) {
		t.Fatalf("received %v, want each of %v once", gotTypes, wantSorted)
	}
	ids := map[string]bool{}
	for _, h := range hooks {
		if err := verifySignature(epAll.Secret, h, time.Now()); err != nil {
			t.Errorf("%s: %v", h.Type, err)
		}
		if err := referenceVerify(epAll.Secret, h); err != nil {
			t.Errorf("%s: the Standard Webhooks reference library refuses it: %v", h.Type, err)
		}
		if ids[h.ID] {
			t.Errorf("webhook-id %s twice", h.ID)
		}
		ids[h.ID] = true
		var body struct {
			Type      string          `json:"type"`
			Timestamp time.Time       `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(h.Body, &body); err != nil || body.Type != h.Type || body.Timestamp.IsZero() {
			t.Errorf("%s: body %s", h.Type, h.Body)
		}
		var data struct {
			Key        string `json:"key"`
			LicenseKey string `json:"license_key"`
			Status     string `json:"status"`
			Instance   string `json:"instance"`
			License    *struct {
				LicenseKey string `json:"license_key"`
			} `json:"license"`
			Activations any `json:"activations"`
		}
		_ = json.Unmarshal(body.Data, &data)
		switch {
		case h.Type == "license_key.created":
			if data.Key != key.Key {
				t.Errorf("%s: data %s", h.Type, body.Data)
			}
		case strings.HasPrefix(h.Type, "activation."):
			if data.Instance != "site.example" || data.License == nil || data.License.LicenseKey != key.Key {
				t.Errorf("%s: data %s", h.Type, body.Data)
			}
		default:
			if data.LicenseKey != key.Key {
				t.Errorf("%s: data %s", h.Type, body.Data)
			}
		}
		if data.Activations != nil {
			t.Errorf("%s: a payload embeds activations: %s", h.Type, body.Data)
		}
		if h.Type == "license.expired" && data.Status != "expired" {
			t.Errorf("license.expired says status %q", data.Status)
		}
	}
	someHooks := some.waitFor(t, 10*time.Second, "the subscribed types", func(hs []hook) bool { return len(hs) >= 2 })
	if st := types(someHooks); len(st) != 2 || !slices.Contains(st, "license.suspended") || !slices.Contains(st, "activation.created") {
		t.Fatalf("filtered endpoint received %v", st)
	}
	if n := len(foreign.hooks()); n != 0 {
		t.Fatalf("another brand's endpoint received %d of this brand's events", n)
	}
	// the log: one succeeded delivery per event and endpoint
	for _, d := range e.deliveries(t, api, epAll.ID) {
		if d.Status != "succeeded" || d.Attempt != 1 || d.ResponseStatus == nil || *d.ResponseStatus != 204 || !ids[d.EventID] {
			t.Errorf("delivery %+v", d)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", epSome.ID); n != 2 {
		t.Errorf("%d deliveries logged for the filtered endpoint, want 2", n)
	}
	// the expiry was recorded like any change: an audit event by the system
	if n := e.count(t, "SELECT count(*) FROM audit_events WHERE license_id = $1 AND action = 'license.expired' AND actor = 'system'", lite.ID); n != 1 {
		t.Errorf("%d license.expired audit events by system, want 1", n)
	}
	// secrets are sealed at rest, also in the idempotency record that replays them
	if n := e.count(t, "SELECT count(*) FROM webhook_endpoints WHERE position(convert_to($1, 'UTF8') in secret) > 0", epAll.Secret); n != 0 {
		t.Fatal("a secret is stored in plaintext")
	}

	// rotation: the next delivery carries two signatures, one per secret
	var rotated struct {
		Secret string `json:"secret"`
	}
	e.must(t, 200, "POST", "/v1/webhook-endpoints/"+epAll.ID+"/rotate-secret", api, nil).JSON(t, &rotated)
	if rotated.Secret == epAll.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotated secret %q", rotated.Secret)
	}
	e.must(t, 202, "POST", "/v1/webhook-endpoints/"+epAll.ID+"/test", api, nil)
	hooks = all.waitFor(t, 10*time.Second, "the test event", func(hs []hook) bool { return slices.Contains(types(hs), "webhook.test") })
	test := hooks[len(hooks)-1]
	if len(strings.Fields(test.Signature)) != 2 {
		t.Fatalf("during a rotation: signature header %q, want two", test.Signature)
	}
	for _, s := range []string{epAll.Secret, rotated.Secret} {
		if err := verifySignature(s, test, time.Now()); err != nil {
			t.Errorf("during a rotation: %v", err)
		}
		if err := referenceVerify(s, test); err != nil {
			t.Errorf("during a rotation, the reference library: %v", err)
		}
	}
}

// Creating an endpoint is idempotent, and the replay shows the same secret although the
// idempotency record keeps it sealed.
func TestWebhookEndpointIdempotentAndSealed(t *testing.T) {
	e := start(t, withConfig(hooksConfig(webhookKey())))
	api := e.brand(t, "hooks", "pro")
	r := newReceiver(t, nil)
	body := map[string]any{"url": r.URL, "events": []string{"license.created"}}
	var first, again endpoint
	e.must(t, 201, "POST", "/v1/webhook-endpoints", api, body, "Idempotency-Key", "ep-1").JSON(t, &first)
	replay := e.must(t, 201, "POST", "/v1/webhook-endpoints", api, body, "Idempotency-Key", "ep-1")
	replay.JSON(t, &again)
	if replay.Header.Get("Idempotent-Replayed") != "true" || again.ID != first.ID || again.Secret != first.Secret {
		t.Fatalf("replay: %s", replay.Body)
	}
	if n := e.count(t, "SELECT count(*) FROM webhook_endpoints"); n != 1 {
		t.Fatalf("%d endpoints after a replay", n)
	}
	if n := e.count(t, "SELECT count(*) FROM idempotency_keys WHERE position(convert_to($1, 'UTF8') in outcome) > 0", first.Secret); n != 0 {
		t.Fatal("the idempotency record holds the secret in plaintext")
	}
	if n := e.count(t, "SELECT count(*) FROM idempotency_keys WHERE outcome_kind = 'sealed'"); n != 1 {
		t.Fatalf("%d sealed idempotency records, want 1", n)
	}
	// other brands see nothing of it
	other := e.brand(t, "other", "pro")
	e.must(t, 404, "GET", "/v1/webhook-endpoints/"+first.ID, other, nil)
	e.must(t, 404, "PATCH", "/v1/webhook-endpoints/"+first.ID, other, map[string]any{"status": "disabled"})
	e.must(t, 404, "POST", "/v1/webhook-endpoints/"+first.ID+"/test", other, nil)
	e.must(t, 404, "GET", "/v1/webhook-endpoints/"+first.ID+"/deliveries", other, nil)
	e.must(t, 404, "DELETE", "/v1/webhook-endpoints/"+first.ID, other, nil)
	var list struct {
		Data []endpoint `json:"data"`
	}
	e.must(t, 200, "GET", "/v1/webhook-endpoints", other, nil).JSON(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("another brand lists %d endpoints", len(list.Data))
	}
	// bad input changes nothing
	before := e.rowCounts(t)
	for _, bad := range []map[string]any{
		{"url": r.URL, "events": []string{"license.exploded"}},
		{"url": "ftp://example.com/hook"},
		{"url": ""},
		{"url": r.URL, "description": strings.Repeat("x", 256)},
		{"url": r.URL, "secret": "whsec_mine"},
	} {
		resp := e.call(t, "POST", "/v1/webhook-endpoints", api, bad)
		if resp.Status != 422 && resp.Status != 400 {
			t.Errorf("%v: %d %s", bad, resp.Status, resp.Body)
		}
	}
	if after := e.rowCounts(t); !mapsEqual(before, after) {
		t.Fatalf("refused requests wrote: %v → %v", before, after)
	}
	// PATCH and the audit trail
	var patched endpoint
	e.must(t, 200, "PATCH", "/v1/webhook-endpoints/"+first.ID, api, map[string]any{"status": "disabled", "events": []string{}}).JSON(t, &patched)
	if patched.Status != "disabled" || len(patched.Events) != 0 {
		t.Fatalf("patched: %+v", patched)
	}
	e.must(t, 204, "DELETE", "/v1/webhook-endpoints/"+first.ID, api, nil)
	e.must(t, 404, "GET", "/v1/webhook-endpoints/"+first.ID, api, nil)
	if n := e.count(t, "SELECT count(*) FROM audit_events WHERE action LIKE 'webhook_endpoint.%'"); n != 3 {
		t.Fatalf("%d endpoint audit events, want created, updated, deleted", n)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A receiver that fails three times, then succeeds, gets the same webhook-id four times,
// spaced by the (shortened, jittered) schedule; each attempt is signed anew. A manual
// retry sends it once more.
func TestWebhookRetries(t *testing.T) {
	e := start(t, withConfig(hooksConfig(webhookKey())))
	api := e.brand(t, "hooks", "pro")
	r := newReceiver(t, func(seen int, h hook) int {
		if h.Type == "license_key.created" && seen < 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	ep := e.subscribe(t, api, r.URL, "license_key.created")
	e.must(t, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": "c@example.com",
		"licenses": []map[string]any{{"product": "pro"}}})
	hooks := r.waitFor(t, 20*time.Second, "four attempts", func(hs []hook) bool { return len(hs) >= 4 })
	schedule := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond}
	for i, h := range hooks {
		if h.ID != hooks[0].ID {
			t.Fatalf("attempt %d has webhook-id %s, the first %s", i+1, h.ID, hooks[0].ID)
		}
		if err := verifySignature(ep.Secret, h, time.Now()); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
		if i > 0 {
			gap := h.At.Sub(hooks[i-1].At)
			if min := time.Duration(float64(schedule[i-1]) * 0.8); gap < min {
				t.Errorf("attempt %d came %v after the previous one, want at least %v", i+1, gap, min)
			}
		}
	}
	var d delivery
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds := e.deliveries(t, api, ep.ID)
		if len(ds) == 1 && ds[0].Status == "succeeded" {
			d = ds[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d.Attempt != 4 || d.EventID != hooks[0].ID || d.ResponseStatus == nil || *d.ResponseStatus != 200 {
		t.Fatalf("delivery %+v", d)
	}
	e.must(t, 202, "POST", "/v1/webhook-deliveries/"+d.ID+"/retry", api, nil)
	hooks = r.waitFor(t, 10*time.Second, "the manual retry", func(hs []hook) bool { return len(hs) >= 5 })
	if hooks[4].ID != d.EventID {
		t.Fatalf("manual retry sent webhook-id %s, want %s", hooks[4].ID, d.EventID)
	}
	other := e.brand(t, "other")
	e.must(t, 404, "POST", "/v1/webhook-deliveries/"+d.ID+"/retry", other, nil)

	// every webhook metric the dashboard and the alert rules name is exported
	metrics := string(e.must(t, 200, "GET", "/metrics", "", nil).Body)
	for _, f := range []string{"../../deploy/prometheus/rules.yaml", "../../deploy/grafana/license-service.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names := regexp.MustCompile(`[a-z_:]*license_(?:webhook|expiries)_[a-z_:]+`).FindAllString(string(b), -1)
		if len(names) == 0 {
			t.Fatalf("%s names no webhook metric", f)
		}
		for _, n := range names {
			if strings.Contains(n, ":") {
				continue // a recording rule's name
			}
			if !regexp.MustCompile(`(?m)^` + n + `[{ ]`).MatchString(metrics) {
				t.Errorf("%s names %s, which the writer does not export", f, n)
			}
		}
	}
}

// A delivery whose retries are exhausted is failed; an endpoint whose deliveries all
// failed for longer than the disable delay is disabled (audited, by the system).
func TestWebhookFailedAndAutoDisabled(t *testing.T) {
	e := start(t, withConfig(hooksConfig(webhookKey())), withConfig(func(c *app.Config) {
		c.WebhookSchedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}
		c.WebhookDisableAfter = 500 * time.Millisecond
	}))
	api := e.brand(t, "hooks", "pro")
	r := newReceiver(t, func(int, hook) int { return http.StatusFound })
	ep := e.subscribe(t, api, r.URL, "license_key.created")
	for i := range 3 {
		e.must(t, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": fmt.Sprintf("c%d@example.com", i),
			"licenses": []map[string]any{{"product": "pro"}}})
		time.Sleep(300 * time.Millisecond) // spread the failures over more than the disable delay
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got endpoint
		e.must(t, 200, "GET", "/v1/webhook-endpoints/"+ep.ID, api, nil).JSON(t, &got)
		ds := e.deliveries(t, api, ep.ID)
		failed := 0
		for _, d := range ds {
			if d.Status == "failed" {
				failed++
			}
		}
		// two or three deliveries: the third change may come after the disabling, and a
		// disabled endpoint is subscribed to nothing
		if got.Status == "disabled" && failed == len(ds) && len(ds) >= 2 {
			// each failed on the redirect until the endpoint was disabled, which stops
			// the rest: its last error is one or the other
			redirects := 0
			for _, d := range ds {
				switch {
				case d.Error != nil && strings.Contains(*d.Error, "redirects are not followed") &&
					d.ResponseStatus != nil && *d.ResponseStatus == 302:
					redirects++
				case d.Error != nil && strings.HasPrefix(*d.Error, "endpoint disabled"):
					if d.Attempt > 0 && (!strings.Contains(*d.Error, "last attempt: HTTP 302") || d.ResponseStatus == nil || *d.ResponseStatus != 302) {
						t.Errorf("a delivery stopped by the disabling lost its last attempt: %+v (error %q)", d, *d.Error)
					}
					if d.Attempt > 0 {
						redirects++
					}
				default:
					t.Errorf("delivery recorded as %+v (error %v)", d, d.Error)
				}
			}
			if redirects == 0 {
				t.Error("no delivery records the 302")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %s, deliveries %+v", got.Status, ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := e.count(t, "SELECT count(*) FROM audit_events WHERE action = 'webhook_endpoint.disabled' AND actor = 'system'"); n != 1 {
		t.Fatalf("%d auto-disable audit events, want 1", n)
	}
	if n := e.count(t, "SELECT count(*) FROM webhook_endpoints WHERE disabled_reason = 'failing'"); n != 1 {
		t.Fatal("not disabled for failing")
	}
}

// A hanging endpoint delays no other: with two workers' worth of attempts allowed per
// endpoint, the fast endpoint's deliveries all arrive while the slow one's time out.
func TestWebhookSlowEndpointIsolated(t *testing.T) {
	release := make(chan struct{})
	e := start(t, withConfig(hooksConfig(webhookKey())), withConfig(func(c *app.Config) {
		c.WebhookWorkers = 4
		c.WebhookPerEndpoint = 1
		c.WebhookTimeout = 5 * time.Second
		c.WebhookRescueAfter = 10 * time.Second
	}))
	api := e.brand(t, "hooks", "pro")
	slow := newReceiver(t, func(int, hook) int {
		<-release
		return http.StatusOK
	})
	fast := newReceiver(t, nil)
	t.Cleanup(func() { close(release) }) // before the receivers close: they wait for their handlers
	e.subscribe(t, api, slow.URL)
	e.subscribe(t, api, fast.URL)
	const n = 20
	start := time.Now()
	for i := range n {
		e.must(t, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": fmt.Sprintf("c%d@example.com", i),
			"licenses": []map[string]any{{"product": "pro"}}})
	}
	// without isolation the slow endpoint's 20 jobs would hold the 4 workers for 5 s at a
	// time (25 s in all) before the fast one's last delivery
	fast.waitFor(t, 4*time.Second, "every delivery to the fast endpoint while the slow one hangs", func(hs []hook) bool { return len(hs) >= n })
	t.Logf("%d deliveries to the fast endpoint in %v; the slow one holds %d", n, time.Since(start), len(slow.hooks()))
	if got := len(slow.hooks()); got > 2 {
		t.Fatalf("the slow endpoint had %d attempts running at once, want at most 1 (+1 racing the timeout)", got)
	}
}

// Forbidden URLs are refused at creation, and at delivery when the deployment does not
// allow them (a name that resolved to a public address at creation may later resolve
// to an internal one: the dialer refuses it).
func TestWebhookSSRF(t *testing.T) {
	e := start(t, withConfig(hooksConfig(webhookKey())), withConfig(func(c *app.Config) { c.WebhookAllowLoopback = false }))
	api := e.brand(t, "hooks", "pro")
	r := newReceiver(t, nil)
	for _, u := range []string{
		r.URL, // http on loopback
		strings.Replace(r.URL, "http:", "https:", 1),
		"https://localhost/hook",
		"https://[::1]/hook",
		"https://10.1.2.3/hook",
		"https://192.168.1.1/hook",
		"https://172.16.0.1/hook",
		"https://169.254.169.254/latest/meta-data",
		"https://[fe80::1]/hook",
		"https://100.100.100.200/hook",
		"https://0.0.0.0/hook",
		"https://[::ffff:127.0.0.1]/hook",
		"http://93.184.216.34/hook", // public, but not https
		"https://user:pass@93.184.216.34/hook",
	} {
		resp := e.call(t, "POST", "/v1/webhook-endpoints", api, map[string]any{"url": u})
		if resp.Status != 422 || !strings.Contains(string(resp.Body), `"invalid_request"`) {
			t.Errorf("%s: %d %s", u, resp.Status, resp.Body)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM webhook_endpoints"); n != 0 {
		t.Fatalf("%d endpoints created", n)
	}
	// at delivery: an endpoint stored when it resolved elsewhere
	ep := e.subscribe(t, api, "https://93.184.216.34/hook")
	if _, err := e.admin(t).Exec(context.Background(), "UPDATE webhook_endpoints SET url = $1 WHERE id = $2", r.URL, ep.ID); err != nil {
		t.Fatal(err)
	}
	e.must(t, 202, "POST", "/v1/webhook-endpoints/"+ep.ID+"/test", api, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds := e.deliveries(t, api, ep.ID)
		if len(ds) == 1 && ds[0].Attempt >= 1 {
			if ds[0].Error == nil || !strings.Contains(*ds[0].Error, "loopback") {
				t.Fatalf("delivery to loopback: %+v", ds[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(r.hooks()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
}

// license.expired arrives within a minute of the expiry, once, with two writers running;
// a renewal and a second expiry send it again.
func TestLicenseExpiredOnceWithTwoWriters(t *testing.T) {
	key := webhookKey()
	e := start(t, withConfig(hooksConfig(key)), withConfig(func(c *app.Config) { c.ExpiryInterval = 200 * time.Millisecond }))
	e2 := startWith(t, e.db, e.nats, withConfig(hooksConfig(key)), withConfig(func(c *app.Config) { c.ExpiryInterval = 200 * time.Millisecond }))
	api := e.brand(t, "hooks", "pro")
	r := newReceiver(t, nil)
	e.subscribe(t, api, r.URL, "license.expired")
	const n = 10
	var lics []string
	expiry := time.Now().Add(2 * time.Second)
	for i := range n {
		var k provisioned
		e2.must(t, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": fmt.Sprintf("c%d@example.com", i),
			"licenses": []map[string]any{{"product": "pro", "expires_at": expiry.UTC().Format(time.RFC3339Nano)}}}).JSON(t, &k)
		lics = append(lics, k.Licenses[0].ID)
	}
	r.waitFor(t, time.Minute, "a license.expired per license", func(hs []hook) bool { return len(hs) >= n })
	if late := time.Since(expiry); late > time.Minute {
		t.Fatalf("license.expired %v after the expiry", late)
	}
	// recorded: no later scan of either writer matches these expiries again
	if c := e.count(t, "SELECT count(*) FROM licenses WHERE expiry_recorded_at = expires_at"); c != n {
		t.Fatalf("%d of %d expiries marked recorded", c, n)
	}
	e.settled(t, n)
	if hooks := r.hooks(); len(hooks) != n {
		t.Fatalf("%d license.expired deliveries for %d expiries", len(hooks), n)
	}
	if c := e.count(t, "SELECT count(*) FROM audit_events WHERE action = 'license.expired'"); c != n {
		t.Fatalf("%d license.expired audit events for %d expiries", c, n)
	}
	// renewed, then expired again: recorded again
	again := time.Now().Add(1500 * time.Millisecond)
	e.must(t, 200, "POST", "/v1/licenses/"+lics[0]+"/renew", api, map[string]any{"expires_at": again.UTC().Format(time.RFC3339Nano)})
	r.waitFor(t, time.Minute, "the second expiry", func(hs []hook) bool { return len(hs) >= n+1 })
	e.settled(t, n+1)
	if got := len(r.hooks()); got != n+1 {
		t.Fatalf("%d license.expired deliveries after a renewal and a second expiry, want %d", got, n+1)
	}
	var events struct {
		Data []struct {
			Action string `json:"action"`
			Actor  string `json:"actor"`
		} `json:"data"`
	}
	e.must(t, 200, "GET", "/v1/licenses/"+lics[0]+"/events", api, nil).JSON(t, &events)
	expired := 0
	for _, ev := range events.Data {
		if ev.Action == "license.expired" {
			expired++
			if ev.Actor != "system" {
				t.Errorf("license.expired by %q", ev.Actor)
			}
		}
	}
	if expired != 2 {
		t.Fatalf("%d license.expired events in the license's history, want 2", expired)
	}
}

// ---------------------------------------------------------------- a writer process

// TestMain runs the test binary as a writer process when asked (the kill -9 test starts
// one): the writer reads its configuration from WRITER_ variables like the real binary.
func TestMain(m *testing.M) {
	if os.Getenv("LICENSE_TEST_WRITER_PROCESS") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		cfg, _, err := app.FromEnv(os.Environ())
		if err == nil {
			err = app.Run(ctx, cfg, slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})), nil)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "writer process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writerProcess is a writer running as a child process of the test, killable with
// SIGKILL.
type writerProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcess starts the test binary as a writer with env and waits until it serves.
func startProcess(t *testing.T, addr string, logPath string, env ...string) *writerProcess {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "LICENSE_TEST_WRITER_PROCESS=1", "WRITER_ADDR="+addr), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &writerProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("writer process exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("writer process did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *writerProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// The process running the workers is killed with SIGKILL while deliveries are in flight;
// after a restart every event is delivered, and the delivery log holds each event once.
func TestWebhookWorkerKilled(t *testing.T) {
	db, ns := dbtest.New(t), natstest.Start(t)
	addr := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "writer.log")
	vars := []string{"WRITER_DATABASE_URL=" + db.AppURL, "WRITER_NATS_URL=" + ns.URL(), "WRITER_OPERATOR_TOKEN=op-secret-token",
		"WRITER_RATE_LIMITS=off", "WRITER_WEBHOOK_KEYS=" + webhookKey(), "WRITER_WEBHOOK_ALLOW_LOOPBACK=true",
		"WRITER_WEBHOOK_TIMEOUT=2s", "WRITER_WEBHOOK_RESCUE_AFTER=5s", "WRITER_WEBHOOK_RETRY_SCHEDULE=300ms,600ms,1s,1s,1s,1s,1s",
		"WRITER_OUTBOX_POLL=200ms"}
	proc := startProcess(t, addr, logPath, vars...)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("writer process log:\n%s", log)
		}
	})
	e := &env{base: "http://" + addr, db: db, nats: ns, operator: "op-secret-token",
		client: &http.Client{Timeout: 30 * time.Second}}
	validatorOnce.Do(func() { validator, validatorErr = openapitest.NewValidator() })
	if validatorErr != nil {
		t.Fatal(validatorErr)
	}
	api := e.brand(t, "hooks", "pro")

	killed := make(chan struct{})
	var inFlight atomic.Int32
	r := newReceiver(t, func(seen int, h hook) int {
		select {
		case <-killed:
			return http.StatusOK
		default:
		}
		inFlight.Add(1)
		<-killed // hold the attempt open until its writer is dead
		return http.StatusOK
	})
	var once sync.Once
	release := func() { once.Do(func() { close(killed) }) }
	t.Cleanup(release)
	e.subscribe(t, api, r.URL)
	const n = 20
	for i := range n {
		e.must(t, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": fmt.Sprintf("c%d@example.com", i),
			"licenses": []map[string]any{{"product": "pro"}}})
	}
	deadline := time.Now().Add(20 * time.Second)
	for inFlight.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts in flight", inFlight.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	proc.kill()
	release()
	t.Logf("killed with %d attempts in flight", inFlight.Load())
	startProcess(t, addr, logPath, vars...)

	r.waitFor(t, 60*time.Second, "every event delivered after the restart", func(hs []hook) bool {
		ids := map[string]bool{}
		for _, h := range hs {
			ids[h.ID] = true
		}
		return len(ids) >= n
	})
	var events []string
	func() {
		rows, err := e.admin(t).Query(context.Background(), "SELECT id::text FROM webhook_events")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			events = append(events, id)
		}
	}()
	// the log: each change once, each delivery once, all succeeded
	if c := e.count(t, "SELECT count(*) FROM webhook_events"); c != n {
		t.Fatalf("%d events in the log for %d changes", c, n)
	}
	if c := e.count(t, "SELECT count(DISTINCT outbox_id) FROM webhook_events"); c != n {
		t.Fatalf("%d distinct outbox rows behind %d events", c, n)
	}
	deadline = time.Now().Add(30 * time.Second)
	for e.count(t, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'") != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries succeeded; %d rows in the log", e.count(t, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'"),
				n, e.count(t, "SELECT count(*) FROM webhook_deliveries"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := e.count(t, "SELECT count(*) FROM webhook_deliveries"); c != n {
		t.Fatalf("%d deliveries in the log for %d events and one endpoint", c, n)
	}
	got := map[string]bool{}
	for _, h := range r.hooks() {
		got[h.ID] = true
	}
	for _, id := range events {
		if !got[id] {
			t.Errorf("event %s never delivered", id)
		}
	}
}

// An outbox row that is not a contract event (a tool's '{}', an unknown type) is
// dispatched with no delivery and never blocks the events behind it.
func TestWebhookDispatcherSkipsRowsThatAreNotEvents(t *testing.T) {
	e := start(t, withConfig(hooksConfig(webhookKey())))
	api := e.brand(t, "hooks", "pro")
	r := newReceiver(t, nil)
	e.subscribe(t, api, r.URL)
	var brandID string
	admin := e.admin(t)
	if err := admin.QueryRow(context.Background(), "SELECT id::text FROM brands WHERE slug = 'hooks'").Scan(&brandID); err != nil {
		t.Fatal(err)
	}
	for _, payload := range []string{`{}`, `{"type":"license.exploded"}`, `{"type":"license.created"}`, `[1,2]`} {
		if _, err := admin.Exec(context.Background(), `INSERT INTO outbox (brand_id, license_key_id, version, subject, payload)
			VALUES ($1, gen_random_uuid(), 1, 'license.events.x', $2::jsonb)`, brandID, payload); err != nil {
			t.Fatal(err)
		}
	}
	e.must(t, 201, "POST", "/v1/license-keys", api, map[string]any{"customer_email": "c@example.com",
		"licenses": []map[string]any{{"product": "pro"}}})
	r.waitFor(t, 10*time.Second, "the real event behind the junk rows", func(hs []hook) bool { return len(hs) >= 1 })
	e.settled(t, 1)
	if n := e.count(t, "SELECT count(*) FROM outbox WHERE dispatched_at IS NULL"); n != 0 {
		t.Fatalf("%d outbox rows left undispatched", n)
	}
	if got := types(r.hooks()); len(got) != 1 || got[0] != "license_key.created" {
		t.Fatalf("received %v", got)
	}
}
