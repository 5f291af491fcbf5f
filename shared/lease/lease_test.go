package lease_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/licensing/licensing/internal/leasetest"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/resource"
)

var iat = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func newSigner(t *testing.T, extra lease.JWKS) (*lease.Signer, ed25519.PrivateKey) {
	t.Helper()
	priv, err := lease.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := lease.NewSigner(priv, "https://licenses.example", 72*time.Hour, extra)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

func status(valid bool, licenses ...resource.StatusLicense) resource.Status {
	return resource.Status{LicenseKey: "ABCDE-FGHJK-MNPQR-STUVW-XYZ23", Brand: "acme", Valid: valid, Code: "valid",
		Licenses: licenses, CheckedAt: iat}
}

func at(d time.Duration) *time.Time { t := iat.Add(d); return &t }

// TestIndependentVerifierAcceptsTokens: go-jose, knowing nothing of this package, parses
// the token, finds its kid in the served JWK Set, verifies the signature and the claims;
// the payload is the plain answer plus the claims, and the header is exactly alg, kid,
// typ.
func TestIndependentVerifierAcceptsTokens(t *testing.T) {
	s, _ := newSigner(t, lease.JWKS{})
	st := status(true, resource.StatusLicense{Product: "pro", Status: "valid", Valid: true, SeatsUsed: 1})
	tok := s.Sign(st.AppendJSON(nil), st.LicenseKey, st.Brand, iat, lease.ValidUntil(&st))

	got, err := leasetest.Verify(tok, s.JWKS(), leasetest.Expected{Issuer: "https://licenses.example",
		Subject: st.LicenseKey, Audience: "acme", At: iat.Add(71 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Kid != s.Kid() || got.Alg != "EdDSA" || got.Typ != "license-status+jwt" {
		t.Errorf("header kid %q alg %q typ %q", got.Kid, got.Alg, got.Typ)
	}
	if !got.Claims.IssuedAt.Time().Equal(iat) || !got.Claims.Expiry.Time().Equal(iat.Add(72*time.Hour)) {
		t.Errorf("iat %v exp %v", got.Claims.IssuedAt.Time(), got.Claims.Expiry.Time())
	}
	if _, err := leasetest.Verify(tok, s.JWKS(), leasetest.Expected{At: iat.Add(72*time.Hour + time.Second)}); err == nil {
		t.Error("go-jose accepted the lease after exp")
	}
	// the header is exactly these three members
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(string(tok), ".")[0])
	if want := `{"alg":"EdDSA","kid":"` + s.Kid() + `","typ":"license-status+jwt"}`; string(h) != want {
		t.Errorf("header %s, want %s", h, want)
	}
	// the payload is the plain answer plus the claims
	payload, hdr, err := lease.Verify(tok, s.Keys())
	if err != nil || hdr.Kid != s.Kid() {
		t.Fatalf("own verifier: %v %+v", err, hdr)
	}
	var back resource.Status
	if err := json.Unmarshal(payload, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.AppendJSON(nil), st.AppendJSON(nil)) {
		t.Errorf("status in the payload\n%s\nwant\n%s", back.AppendJSON(nil), st.AppendJSON(nil))
	}
	var c lease.Claims
	_ = json.Unmarshal(payload, &c)
	if c != (lease.Claims{Iss: "https://licenses.example", Sub: st.LicenseKey, Aud: "acme", Iat: iat.Unix(), Exp: iat.Add(72 * time.Hour).Unix()}) {
		t.Errorf("claims %+v", c)
	}
	var keys map[string]any
	_ = json.Unmarshal(payload, &keys)
	if len(keys) != 6+5 { // license_key brand valid code licenses checked_at + 5 claims
		t.Errorf("payload members %v", keys)
	}
}

func TestTamperedTokensAreRefused(t *testing.T) {
	s, sPriv := newSigner(t, lease.JWKS{})
	other, otherPriv := newSigner(t, lease.JWKS{})
	st := status(false)
	tok := string(s.Sign(st.AppendJSON(nil), st.LicenseKey, st.Brand, iat, nil))
	parts := strings.Split(tok, ".")
	enc := base64.RawURLEncoding
	payload, _ := enc.DecodeString(parts[1])
	sig, _ := enc.DecodeString(parts[2])
	flipped := append([]byte(nil), sig...)
	flipped[10] ^= 1
	header := func(h string) string { return enc.EncodeToString([]byte(h)) }
	signWith := func(priv ed25519.PrivateKey, h, p string) string {
		in := h + "." + p
		return in + "." + enc.EncodeToString(ed25519.Sign(priv, []byte(in)))
	}
	for _, c := range []struct{ name, token string }{
		{"payload-valid-flipped-to-true", parts[0] + "." + enc.EncodeToString(bytes.Replace(payload, []byte(`"valid":false`), []byte(`"valid":true`), 1)) + "." + parts[2]},
		{"exp-extended", parts[0] + "." + enc.EncodeToString(bytes.Replace(payload, []byte(`"exp":`), []byte(`"exp":9`), 1)) + "." + parts[2]},
		{"signature-bit-flipped", parts[0] + "." + parts[1] + "." + enc.EncodeToString(flipped)},
		{"signature-missing", parts[0] + "." + parts[1] + "."},
		{"signed-by-another-key-under-this-kid", signWith(otherPriv, parts[0], parts[1])},
		{"unknown-kid", signWith(otherPriv, header(`{"alg":"EdDSA","kid":"`+other.Kid()+`","typ":"license-status+jwt"}`), parts[1])},
		{"alg-none", header(`{"alg":"none","kid":"`+s.Kid()+`","typ":"license-status+jwt"}`) + "." + parts[1] + "."},
		{"not-compact", parts[0] + "." + parts[1]},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := leasetest.Verify([]byte(c.token), s.JWKS(), leasetest.Expected{At: iat}); err == nil {
				t.Error("go-jose accepted it")
			}
			if _, _, err := lease.Verify([]byte(c.token), s.Keys()); err == nil {
				t.Error("lease.Verify accepted it")
			}
		})
	}
	// the headers lease.Verify insists on, over a good signature
	for _, h := range []string{`{"alg":"EdDSA","kid":"` + s.Kid() + `","typ":"JWT"}`, `{"alg":"EdDSA","kid":"` + s.Kid() + `"}`,
		`{"alg":"Ed25519","kid":"` + s.Kid() + `","typ":"license-status+jwt"}`} {
		if _, _, err := lease.Verify([]byte(signWith(sPriv, header(h), parts[1])), s.Keys()); err == nil {
			t.Errorf("header %s accepted", h)
		}
	}
}

func TestExpiryIsCappedByAValidLicense(t *testing.T) {
	s, _ := newSigner(t, lease.JWKS{})
	lic := func(valid bool, exp *time.Time) resource.StatusLicense {
		return resource.StatusLicense{Product: "p", Status: "valid", Valid: valid, ExpiresAt: exp}
	}
	full := iat.Add(72 * time.Hour).Unix()
	for _, c := range []struct {
		name string
		st   resource.Status
		exp  int64
	}{
		{"valid-no-expiry-full-lease", status(true, lic(true, nil)), full},
		{"valid-expiring-in-10h-capped", status(true, lic(true, at(10*time.Hour))), iat.Add(10 * time.Hour).Unix()},
		{"valid-expiring-after-the-lease-full-lease", status(true, lic(true, at(100*time.Hour))), full},
		{"earliest-valid-expiry-wins", status(true, lic(true, at(50*time.Hour)), lic(true, at(5*time.Hour)), lic(true, nil)), iat.Add(5 * time.Hour).Unix()},
		{"invalid-license-does-not-cap", status(true, lic(false, at(time.Hour)), lic(true, nil)), full},
		{"sub-second-expiry-rounds-down", status(true, lic(true, at(time.Hour+900*time.Millisecond))), iat.Add(time.Hour).Unix()},
		{"answer-not-valid-full-lease", status(false, lic(true, at(time.Hour))), full},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := s.Sign(c.st.AppendJSON(nil), c.st.LicenseKey, c.st.Brand, iat, lease.ValidUntil(&c.st))
			got, err := leasetest.Verify(tok, s.JWKS(), leasetest.Expected{At: iat})
			if err != nil {
				t.Fatal(err)
			}
			if e := got.Claims.Expiry.Time().Unix(); e != c.exp {
				t.Errorf("exp %v, want %v", time.Unix(e, 0).UTC(), time.Unix(c.exp, 0).UTC())
			}
		})
	}
}

