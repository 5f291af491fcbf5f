package app

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
	"github.com/prometheus/client_golang/prometheus"
)

// credentialForms are the shapes a connection setting can take, each holding secret.
var credentialForms = []struct {
	form string
	conn func(secret string) string
}{
	{"URL with a password", func(s string) string {
		return "postgres://license_edge:" + s + "@127.0.0.1:1/licensing?sslmode=disable"
	}},
	{"password in the URL's query", func(s string) string {
		return "postgres://license_edge@127.0.0.1:1/licensing?sslmode=disable&password=" + s
	}},
	{"key=value DSN", func(s string) string {
		return "host=127.0.0.1 port=1 user=license_edge password=" + s + " dbname=licensing sslmode=disable"
	}},
	{"key=value DSN, quoted", func(s string) string {
		return `host=127.0.0.1 port=1 user=license_edge password='` + s + ` \' ` + s + `' dbname=licensing`
	}},
	{"NATS URL with user and password", func(s string) string { return "nats://edge:" + s + "@127.0.0.1:1" }},
	{"NATS URL with a token", func(s string) string { return "nats://" + s + "@127.0.0.1:1" }},
	{"comma-separated URLs", func(s string) string {
		return "http://op:" + s + "@127.0.0.1:1, http://127.0.0.1:2/?token=" + s + ",https://" + s + "@127.0.0.1:3"
	}},
}

// TestStartLogHidesCredentials: the line the edge logs at start with every setting holds
// no credential, whatever form its connection settings take (EDGE_WRITER_URL is a
// comma-separated list); the whole log of a start that fails (no listener: the address
// is invalid) holds none either.
func TestStartLogHidesCredentials(t *testing.T) {
	if got := envconfig.Unmasked(Config{}); len(got) != 0 {
		t.Fatalf("settings holding connection strings or credentials without a mask tag: %v", got)
	}
	for i, f := range credentialForms {
		secret := fmt.Sprintf("Hunter2s%d", i)
		conn := f.conn(secret)
		cfg := Config{Addr: "127.0.0.1:bad-port", NodeID: "t", ReplicaURL: conn, PrimaryURL: conn, RedisAddr: conn,
			RedisPass: secret + "redis", NATSURL: conn, WriterURL: conn, DBMaxConns: 1, DBTimeout: time.Second,
			ShutdownTimeout: time.Second, LogLevel: "info", Registry: prometheus.NewRegistry()}
		var out syncbuf.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Run(ctx, cfg, slog.New(slog.NewJSONHandler(&out, nil)), nil); err == nil {
			t.Fatalf("%s: the edge started on an invalid address", f.form)
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
		if err := json.Unmarshal([]byte(first), &line); err != nil || line.Msg != "edge starting" {
			t.Fatalf("%s: first line %q: %v", f.form, first, err)
		}
		for _, k := range []string{"addr", "replica_url", "primary_url", "redis_addr", "redis_password", "nats_url", "writer_url", "log_level"} {
			if _, ok := line.Config[k]; !ok {
				t.Errorf("%s: setting %s missing from the start-up line: %s", f.form, k, first)
			}
		}
		if line.Config["redis_password"] != "****" {
			t.Errorf("%s: start-up line %s", f.form, first)
		}
	}
}
