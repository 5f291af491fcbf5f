package license

import (
	"strings"
	"testing"
)

func TestIsDevelopmentInstance(t *testing.T) {
	suffixes := []string{"wpengine.com", ".kinsta.cloud", "  Staging.Example.Host  "}
	for _, c := range []struct {
		instance string
		want     bool
	}{
		// not URLs: never classified
		{"localhost", false},
		{"staging.example.com", false},
		{"machine-42", false},
		{"ftp://localhost/", false},
		{"", false},
		// localhost
		{"http://localhost", true},
		{"https://LOCALHOST:8443/wp", true},
		{"http://shop.localhost/", true},
		{"http://localhost.", true},
		// IP literals
		{"http://127.0.0.1/", true},
		{"http://10.1.2.3:8080", true},
		{"https://192.168.1.20/site", true},
		{"http://172.20.0.5", true},
		{"http://[::1]/", true},
		{"http://[fd00::1]/", true},
		{"http://[::ffff:192.168.0.1]/", true},
		{"https://93.184.216.34/", false},
		{"https://[2606:2800:220:1::1]/", false},
		// no dot
		{"http://mysite", true},
		{"https://intranet:8080/wp", true},
		// reserved names
		{"http://site.local", true},
		{"https://shop.test/", true},
		{"https://www.example/", true},
		{"https://a.b.invalid", true},
		{"https://example.com", false},
		{"https://local.com", false},
		{"https://mytest.com", false},
		// first label
		{"https://staging.shop.com", true},
		{"https://stage.shop.com/wp", true},
		{"https://dev.shop.com", true},
		{"https://development.shop.com", false},
		{"https://shop-staging.com", false},
		{"https://www.staging.shop.com", false},
		// .dev is public
		{"https://shop.dev", false},
		{"https://web.dev", false},
		// product suffixes, whole labels
		{"https://mysite.wpengine.com", true},
		{"https://a.b.wpengine.com", true},
		{"https://xwpengine.com", false},
		{"https://wpengine.com", false},
		{"https://env-1.kinsta.cloud", true},
		{"https://x.staging.example.host", true},
		{"https://shop.com", false},
	} {
		if got := IsDevelopmentInstance(c.instance, suffixes); got != c.want {
			t.Errorf("IsDevelopmentInstance(%q) = %v, want %v", c.instance, got, c.want)
		}
	}
	if IsDevelopmentInstance("https://mysite.wpengine.com", nil) {
		t.Error("a product suffix applied without the product's list")
	}
}

// FuzzIsDevelopmentInstance: never panics; anything that is not an http(s) URL is never a
// development instance; the host's case does not matter.
func FuzzIsDevelopmentInstance(f *testing.F) {
	for _, s := range []string{"http://localhost", "https://staging.shop.com", "https://shop.com", "http://[::1]:80/x",
		"machine", "https://a.wpengine.com", "HTTP://Dev.Example.org", "http://%zz"} {
		f.Add(s, "wpengine.com")
	}
	f.Fuzz(func(t *testing.T, instance, suffix string) {
		got := IsDevelopmentInstance(instance, []string{suffix})
		lower := toLowerASCII(instance)
		if got && !hasHTTPPrefix(lower) {
			t.Fatalf("%q is not an http(s) URL but is classified as a development instance", instance)
		}
		if IsDevelopmentInstance(lower, []string{suffix}) != got && CheckText(instance) == nil && isASCII(instance) {
			t.Fatalf("%q and its lower case are classified differently", instance)
		}
	})
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func hasHTTPPrefix(s string) bool {
	t := strings.TrimSpace(s)
	return strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestNormalizeDevSuffix(t *testing.T) {
	for in, want := range map[string]string{
		"wpengine.com": "wpengine.com", ".Kinsta.Cloud": "kinsta.cloud", "staging.my-host.co.uk": "staging.my-host.co.uk",
	} {
		got, err := NormalizeDevSuffix(in)
		if err != nil || got != want {
			t.Errorf("NormalizeDevSuffix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "com", ".com", "a..b", "-a.com", "a-.com", "a_b.com", "a b.com", "wpengine.com.", "ä.com",
		strings.Repeat("a", 64) + ".com", strings.Repeat("abcdefgh.", 30) + "com"} {
		if got, err := NormalizeDevSuffix(in); err == nil {
			t.Errorf("NormalizeDevSuffix(%q) = %q, want an error", in, got)
		}
	}
}

// TestClassifyInstanceAgreesWithIsDevelopmentInstance: the split the writer's SQL uses
// (fixed rules in Go, the host matched against the product's suffixes) gives the same
// verdict as the one-call classification.
func TestClassifyInstanceAgreesWithIsDevelopmentInstance(t *testing.T) {
	suffixes := []string{"wpengine.com", "kinsta.cloud"}
	for _, in := range []string{"https://x.wpengine.com", "https://wpengine.com", "https://xwpengine.com", "http://a.b.kinsta.cloud/",
		"https://staging.shop.com", "https://shop.com", "x.wpengine.com", "http://localhost"} {
		host, builtin := ClassifyInstance(in)
		split := builtin
		for _, s := range suffixes {
			split = split || UnderSuffix(host, s)
		}
		if whole := IsDevelopmentInstance(in, suffixes); split != whole {
			t.Errorf("%q: ClassifyInstance+UnderSuffix says %v, IsDevelopmentInstance %v", in, split, whole)
		}
	}
	if UnderSuffix("", "wpengine.com") || UnderSuffix("x.wpengine.com", "") {
		t.Error("an empty host or suffix matched")
	}
}