func TestSignerDefaultsAndJWKS(t *testing.T) {
	a, _ := lease.GenerateKey()
	b, _ := lease.GenerateKey()
	s, err := lease.NewSigner(a, "urn:x", 0, lease.KeySet(b, a, b))
	if err != nil {
		t.Fatal(err)
	}
	if s.Lease() != lease.DefaultDuration {
		t.Errorf("lease %v", s.Lease())
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0]["kid"] != s.Kid() {
		t.Fatalf("JWKS %s: want own key first, then b, deduplicated", s.JWKS())
	}
	for _, k := range set.Keys {
		if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["use"] != "sig" || k["alg"] != "EdDSA" || len(k) != 6 {
			t.Errorf("key %v", k)
		}
	}
	// kids are RFC 7638 thumbprints, as go-jose computes them
	var js jose.JSONWebKeySet
	if err := json.Unmarshal(s.JWKS(), &js); err != nil {
		t.Fatal(err)
	}
	for _, k := range js.Keys {
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil || base64.RawURLEncoding.EncodeToString(tp) != k.KeyID {
			t.Errorf("kid %q, go-jose thumbprint %s %v", k.KeyID, base64.RawURLEncoding.EncodeToString(tp), err)
		}
	}
	// a kid of the configured set that names other material than the own key's
	clash := lease.PublicJWK(b.Public().(ed25519.PublicKey))
	clash.Kid = s.Kid()
	if _, err := lease.NewSigner(a, "urn:x", 0, lease.JWKS{Keys: []lease.JWK{clash}}); err == nil {
		t.Error("a kid clash was accepted")
	}
	if _, err := lease.NewSigner(nil, "urn:x", 0, lease.JWKS{}); err == nil {
		t.Error("no key accepted")
	}
}

