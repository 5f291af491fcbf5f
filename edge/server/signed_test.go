package server

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/internal/leasetest"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/resource"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
)

const issuer = "https://licenses.example"

// signedServer is newServer with a lease signer and a clock the test moves.
func signedServer(t *testing.T, src source.Source, clock *time.Time) (*Server, *metrics.Metrics) {
	t.Helper()
	priv, err := lease.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := lease.NewSigner(priv, issuer, 72*time.Hour, lease.JWKS{})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry())
	return New(src, nil, nil, nil, Config{StatusMaxAge: time.Minute, NotFoundMaxAge: 5 * time.Second, Signer: signer},
		func() time.Time { return *clock }, slog.New(slog.DiscardHandler), m), m
}

const statusPath = "/v1/public/acme/licenses/" + key + "/status"

func jose(s *Server, uri string) *fasthttp.Response {
	return do(s, "GET", uri, "", "Accept", "application/jose")
}

// TestSignedStatus: with Accept: application/jose the answer is a JWS that go-jose
// verifies against the JWK Set this server serves, with the plain answer's headers; its
// payload is the plain answer evaluated at iat (checked_at = iat, the second) plus the
// claims.
func TestSignedStatus(t *testing.T) {
	clock := now.Add(400 * time.Millisecond)
	s, _ := signedServer(t, &fakeSource{res: snapshot(nil)}, &clock)
	jwks := do(s, "GET", "/.well-known/jwks.json", "")
	if jwks.StatusCode() != 200 || string(jwks.Header.ContentType()) != "application/json" ||
		string(jwks.Header.Peek("Cache-Control")) != "max-age=300" {
		t.Fatalf("jwks %d %q %q", jwks.StatusCode(), jwks.Header.ContentType(), jwks.Header.Peek("Cache-Control"))
	}

	uri := statusPath + "?product=pro&instance=" + activated
	r := jose(s, uri)
	if r.StatusCode() != 200 || string(r.Header.ContentType()) != "application/jose" {
		t.Fatalf("%d %q %s", r.StatusCode(), r.Header.ContentType(), r.Body())
	}
	for h, want := range map[string]string{"Vary": "Accept", "X-Cache": "l1", "Cache-Control": "max-age=60", "X-License-Version": "7"} {
		if got := string(r.Header.Peek(h)); got != want {
			t.Errorf("%s %q, want %q", h, got, want)
		}
	}
	if len(r.Header.Peek("X-Cache-Stale")) != 0 {
		t.Error("fresh answer marked stale")
	}
	tok, err := leasetest.Verify(r.Body(), jwks.Body(), leasetest.Expected{Issuer: issuer, Subject: key, Audience: "acme",
		At: clock})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Typ != "license-status+jwt" || tok.Alg != "EdDSA" || tok.Kid != s.cfg.Signer.Kid() {
		t.Errorf("header %+v", tok)
	}
	if !tok.Claims.IssuedAt.Time().Equal(now) || !tok.Claims.Expiry.Time().Equal(now.Add(72*time.Hour)) {
		t.Errorf("iat %v exp %v", tok.Claims.IssuedAt.Time(), tok.Claims.Expiry.Time())
	}
	plain := do(s, "GET", uri, "", "Accept", "application/json")
	if string(plain.Header.ContentType()) != "application/json" || string(plain.Header.Peek("Vary")) != "Accept" {
		t.Fatalf("plain %q vary %q", plain.Header.ContentType(), plain.Header.Peek("Vary"))
	}
	var p, signed resource.Status
	if err := json.Unmarshal(plain.Body(), &p); err != nil {
		t.Fatal(err)
	}
	payload, _, err := lease.Verify(r.Body(), s.cfg.Signer.Keys())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &signed); err != nil {
		t.Fatal(err)
	}
	if !signed.CheckedAt.Equal(now) {
		t.Errorf("checked_at %v, want iat %v", signed.CheckedAt, now)
	}
	p.CheckedAt = signed.CheckedAt
	if a, b := string(p.AppendJSON(nil)), string(signed.AppendJSON(nil)); a != b || !signed.Valid || signed.Instance == nil {
		t.Errorf("signed payload\n%s\nplain\n%s", b, a)
	}
}

