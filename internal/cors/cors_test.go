package cors

import "testing"

func TestParseAndAllow(t *testing.T) {
	cases := []struct {
		name, config, origin, want string
	}{
		{"default-allows-none", "", "http://127.0.0.2:8080", ""},
		{"off-allows-none", "off", "http://127.0.0.2:8080", ""},
		{"listed-origin-echoed", "https://docs.example.com, http://127.0.0.2:8080", "http://127.0.0.2:8080", "http://127.0.0.2:8080"},
		{"listed-origin-any-case", "https://Docs.Example.com", "https://docs.example.com", "https://docs.example.com"},
		{"other-port-refused", "http://127.0.0.2:8080", "http://127.0.0.2:8081", ""},
		{"other-scheme-refused", "https://docs.example.com", "http://docs.example.com", ""},
		{"trailing-slash-accepted-in-config", "https://docs.example.com/", "https://docs.example.com", "https://docs.example.com"},
		{"star-allows-any", "*", "http://anything.test", "*"},
		{"no-origin-header-no-answer", "*", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := Parse(c.config)
			if err != nil {
				t.Fatal(err)
			}
			if got := o.Allow(c.origin); got != c.want {
				t.Fatalf("Allow(%q) with %q = %q, want %q", c.origin, c.config, got, c.want)
			}
			if o.Enabled() != (c.config != "" && c.config != "off") {
				t.Fatalf("Enabled() = %v for %q", o.Enabled(), c.config)
			}
		})
	}
}

func TestParseRejectsNonOrigins(t *testing.T) {
	for _, s := range []string{"docs.example.com", "ftp://x.test", "https://x.test/path", "https://x.test?q=1", "https://u@x.test", "https://"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted a non-origin", s)
		}
	}
}
