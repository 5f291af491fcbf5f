package app

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestFromEnvReadsTheLocalTopologyNames(t *testing.T) {
	for k, v := range map[string]string{
		"EDGE_ADDR":               "127.0.0.1:8082",
		"EDGE_NODE_ID":            "edge-2",
		"EDGE_REPLICA_URL":        "postgres://license_app:license_app@127.0.0.1:15433/licensing?sslmode=disable",
		"EDGE_PRIMARY_URL":        "postgres://license_app:license_app@127.0.0.1:15432/licensing?sslmode=disable",
		"EDGE_REDIS_ADDR":         "127.0.0.1:16379",
		"EDGE_NATS_URL":           "nats://127.0.0.1:14222",
		"EDGE_WRITER_URL":         "http://127.0.0.1:8080",
		"EDGE_REVALIDATE_CEILING": "2s",
		"EDGE_L1_BYTES":           "0",
	} {
		t.Setenv(k, v)
	}
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8082" || c.NodeID != "edge-2" || c.RedisAddr != "127.0.0.1:16379" || c.Ceiling != 2*time.Second ||
		c.L1Bytes != 0 || !strings.Contains(c.ReplicaURL, ":15433/") || c.WriterURL != "http://127.0.0.1:8080" {
		t.Fatalf("config %+v", c)
	}
	// secrets are masked in the start-up log
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("start", "config", c)
	if strings.Contains(b.String(), "license_app:license_app") {
		t.Fatalf("password in the log: %s", b.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
}

func TestFromEnvDefaultsAndErrors(t *testing.T) {
	c, err := FromEnv()
	if err != nil || c.Ceiling != 30*time.Second || c.L1Bytes <= 0 || c.StaleIfError <= 0 {
		t.Fatalf("defaults %+v %v", c, err)
	}
	t.Setenv("EDGE_REVALIDATE_CEILING", "soon")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "EDGE_REVALIDATE_CEILING") {
		t.Fatalf("bad duration: %v", err)
	}
}
