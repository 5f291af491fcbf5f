package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/syncbuf"
	"github.com/licensing/licensing/shared/envconfig"
	"github.com/licensing/licensing/writer/app"
)

// credentialForms are the shapes a connection setting can take, each holding secret.
var credentialForms = []struct {
	form string
	conn func(secret string) string
}{
	{"URL with a password", func(s string) string { return "postgres://license_app:" + s + "@127.0.0.1:1/licensing?sslmode=disable" }},
	{"password in the URL's query", func(s string) string {
		return "postgres://license_app@127.0.0.1:1/licensing?sslmode=disable&password=" + s
	}},
	{"key=value DSN", func(s string) string {
		return "host=127.0.0.1 port=1 user=license_app password=" + s + " dbname=licensing sslmode=disable"
	}},
	{"key=value DSN, quoted", func(s string) string {
		return `host=127.0.0.1 port=1 user=license_app password='` + s + ` \' ` + s + `' dbname=licensing`
	}},
	{"NATS URL with user and password", func(s string) string { return "nats://writer:" + s + "@127.0.0.1:1" }},
	{"NATS URL with a token", func(s string) string { return "nats://" + s + "@127.0.0.1:1" }},
	{"comma-separated URLs", func(s string) string {
		return "nats://" + s + "@127.0.0.1:1, nats://u:" + s + "@127.0.0.1:2," + s + "@127.0.0.1:3"
	}},
}

// TestStartLogHidesCredentials: the line the writer logs at start with every setting
// holds no credential, whatever form its connection settings take; the whole log of a
// start that fails (no listener: the address is invalid) holds none either.
func TestStartLogHidesCredentials(t *testing.T) {
	if got := envconfig.Unmasked(app.Config{}); len(got) != 0 {
		t.Fatalf("settings holding connection strings or credentials without a mask tag: %v", got)
	}
	for i, f := range credentialForms {
		secret := fmt.Sprintf("Hunter2s%d", i)
		conn := f.conn(secret)
		cfg := app.Config{Addr: "127.0.0.1:bad-port", DatabaseURL: conn, MigrateURL: conn, NATSURL: conn,
			OperatorToken: secret + "op", MaxConns: 1, ShutdownTimeout: time.Second, LogLevel: "info"}
		var out syncbuf.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := app.Run(ctx, cfg, slog.New(slog.NewJSONHandler(&out, nil)), nil); err == nil {
			t.Fatalf("%s: the writer started on an invalid address", f.form)
		}
		log := out.String()
		if strings.Contains(log, secret) {
			t.Errorf("%s: credential in the log:\n%s", f.form, log)
		}
		first, _, _ := strings.Cut(log, "\n")
		var line struct {
			Msg    string
			Config map[string]string
		}
		if err := json.Unmarshal([]byte(first), &line); err != nil || line.Msg != "writer starting" {
			t.Fatalf("%s: first line %q: %v", f.form, first, err)
		}
		for _, k := range []string{"addr", "database_url", "migrate_database_url", "nats_url", "operator_token", "db_max_conns", "log_level"} {
			if _, ok := line.Config[k]; !ok {
				t.Errorf("%s: setting %s missing from the start-up line: %s", f.form, k, first)
			}
		}
		if line.Config["addr"] != cfg.Addr || line.Config["operator_token"] != "****" {
			t.Errorf("%s: start-up line %s", f.form, first)
		}
	}
}

// TestRateLimitSettings: the limits are on by default with API.md's numbers; a bad switch
// or row is refused at start.
func TestRateLimitSettings(t *testing.T) {
	c, _, err := app.FromEnv(nil)
	if err != nil || c.RateLimits != "on" || c.LimitBrand != "50/1s:100" || c.LimitNotFound != "30/10m:30" {
		t.Fatalf("defaults: %q %q %q %v", c.RateLimits, c.LimitBrand, c.LimitNotFound, err)
	}
	for _, bad := range []string{"WRITER_RATE_LIMITS=yes", "WRITER_LIMIT_BRAND=50", "WRITER_LIMIT_UNAUTHORIZED=20/1m:0"} {
		if _, _, err := app.FromEnv([]string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
