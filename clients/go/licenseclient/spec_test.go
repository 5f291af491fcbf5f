package licenseclient_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/licensing/licensing/writer/openapi/openapitest"
)

// TestDeliveryTypeEnum guards the rewrite of WebhookDelivery.type for ogen (a oneOf of the
// event types and the const webhook.test became one enum): the document still accepts
// exactly those types.
func TestDeliveryTypeEnum(t *testing.T) {
	t.Parallel()
	v, err := openapitest.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	const delivery = `{"data":[{"id":"6f1c1a52-4a8e-4d2a-9a51-0c9e7c1d2b10","endpoint_id":"0b8f1f4e-2f55-4f5e-8a86-2b7f0b1f7d11",` +
		`"event_id":"8d7e6f50-1a2b-4c3d-8e9f-0a1b2c3d4e5f","type":"TYPE","attempt":0,"status":"pending","response_status":null,` +
		`"error":null,"next_attempt_at":"2026-01-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z"}],"next_cursor":null}`
	for _, c := range []struct {
		typ  string
		want bool
	}{
		{"webhook.test", true},
		{"license.created", true},
		{"activation.deleted", true},
		{"license.deleted", false},
		{"webhook.other", false},
		{"", false},
	} {
		req := httptest.NewRequest("GET", "/v1/webhook-endpoints/0b8f1f4e-2f55-4f5e-8a86-2b7f0b1f7d11/deliveries", nil)
		hdr := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}}
		err := v.ValidateResponse(req, 200, hdr, []byte(strings.Replace(delivery, "TYPE", c.typ, 1)))
		if got := err == nil; got != c.want {
			t.Errorf("type %q: accepted %v, want %v (%v)", c.typ, got, c.want, err)
		}
	}
}
