package envconfig

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Addr    string        `env:"ADDR" envDefault:"127.0.0.1:80" help:"listen address"`
	DB      string        `env:"DATABASE_URL" envDefault:"postgres://app:pw@db/x" mask:"url" help:"database"`
	Token   string        `env:"TOKEN" mask:"secret" help:"operator token"`
	Timeout time.Duration `env:"TIMEOUT" envDefault:"2s" help:"timeout"`
	Skip    int           // not a setting
}

func TestLoadReadsDefaultsAndNamesUnknownVariables(t *testing.T) {
	var c testConfig
	unknown, err := Load(&c, "APP_", []string{"APP_TOKEN=s3cret", "APP_TIMEOUTT=5s", "APP_ADDR=:9", "OTHER_X=1", "APPX=2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9" || c.Timeout != 2*time.Second || c.Token != "s3cret" || c.DB != "postgres://app:pw@db/x" {
		t.Fatalf("config %+v", c)
	}
	if len(unknown) != 1 || unknown[0] != "APP_TIMEOUTT" {
		t.Fatalf("unknown = %v, want the misspelt APP_TIMEOUTT only", unknown)
	}
	if _, err := Load(&c, "APP_", []string{"APP_TIMEOUT=soon"}); err == nil {
		t.Fatal("a bad duration was accepted")
	}
}

func TestLogValueAndHelpMaskCredentials(t *testing.T) {
	c := testConfig{Addr: ":1", DB: "postgres://app:hunter2@db:5432/x?sslmode=disable", Token: "tok-hunter2"}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("start", "config", LogValue(c))
	out := b.String()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, `"token":"****"`) || !strings.Contains(out, "app:xxxxx@db") {
		t.Fatalf("log line leaks or hides too much: %s", out)
	}
	if h := Help(testConfig{}, "APP_"); strings.Contains(h, "pw@") || !strings.Contains(h, "APP_TIMEOUT") || !strings.Contains(h, "listen address") {
		t.Fatalf("help:\n%s", h)
	}
}

func TestRedactEveryForm(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db?password=secret":             "postgres://u@h/db?password=%2A%2A%2A%2A",
		"host=h user=u password=secret dbname=d":        "host=h user=u password=**** dbname=d",
		"host=h password='se cret' dbname=d":            "host=h password=**** dbname=d",
		"nats://tokensecret@h:4222":                     "nats://%2A%2A%2A%2A@h:4222",
		"nats://user:secret@h:4222":                     "nats://user:xxxxx@h:4222",
		"redis://:secret@h:6379/0":                      "redis://:xxxxx@h:6379/0",
		"http://127.0.0.1:8080":                         "http://127.0.0.1:8080",
		"off":                                           "off",
		"":                                              "",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "secret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