func TestVaryAcceptOnEveryStatusAnswer(t *testing.T) {
	clock := now
	found, _ := signedServer(t, &fakeSource{res: snapshot(nil)}, &clock)
	missing, _ := signedServer(t, &fakeSource{res: source.Result{Found: false, Tier: "replica"}}, &clock)
	down, _ := signedServer(t, &fakeSource{err: source.ErrUnavailable}, &clock)
	for _, c := range []struct {
		name   string
		s      *Server
		uri    string
		accept string
		status int
		ctype  string
	}{
		{"plain-200", found, statusPath, "", 200, "application/json"},
		{"signed-200", found, statusPath, "application/jose", 200, "application/jose"},
		{"plain-404", missing, statusPath, "", 404, "application/problem+json"},
		{"signed-asked-404-stays-plain", missing, statusPath, "application/jose", 404, "application/problem+json"},
		{"signed-asked-malformed-key-404-plain", found, "/v1/public/acme/licenses/nope/status", "application/jose", 404, "application/problem+json"},
		{"signed-asked-400-plain", found, statusPath + "?instance=" + strings.Repeat("x", 300), "application/jose", 400, "application/problem+json"},
		{"signed-asked-503-plain", down, statusPath, "application/jose", 503, "application/problem+json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := do(c.s, "GET", c.uri, "", "Accept", c.accept)
			if r.StatusCode() != c.status || string(r.Header.ContentType()) != c.ctype || string(r.Header.Peek("Vary")) != "Accept" {
				t.Fatalf("%d %q vary %q: %s", r.StatusCode(), r.Header.ContentType(), r.Header.Peek("Vary"), r.Body())
			}
			if c.status == 404 && c.uri == statusPath && string(r.Header.Peek("Cache-Control")) != "max-age=5" {
				t.Errorf("404 Cache-Control %q", r.Header.Peek("Cache-Control"))
			}
		})
	}
}

// TestSignedExpiryCappedByValidLicense: exp never passes the expiry of a license the
// answer calls valid; Cache-Control is capped as on the plain answer.
func TestSignedExpiryCappedByValidLicense(t *testing.T) {
	clock := now
	soon := now.Add(10*time.Hour + 300*time.Millisecond)
	s, _ := signedServer(t, &fakeSource{res: snapshot(&soon)}, &clock)
	r := jose(s, statusPath)
	tok, err := leasetest.Verify(r.Body(), s.cfg.Signer.JWKS(), leasetest.Expected{At: now})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(10 * time.Hour); !tok.Claims.Expiry.Time().Equal(want) {
		t.Errorf("exp %v, want %v", tok.Claims.Expiry.Time(), want)
	}
	if _, err := leasetest.Verify(r.Body(), s.cfg.Signer.JWKS(), leasetest.Expected{At: now.Add(10*time.Hour + time.Second)}); err == nil {
		t.Error("lease accepted after the license expired")
	}

	short := now.Add(20 * time.Second)
	s, _ = signedServer(t, &fakeSource{res: snapshot(&short)}, &clock)
	if r := jose(s, statusPath); string(r.Header.Peek("Cache-Control")) != "max-age=20" {
		t.Errorf("Cache-Control %q, want max-age=20", r.Header.Peek("Cache-Control"))
	}
	// an expired license is not valid: no cap, the full lease on a "not valid" answer
	past := now.Add(-time.Hour)
	s, _ = signedServer(t, &fakeSource{res: snapshot(&past)}, &clock)
	tok, err = leasetest.Verify(jose(s, statusPath).Body(), s.cfg.Signer.JWKS(), leasetest.Expected{At: now})
	if err != nil || tok.Payload["valid"] != false || !tok.Claims.Expiry.Time().Equal(now.Add(72*time.Hour)) {
		t.Errorf("expired license: %v valid=%v exp %v", err, tok.Payload["valid"], tok.Claims.Expiry.Time())
	}
}