// TestThumbprintRFC8037: the example of RFC 8037 appendix A.3.
func TestThumbprintRFC8037(t *testing.T) {
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got := lease.Thumbprint(x); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("thumbprint %s", got)
	}
}

func TestParseJWKS(t *testing.T) {
	a, _ := lease.GenerateKey()
	pub := a.Public().(ed25519.PublicKey)
	x := base64.RawURLEncoding.EncodeToString(pub)
	set, err := lease.ParseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `"},{"kty":"OKP","crv":"Ed25519","kid":"old","x":"` + x + `","use":"sig"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].Kid != lease.Thumbprint(pub) || set.Keys[0].Alg != "EdDSA" || set.Keys[1].Kid != "old" {
		t.Fatalf("set %+v", set)
	}
	if k, ok := set.Find("old"); !ok || !k.Equal(pub) {
		t.Error("Find old")
	}
	for name, doc := range map[string]string{
		"not-json":        `{`,
		"no-keys":         `{}`,
		"rsa-key":         `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		"short-x":         `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`,
		"x25519":          `{"keys":[{"kty":"OKP","crv":"X25519","x":"` + x + `"}]}`,
		"encryption-use":  `{"keys":[{"kty":"OKP","crv":"Ed25519","use":"enc","x":"` + x + `"}]}`,
		"kid-two-keys":    `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"` + x + `"},{"kty":"OKP","crv":"Ed25519","kid":"k","x":"` + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + `"}]}`,
		"other-algorithm": `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"ES256","x":"` + x + `"}]}`,
	} {
		if _, err := lease.ParseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if s, err := lease.ReadJWKS(""); err != nil || len(s.Keys) != 0 {
		t.Errorf("no file: %v %v", s, err)
	}
}

func pkcs8PEM(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	want, _ := lease.GenerateKey()
	pemText := pkcs8PEM(t, want)
	file := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(file, pemText, 0o600); err != nil {
		t.Fatal(err)
	}
	seed := want.Seed()
	for _, c := range []struct{ name, file, inline string }{
		{"pem-file", file, ""},
		{"inline-pem", "", string(pemText)},
		{"inline-pem-with-spaces", "", "\n  " + string(pemText) + "\n"},
		{"seed-base64", "", base64.StdEncoding.EncodeToString(seed)},
		{"seed-base64-raw", "", base64.RawStdEncoding.EncodeToString(seed)},
		{"seed-base64url", "", base64.URLEncoding.EncodeToString(seed)},
		{"seed-base64url-raw", "", base64.RawURLEncoding.EncodeToString(seed)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := lease.LoadKey(c.file, c.inline)
			if err != nil || !got.Equal(want) {
				t.Fatalf("%v", err)
			}
		})
	}
	if k, err := lease.LoadKey("", ""); k != nil || err != nil {
		t.Errorf("nothing configured: %v %v", k, err)
	}
	for mode, loose := range map[os.FileMode]bool{0o600: false, 0o400: false, 0o440: false, 0o640: false, 0o644: true, 0o660: true, 0o604: true} {
		_ = os.Chmod(file, mode)
		if got := lease.LoosePermissions(file); got != loose {
			t.Errorf("mode %o: loose %v, want %v", mode, got, loose)
		}
	}
}

