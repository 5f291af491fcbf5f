package app_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/leasetest"
	"github.com/licensing/licensing/internal/syncbuf"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/app"
)

// TestSignedStatusFromTheWriter: the writer answers a status check asked for as
// application/jose with a lease that go-jose verifies against the writer's own
// /.well-known/jwks.json (which also lists the configured set's keys); exp is capped by
// the valid license's expiry; the plain answer and problems are unchanged, and every
// answer varies by Accept. The harness checks each answer against the OpenAPI document.
func TestSignedStatusFromTheWriter(t *testing.T) {
	own, _ := lease.GenerateKey()
	retired, _ := lease.GenerateKey()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "writer.pem")
	leasetest.WriteKey(t, keyFile, own)
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, lease.KeySet(own, retired).Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	e := start(t, withConfig(func(c *app.Config) {
		c.SigningKeyFile, c.JWKSFile, c.LeaseIssuer, c.LeaseDuration = keyFile, jwksFile, "https://licenses.example", 48*time.Hour
	}))
	b := e.brand(t, "leases", "pro", "lite")
	expires := time.Now().Add(10 * time.Hour).UTC().Truncate(time.Second)
	var k resource.LicenseKey
	e.must(t, 201, "POST", "/v1/license-keys", b, map[string]any{"customer_email": "l@example.com",
		"licenses": []map[string]any{{"product": "pro", "expires_at": expires}, {"product": "lite"}}}).JSON(t, &k)

	jwks := e.must(t, 200, "GET", "/.well-known/jwks.json", "", nil)
	if jwks.Header.Get("Cache-Control") != "max-age=300" || jwks.Header.Get("Content-Type") != "application/json" {
		t.Errorf("jwks headers %v", jwks.Header)
	}
	set, err := lease.ParseJWKS(jwks.Body)
	if err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks %s: %v", jwks.Body, err)
	}

	path := "/v1/public/leases/licenses/" + k.Key + "/status"
	for _, c := range []struct {
		name, query string
		exp         func(iat time.Time) time.Time
	}{
		{"valid-pro-capped-by-expiry", "?product=pro", func(time.Time) time.Time { return expires }},
		{"valid-lite-full-lease", "?product=lite", func(iat time.Time) time.Time { return iat.Add(48 * time.Hour) }},
		{"any-valid-capped-by-the-earliest", "", func(time.Time) time.Time { return expires }},
		{"not-licensed-full-lease", "?product=other", func(iat time.Time) time.Time { return iat.Add(48 * time.Hour) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.must(t, 200, "GET", path+c.query, "", nil, "Accept", "application/jose")
			if r.Header.Get("Content-Type") != "application/jose" || r.Header.Get("Vary") != "Accept" ||
				!strings.HasPrefix(r.Header.Get("Cache-Control"), "max-age=") {
				t.Fatalf("headers %v", r.Header)
			}
			tok, err := leasetest.Verify(r.Body, jwks.Body, leasetest.Expected{Issuer: "https://licenses.example",
				Subject: k.Key, Audience: "leases", At: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if tok.Kid != lease.Thumbprint(own.Public().(ed25519.PublicKey)) || tok.Typ != "license-status+jwt" {
				t.Errorf("kid %s typ %s", tok.Kid, tok.Typ)
			}
			iat := tok.Claims.IssuedAt.Time()
			if want := c.exp(iat); !tok.Claims.Expiry.Time().Equal(want) {
				t.Errorf("exp %v, want %v", tok.Claims.Expiry.Time(), want)
			}
			payload, _, err := lease.Verify(r.Body, set)
			if err != nil {
				t.Fatal(err)
			}
			var signed resource.Status
			if err := json.Unmarshal(payload, &signed); err != nil {
				t.Fatal(err)
			}
			if !signed.CheckedAt.Equal(iat) || signed.LicenseKey != k.Key {
				t.Errorf("checked_at %v, iat %v", signed.CheckedAt, iat)
			}
			plain := e.must(t, 200, "GET", path+c.query, "", nil)
			var p resource.Status
			plain.JSON(t, &p)
			p.CheckedAt = signed.CheckedAt
			if string(p.AppendJSON(nil)) != string(signed.AppendJSON(nil)) || plain.Header.Get("Vary") != "Accept" {
				t.Errorf("signed payload %s\nplain %s", signed.AppendJSON(nil), p.AppendJSON(nil))
			}
		})
	}
	nf := e.must(t, 404, "GET", "/v1/public/leases/licenses/AAAAA-AAAAA-AAAAA-AAAAA-AAAAB/status", "", nil, "Accept", "application/jose")
	if nf.Header.Get("Content-Type") != "application/problem+json" || nf.Header.Get("Vary") != "Accept" {
		t.Errorf("404: %v", nf.Header)
	}
	if r := e.must(t, 200, "GET", path, "", nil, "Accept", "application/jose;q=0, application/json"); r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("q=0: %q", r.Header.Get("Content-Type"))
	}
}

// TestWriterStartLogHidesTheSigningKey: an inline key is masked and appears nowhere in
// the log, and a start without a key warns about the ephemeral one.
func TestWriterStartLogHidesTheSigningKey(t *testing.T) {
	priv, _ := lease.GenerateKey()
	seed := base64.RawURLEncoding.EncodeToString(priv.Seed())
	for _, key := range []string{seed, ""} {
		cfg := app.Config{Addr: "127.0.0.1:bad-port", DatabaseURL: "postgres://x@127.0.0.1:1/x?sslmode=disable",
			NATSURL: "nats://127.0.0.1:1", SigningKey: key, MaxConns: 1, ShutdownTimeout: time.Second}
		var out syncbuf.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = app.Run(ctx, cfg, slog.New(slog.NewJSONHandler(&out, nil)), nil)
		log := out.String()
		if key != "" && (strings.Contains(log, key) || !strings.Contains(log, `"signing_key":"****"`)) {
			t.Errorf("key in the log or not masked:\n%s", log)
		}
		if warned := strings.Contains(log, "ephemeral key") && strings.Contains(log, "WRITER_SIGNING_KEY_FILE"); warned != (key == "") {
			t.Errorf("ephemeral warning %v with key %v:\n%s", warned, key != "", log)
		}
		if !strings.Contains(log, `"msg":"status leases"`) {
			t.Errorf("no lease line:\n%s", log)
		}
	}
}
