package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/writer/webhook"
)

// The demo receiver accepts what the service signs and refuses a tampered body, a wrong
// secret and a stale timestamp.
func TestReceiverVerifies(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := &receiver{secretFile: file, seen: map[string]bool{}}
	body := `{"type":"webhook.test","timestamp":"2026-01-01T00:00:00Z","data":{}}`
	send := func(body string, ts int64, secrets ...string) int {
		sig, err := webhook.Sign(secrets, "evt-1", ts, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(body))
		req.Header.Set("webhook-id", "evt-1")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", sig)
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, req)
		return w.Code
	}
	now := time.Now().Unix()
	if c := send(body, now, secret); c != http.StatusNoContent {
		t.Fatalf("signed delivery: %d", c)
	}
	if c := send(body, now, "whsec_dGhlIG90aGVyIHNlY3JldCBvZiAzMiBieXRlcyEhISE=", secret); c != http.StatusNoContent {
		t.Fatalf("delivery signed with two secrets: %d", c)
	}
	if c := send(body, now, "whsec_dGhlIG90aGVyIHNlY3JldCBvZiAzMiBieXRlcyEhISE="); c != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", c)
	}
	if c := send(body, now-600, secret); c != http.StatusUnauthorized {
		t.Fatalf("stale timestamp: %d", c)
	}
	sig, _ := webhook.Sign([]string{secret}, "evt-1", now, []byte(body))
	req := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(strings.Replace(body, "test", "tset", 1)))
	req.Header.Set("webhook-id", "evt-1")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now, 10))
	req.Header.Set("webhook-signature", sig)
	w := httptest.NewRecorder()
	rc.ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("tampered body: %d", w.Code)
	}
}
