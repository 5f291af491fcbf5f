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
	for _, c := range []struct{ form, in, want string }{
		{"URL with a password", "postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"URL with an empty user", "redis://:secret@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"URL with a comma in the password", "postgres://u:sec,ret@h/db", "postgres://u:xxxxx@h/db"},
		{"URL with an @ in the password", "postgres://u:sec@ret@h/db", "postgres://u:xxxxx@h/db"},
		{"URL with an @ in the user", "postgres://u@secret@h/db", "postgres://****"},
		{"URL with a percent-encoded password", "postgres://u:se%2Fcret@h/db", "postgres://u:xxxxx@h/db"},
		{"multi-host Postgres URL", "postgres://u:secret@h1:5432,h2:5432/db?target_session_attrs=read-write",
			"postgres://u:xxxxx@h1:5432,h2:5432/db?target_session_attrs=read-write"},
		{"password in the query", "postgres://u@h/db?password=secret", "postgres://u@h/db?password=****"},
		{"password in the query, among others", "postgres://h/db?sslmode=disable&user=u&password=secret&connect_timeout=5",
			"postgres://h/db?sslmode=disable&user=u&password=****&connect_timeout=5"},
		{"sslpassword in the query", "postgres://u@h/db?sslpassword=secret", "postgres://u@h/db?sslpassword=****"},
		{"badly escaped password in the query", "postgres://u@h/db?password=secret%zz&sslmode=disable", "postgres://u@h/db?password=****&sslmode=disable"},
		{"token in the query", "http://h:8080/x?token=secret", "http://h:8080/x?token=****"},
		{"query with an escaped name", "postgres://h/db?pass%77ord=secret", "postgres://h/db?pass%77ord=****"},
		{"URL that does not parse", "postgres://u:secret@h:port/db", "postgres://****"},
		{"key=value DSN", "host=h user=u password=secret dbname=d", "host=h user=u password=**** dbname=d"},
		{"key=value DSN, quoted", "host=h password='se cret' dbname=d", "host=h password=**** dbname=d"},
		{"key=value DSN, quoted with an escaped quote", `host=h password='se\' cret' dbname=d`, "host=h password=**** dbname=d"},
		{"key=value DSN, escaped space", `host=h password=se\ cret dbname=d`, "host=h password=**** dbname=d"},
		{"key=value DSN, spaces around =", "host=h password = secret dbname=d", "host=h password = **** dbname=d"},
		{"key=value DSN, upper case, first", "PASSWORD=secret host=h", "PASSWORD=**** host=h"},
		{"key=value DSN, sslpassword", "host=h sslpassword=secret", "host=h sslpassword=****"},
		{"key=value DSN, unterminated quote", "host=h password='secret dbname=d", "host=h password=****"},
		{"key=value DSN, double quotes and ;", `Server=h;Password="se cret";Database=d`, `Server=h;Password=****;Database=d`},
		{"NATS URL with user and password", "nats://user:secret@h:4222", "nats://user:xxxxx@h:4222"},
		{"NATS URL with a token", "nats://secret@h:4222", "nats://%2A%2A%2A%2A@h:4222"},
		{"NATS URL list with tokens", "nats://secret@h1:4222, nats://secret@h2:4222", "nats://%2A%2A%2A%2A@h1:4222, nats://%2A%2A%2A%2A@h2:4222"},
		{"NATS list, tokens without schemes after the first", "nats://secret@h1:4222,secret@h2:4222,h3:4222",
			"nats://%2A%2A%2A%2A@h1:4222,%2A%2A%2A%2A@h2:4222,h3:4222"},
		{"NATS URL with a comma in the password", "nats://u:sec,ret@h:4222", "nats://****,%2A%2A%2A%2A@h:4222"},
		{"URL list", "http://u:secret@w1:8080,http://w2:8080,https://w3/?token=secret",
			"http://u:xxxxx@w1:8080,http://w2:8080,https://w3/?token=****"},
		{"user:password@host without a scheme", "u:secret@h:6379", "u:xxxxx@h:6379"},
		{"URL without credentials", "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"Postgres URL with a user only", "postgres://license_edge@h/db", "postgres://license_edge@h/db"},
		{"host:port", "127.0.0.1:16379", "127.0.0.1:16379"},
		{"off", "off", "off"},
		{"empty", "", ""},
	} {
		got := Redact(c.in)
		if got != c.want || strings.Contains(got, "secret") || strings.Contains(got, "cret") {
			t.Errorf("%s: Redact(%q) = %q, want %q", c.form, c.in, got, c.want)
		}
	}
}

// TestLogValueMasksEveryForm: the JSON of the start-up log holds no credential, whatever
// form each URL or DSN setting takes, and every setting is in it.
type connConfig struct {
	DB       string   `env:"DATABASE_URL" mask:"url"`
	Migrate  string   `env:"MIGRATE_DATABASE_URL" mask:"url"`
	NATS     string   `env:"NATS_URL" mask:"url"`
	Writers  string   `env:"WRITER_URL" mask:"url"`
	Redis    string   `env:"REDIS_ADDR" mask:"url"`
	List     []string `env:"PEERS" mask:"url"`
	Password string   `env:"REDIS_PASSWORD" mask:"secret"`
	Level    string   `env:"LOG_LEVEL"`
}

func TestLogValueMasksEveryForm(t *testing.T) {
	c := connConfig{
		DB:       "postgres://app:hunter2a@db:5432/x?sslmode=disable&sslpassword=hunter2b",
		Migrate:  `host=db user=owner password='hunter2c \' x' dbname=x`,
		NATS:     "nats://hunter2d@n1:4222,nats://u:hunter2e@n2:4222",
		Writers:  "http://w1:8080,http://op:hunter2f@w2:8080",
		Redis:    ":hunter2g@r:6379",
		List:     []string{"nats://hunter2h@a", "postgres://u@b/x?password=hunter2i"},
		Password: "hunter2j",
		Level:    "info",
	}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("start", "config", LogValue(c))
	if strings.Contains(b.String(), "hunter2") {
		t.Fatalf("credential in the log line: %s", b.String())
	}
	for _, k := range []string{"database_url", "migrate_database_url", "nats_url", "writer_url", "redis_addr", "peers", "redis_password", "log_level"} {
		if !strings.Contains(b.String(), `"`+k+`":`) {
			t.Errorf("setting %s missing: %s", k, b.String())
		}
	}
	if got := Unmasked(c); len(got) != 0 {
		t.Errorf("Unmasked = %v", got)
	}
	type leaky struct {
		Addr   string `env:"ADDR"`
		DB     string `env:"DATABASE_URL"`
		Redis  string `env:"REDIS_ADDR" mask:"url"`
		Token  string `env:"OPERATOR_TOKEN"`
		Secret string `env:"HMAC_SECRET" mask:"secret"`
	}
	if got := Unmasked(leaky{}); len(got) != 2 || got[0] != "DATABASE_URL" || got[1] != "OPERATOR_TOKEN" {
		t.Errorf("Unmasked = %v, want DATABASE_URL and OPERATOR_TOKEN", got)
	}
}