// TestSignedAnswersAreReusedWithinTheSecond: the same question about the same state in
// the same iat second gets the same token bytes without signing again; another second,
// another question, a new version or a stale answer is signed anew (Ed25519 is
// deterministic: an unchanged payload signs to the same bytes, so the misses are counted).
func TestSignedAnswersAreReusedWithinTheSecond(t *testing.T) {
	clock := now.Add(100 * time.Millisecond)
	src := &fakeSource{res: snapshot(nil)}
	s, m := signedServer(t, src, &clock)
	counts := func(t *testing.T, hits, misses float64) {
		t.Helper()
		h, m := testutil.ToFloat64(m.Signed.WithLabelValues("hit")), testutil.ToFloat64(m.Signed.WithLabelValues("miss"))
		if h != hits || m != misses {
			t.Errorf("hits %v misses %v, want %v %v", h, m, hits, misses)
		}
	}
	first := string(jose(s, statusPath).Body())
	clock = now.Add(900 * time.Millisecond)
	if again := string(jose(s, statusPath).Body()); again != first {
		t.Error("same second, same question: a new token")
	}
	counts(t, 1, 1)
	if other := string(jose(s, statusPath+"?product=other").Body()); other == first {
		t.Error("another question got the same token")
	}
	counts(t, 1, 2)

	// a new version is signed anew, also when the answer reads the same
	src.res.State.Version = 8
	if v8 := string(jose(s, statusPath).Body()); v8 != first {
		t.Error("the same answer signed at the same iat differs")
	}
	counts(t, 1, 3)
	src.res.State.Version = 9
	src.res.State.Licenses[0].SeatsUsed = 2
	v9 := jose(s, statusPath)
	payload, _, err := lease.Verify(v9.Body(), s.cfg.Signer.Keys())
	if err != nil || !strings.Contains(string(payload), `"seats_used":2`) || string(v9.Header.Peek("X-License-Version")) != "9" {
		t.Fatalf("version 9 answered from an older state: %s %v", payload, err)
	}
	counts(t, 1, 4)

	// a stale answer is kept apart, and is still a full lease on what the edge knew
	src.res.Stale = true
	stale := jose(s, statusPath)
	if string(stale.Header.Peek("X-Cache-Stale")) != "true" || string(stale.Header.Peek("Cache-Control")) != "max-age=0" {
		t.Errorf("stale: X-Cache-Stale %q, Cache-Control %q", stale.Header.Peek("X-Cache-Stale"), stale.Header.Peek("Cache-Control"))
	}
	counts(t, 1, 5)
	tok, err := leasetest.Verify(stale.Body(), s.cfg.Signer.JWKS(), leasetest.Expected{At: clock})
	if err != nil || !tok.Claims.Expiry.Time().Equal(now.Add(72*time.Hour)) {
		t.Errorf("stale lease: %v exp %v", err, tok.Claims.Expiry.Time())
	}
	src.res.Stale = false
	if r := jose(s, statusPath); string(r.Body()) != string(v9.Body()) {
		t.Error("fresh again: not the fresh token of this second")
	}
	counts(t, 2, 5)

	clock = now.Add(time.Second)
	next := string(jose(s, statusPath).Body())
	if next == string(v9.Body()) {
		t.Error("next second: the previous second's token")
	}
	tok, err = leasetest.Verify([]byte(next), s.cfg.Signer.JWKS(), leasetest.Expected{At: clock})
	if err != nil || !tok.Claims.IssuedAt.Time().Equal(now.Add(time.Second)) {
		t.Errorf("next second: %v iat %v", err, tok.Claims.IssuedAt.Time())
	}
	counts(t, 2, 6)
}

// TestSignedCacheBound: past its bound the cache keeps nothing more and answers are
// signed anyway; a newer granule empties a shard.
func TestSignedCacheBound(t *testing.T) {
	c := newSignedCache(signedShards) // one entry a shard
	stored := 0
	for i := range 1000 {
		k := signedKey{key: strings.Repeat("k", i%50), version: int64(i)}
		c.put(k, 1, signedEntry{token: []byte("t")})
		if _, ok := c.get(k, 1); ok {
			stored++
		}
	}
	if stored > signedShards {
		t.Errorf("%d entries kept, bound %d", stored, signedShards)
	}
	k := signedKey{key: "x"}
	c.put(k, 2, signedEntry{token: []byte("new")})
	if e, ok := c.get(k, 2); !ok || string(e.token) != "new" {
		t.Error("a newer granule was not stored")
	}
	if _, ok := c.get(k, 1); ok {
		t.Error("an older granule was served")
	}
	c.put(k, 1, signedEntry{token: []byte("old")})
	if e, _ := c.get(k, 2); string(e.token) != "new" {
		t.Error("a late store of an older granule replaced the newer one")
	}
}