// TestLoadKeyFromOpenSSL: the file openssl genpkey writes loads, and its kid is the
// thumbprint of the public key openssl derives.
func TestLoadKeyFromOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	file := filepath.Join(t.TempDir(), "k.pem")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "ed25519", "-out", file).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	priv, err := lease.LoadKey(file, "")
	if err != nil {
		t.Fatal(err)
	}
	der, err := exec.Command("openssl", "pkey", "-in", file, "-pubout", "-outform", "DER").Output()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Error("public key differs from openssl's")
	}
}

// TestBadKeyMaterialIsNamedNotEchoed: every refusal says what is wrong, and none repeats
// the material (a secret that is merely malformed is still a secret).
func TestBadKeyMaterialIsNamedNotEchoed(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pkcs8PEM(t, rsaKey)
	secretish := "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA" // 34 bytes, not 32
	corrupt := "-----BEGIN PRIVATE KEY-----\nTUlJQ1hBSUJBQUtCZ1FDcXNlY3JldG1hdGVyaWFs\n-----END PRIVATE KEY-----\n"
	openssh := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----\n"
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, file, inline, material, says string
	}{
		{"both-set", write("a.pem", string(rsaPEM)), "x", "", "set one"},
		{"missing-file", filepath.Join(dir, "nope.pem"), "", "", "no such file"},
		{"rsa-file", write("rsa.pem", string(rsaPEM)), "", string(rsaPEM[40:80]), "Ed25519"},
		{"rsa-inline", "", string(rsaPEM), string(rsaPEM[40:80]), "Ed25519"},
		{"corrupt-pkcs8", "", corrupt, "TUlJQ1hBSUJBQUtCZ1FDcXNlY3JldG1hdGVyaWFs", "PKCS#8"},
		{"openssh-format", "", openssh, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "OPENSSH"},
		{"seed-wrong-length", "", secretish, secretish, "32-byte"},
		{"not-base64", "", "hunter2!hunter2!hunter2!", "hunter2", "neither PEM nor base64"},
		{"file-not-pem", write("seed.txt", secretish), "", secretish, "no PEM block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := lease.LoadKey(c.file, c.inline)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
			if c.material != "" && strings.Contains(err.Error(), c.material) {
				t.Errorf("error echoes the material: %q", err)
			}
		})
	}
}

func TestKeySetOfPrivateKeys(t *testing.T) {
	a, _ := lease.GenerateKey()
	set := lease.KeySet(a, a)
	if len(set.Keys) != 1 || set.Keys[0] != lease.PublicJWK(a.Public().(ed25519.PublicKey)) {
		t.Fatalf("%+v", set)
	}
	back, err := lease.ParseJWKS(set.Marshal())
	if err != nil || len(back.Keys) != 1 || back.Keys[0] != set.Keys[0] {
		t.Fatalf("round trip %+v %v", back, err)
	}
}

