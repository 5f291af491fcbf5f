package app

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestFromEnvReadsTheLocalTopologyNames(t *testing.T) {
	env := []string{
		"EDGE_ADDR=127.0.0.1:8082",
		"EDGE_NODE_ID=edge-2",
		"EDGE_REPLICA_URL=postgres://license_edge:s3cret@127.0.0.1:15433/licensing?sslmode=disable",
		"EDGE_PRIMARY_URL=postgres://license_edge:s3cret@127.0.0.1:15432/licensing?sslmode=disable",
		"EDGE_REDIS_ADDR=127.0.0.1:16379",
		"EDGE_NATS_URL=nats://natstoken@127.0.0.1:14222",
		"EDGE_WRITER_URL=http://127.0.0.1:8080",
		"EDGE_REVALIDATE_CEILING=2s",
		"EDGE_L1_BYTES=0",
		"EDGE_REDIS_PASWORD=typo",
		"WRITER_ADDR=not-ours",
	}
	c, unknown, err := FromEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8082" || c.NodeID != "edge-2" || c.RedisAddr != "127.0.0.1:16379" || c.Ceiling != 2*time.Second ||
		c.L1Bytes != 0 || !strings.Contains(c.ReplicaURL, ":15433/") || c.WriterURL != "http://127.0.0.1:8080" {
		t.Fatalf("config %+v", c)
	}
	if len(unknown) != 1 || unknown[0] != "EDGE_REDIS_PASWORD" {
		t.Fatalf("unknown = %v, want the misspelt EDGE_REDIS_PASWORD", unknown)
	}
	// every setting is in the start-up log, credentials masked
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("start", "config", c)
	if strings.Contains(b.String(), "s3cret") || strings.Contains(b.String(), "natstoken") {
		t.Fatalf("credential in the log: %s", b.String())
	}
	var m struct{ Config map[string]string }
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"addr", "replica_url", "nats_url", "l1_bytes", "stale_if_error", "log_level"} {
		if _, ok := m.Config[k]; !ok {
			t.Errorf("setting %s missing from the start-up log: %v", k, m.Config)
		}
	}
}

func TestFromEnvDefaultsAndErrors(t *testing.T) {
	c, _, err := FromEnv(nil)
	if err != nil || c.Ceiling != 30*time.Second || c.L1Bytes <= 0 || c.StaleIfError <= 0 || c.NodeID == "" {
		t.Fatalf("defaults %+v %v", c, err)
	}
	if _, _, err := FromEnv([]string{"EDGE_REVALIDATE_CEILING=soon"}); err == nil || !strings.Contains(err.Error(), "EDGE_REVALIDATE_CEILING") {
		t.Fatalf("bad duration: %v", err)
	}
	for _, bad := range []string{"EDGE_RATE_LIMITS=maybe", "EDGE_KEY_FILTER=yes", "EDGE_LIMIT_STATUS=20/s", "EDGE_LIMIT_NOT_FOUND=0/10m:30"} {
		if _, _, err := FromEnv([]string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if c, _, err := FromEnv(nil); err != nil || c.RateLimits != "on" || c.KeyFilter != "on" {
		t.Fatalf("limits and the key filter are on by default: %q %q %v", c.RateLimits, c.KeyFilter, err)
	}
	if h := Help(); !strings.Contains(h, "EDGE_REVALIDATE_CEILING") || !strings.Contains(h, "30s") || strings.Contains(h, "license_edge:license_edge") || !strings.Contains(h, "license_edge:xxxxx") {
		t.Fatalf("help:\n%s", h)
	}
}