func TestJWKSRoute(t *testing.T) {
	clock := now
	s, _ := signedServer(t, &fakeSource{res: snapshot(nil)}, &clock)
	if r := do(s, "POST", "/.well-known/jwks.json", ""); r.StatusCode() != 405 || string(r.Header.Peek("Allow")) != "GET" {
		t.Errorf("POST: %d %q", r.StatusCode(), r.Header.Peek("Allow"))
	}
	r := do(s, "GET", "/.well-known/jwks.json", "")
	set, err := lease.ParseJWKS(r.Body())
	if err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != s.cfg.Signer.Kid() {
		t.Errorf("set %s: %v", r.Body(), err)
	}
	// without a signer there is no key set and no signed answer
	plain := newServer(&fakeSource{res: snapshot(nil)}, nil)
	if r := do(plain, "GET", "/.well-known/jwks.json", ""); r.StatusCode() != 404 {
		t.Errorf("no signer: jwks %d", r.StatusCode())
	}
	if r := jose(plain, statusPath); string(r.Header.ContentType()) != "application/json" {
		t.Errorf("no signer: status %q", r.Header.ContentType())
	}
}

// TestCoarseGranularity: with a 10 s granularity one signature answers the whole
// granule, but never past the expiry of a license the cached answer calls valid: then
// the answer is evaluated again (expired, as the plain answer says) and signed anew.
func TestCoarseGranularity(t *testing.T) {
	clock := now.Add(time.Second)
	expires := now.Add(5*time.Second + 500*time.Millisecond)
	src := &fakeSource{res: snapshot(&expires)}
	priv, _ := lease.GenerateKey()
	signer, err := lease.NewSigner(priv, issuer, 72*time.Hour, lease.JWKS{})
	if err != nil {
		t.Fatal(err)
	}
	s := New(src, nil, nil, nil, Config{StatusMaxAge: time.Minute, Signer: signer, LeaseGranularity: 10*time.Second + 300*time.Millisecond},
		func() time.Time { return clock }, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	first := jose(s, statusPath)
	tok, err := leasetest.Verify(first.Body(), signer.JWKS(), leasetest.Expected{At: clock})
	if err != nil || !tok.Claims.IssuedAt.Time().Equal(now) || tok.Payload["valid"] != true ||
		!tok.Claims.Expiry.Time().Equal(now.Add(5*time.Second)) {
		t.Fatalf("first: %v iat %v exp %v valid %v", err, tok.Claims.IssuedAt.Time(), tok.Claims.Expiry.Time(), tok.Payload["valid"])
	}
	clock = now.Add(5 * time.Second)
	if r := jose(s, statusPath); string(r.Body()) != string(first.Body()) || string(r.Header.Peek("Cache-Control")) != "max-age=0" {
		t.Errorf("same granule: new token %v, Cache-Control %q", string(r.Body()) != string(first.Body()), r.Header.Peek("Cache-Control"))
	}
	clock = now.Add(6 * time.Second) // the license expired at 5.5 s
	r := jose(s, statusPath)
	tok, err = leasetest.Verify(r.Body(), signer.JWKS(), leasetest.Expected{At: clock})
	if err != nil || tok.Payload["valid"] != false || tok.Payload["code"] != "expired" || !tok.Claims.IssuedAt.Time().Equal(now) {
		t.Fatalf("after expiry: %v valid %v code %v iat %v", err, tok.Payload["valid"], tok.Payload["code"], tok.Claims.IssuedAt.Time())
	}
	var p resource.Status
	if err := json.Unmarshal(do(s, "GET", statusPath, "").Body(), &p); err != nil || p.Valid {
		t.Errorf("plain answer after expiry: valid %v %v", p.Valid, err)
	}
	clock = now.Add(10 * time.Second)
	tok, _ = leasetest.Verify(jose(s, statusPath).Body(), signer.JWKS(), leasetest.Expected{At: clock})
	if !tok.Claims.IssuedAt.Time().Equal(now.Add(10 * time.Second)) {
		t.Errorf("next granule iat %v", tok.Claims.IssuedAt.Time())
	}
}