// BenchmarkSign is the cost of one signed answer that no cache saves.
func BenchmarkSign(b *testing.B) {
	priv, _ := lease.GenerateKey()
	s, err := lease.NewSigner(priv, "urn:bench", time.Hour, lease.JWKS{})
	if err != nil {
		b.Fatal(err)
	}
	st := status(true, resource.StatusLicense{Product: "pro", Status: "valid", Valid: true, SeatsUsed: 1, ExpiresAt: at(time.Hour)})
	body := st.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(body, st.LicenseKey, st.Brand, iat, lease.ValidUntil(&st))
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	a, _ := lease.GenerateKey()
	b, _ := lease.GenerateKey()
	keyFile := filepath.Join(dir, "a.pem")
	if err := os.WriteFile(keyFile, pkcs8PEM(t, a), 0o600); err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, lease.KeySet(a, b).Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}

	s, warns, err := lease.Open("EDGE_", lease.Settings{KeyFile: keyFile, JWKSFile: jwksFile})
	if err != nil || len(warns) != 0 {
		t.Fatalf("%v %v", err, warns)
	}
	if s.Kid() != lease.Thumbprint(a.Public().(ed25519.PublicKey)) || len(s.Keys().Keys) != 2 || s.Lease() != lease.DefaultDuration {
		t.Errorf("signer kid %s keys %d lease %v", s.Kid(), len(s.Keys().Keys), s.Lease())
	}
	var c lease.Claims
	p, _, _ := lease.Verify(s.Sign([]byte(`{}`), "K", "b", iat, nil), s.Keys())
	_ = json.Unmarshal(p, &c)
	if c.Iss != lease.DefaultIssuer {
		t.Errorf("iss %q", c.Iss)
	}

	// no key: an ephemeral one, and a warning naming the variable to set
	s, warns, err = lease.Open("EDGE_", lease.Settings{Issuer: "urn:x", Duration: time.Hour})
	if err != nil || s == nil || len(warns) != 1 || !strings.Contains(warns[0], "EDGE_SIGNING_KEY_FILE") ||
		!strings.Contains(warns[0], "ephemeral") {
		t.Fatalf("ephemeral: %v %q", err, warns)
	}
	// a key file others can read, and a key set that does not list the node's own key
	_ = os.Chmod(keyFile, 0o644)
	other := filepath.Join(dir, "other.json")
	_ = os.WriteFile(other, lease.KeySet(b).Marshal(), 0o644)
	if _, warns, err = lease.Open("WRITER_", lease.Settings{KeyFile: keyFile, JWKSFile: other}); err != nil || len(warns) != 2 ||
		!strings.Contains(warns[0], "0600") || !strings.Contains(warns[1], "does not list this node's own public key") {
		t.Fatalf("warnings %q %v", warns, err)
	}
	for name, c := range map[string]struct {
		set  lease.Settings
		says string
	}{
		"bad-inline":     {lease.Settings{Key: "not a key"}, "EDGE_SIGNING_KEY:"},
		"bad-file":       {lease.Settings{KeyFile: jwksFile}, "EDGE_SIGNING_KEY_FILE:"},
		"both":           {lease.Settings{KeyFile: keyFile, Key: "x"}, "EDGE_SIGNING_KEY_FILE and EDGE_SIGNING_KEY"},
		"bad-jwks":       {lease.Settings{JWKSFile: keyFile}, "EDGE_JWKS_FILE:"},
		"missing-jwks":   {lease.Settings{JWKSFile: filepath.Join(dir, "none.json")}, "EDGE_JWKS_FILE:"},
		"kid-clash-jwks": {lease.Settings{KeyFile: keyFile, JWKSFile: clashFile(t, dir, a, b)}, "EDGE_JWKS_FILE:"},
	} {
		if _, _, err := lease.Open("EDGE_", c.set); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want it to name %s", name, err, c.says)
		}
	}
}

// clashFile is a key set naming b's key with a's kid.
func clashFile(t *testing.T, dir string, a, b ed25519.PrivateKey) string {
	t.Helper()
	k := lease.PublicJWK(b.Public().(ed25519.PublicKey))
	k.Kid = lease.Thumbprint(a.Public().(ed25519.PublicKey))
	p := filepath.Join(dir, "clash.json")
	if err := os.WriteFile(p, lease.JWKS{Keys: []lease.JWK{k}}.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAcceptNegotiation(t *testing.T) {
	for _, c := range []struct {
		accept string
		signed bool
	}{
		{"", false},
		{"*/*", false},
		{"application/json", false},
		{"application/jose", true},
		{"Application/JOSE", true},
		{" application/jose ; charset=utf-8", true},
		{"application/json, application/jose", true},
		{"application/jose, application/problem+json", true},
		{"application/jose;q=0", false},
		{"application/jose; q=0.000", false},
		{"application/jose;q=0.001", true},
		{"application/jose;q=0.5, */*", false},
		{"application/jose;q=0.5, */*;q=0.1", true},
		{"application/jose;q=0.5, application/json;q=0.8", false},
		{"application/jose;q=0.5, application/*;q=0.4, */*", true},
		{"application/jose;q=1.0, application/json", true},
		{"application/jose;q=bogus", true},
		{"application/josex", false},
		{"application/*", false},
		{"text/html, application/jose;level=1;q=0.9", true},
		{",,;", false},
	} {
		if got := lease.AcceptsJOSE([]byte(c.accept)); got != c.signed {
			t.Errorf("Accept %q: signed %v, want %v", c.accept, got, c.signed)
		}
	}
	h := []byte("text/html, application/json;q=0.9, application/jose;q=0.95, */*;q=0.1")
	if n := testing.AllocsPerRun(100, func() { lease.AcceptsJOSE(h) }); n != 0 {
		t.Errorf("AcceptsJOSE allocates %v times", n)
	}
}
