package app

import (
	"context"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/syncbuf"
	"github.com/licensing/licensing/shared/lease"
	"github.com/prometheus/client_golang/prometheus"
)

// TestStartLogHidesTheSigningKey: an inline signing key is masked in the start-up line
// and appears nowhere in the log, also when it is malformed and the start fails on it;
// without a key the node warns that its leases will not outlive it, naming the variable
// to set.
func TestStartLogHidesTheSigningKey(t *testing.T) {
	priv, err := lease.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	seed := base64.StdEncoding.EncodeToString(priv.Seed())
	for _, c := range []struct {
		name, key string
		started   bool // the signer was built (the start then fails on the address)
	}{
		{"valid-seed", seed, true},
		{"malformed-seed", seed[:20] + "!!" + seed[22:], false},
		{"seed-of-wrong-length", seed[:30], false},
		{"no-key", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Addr: "127.0.0.1:bad-port", NodeID: "t", ReplicaURL: "off", PrimaryURL: "off", RedisAddr: "off",
				NATSURL: "off", WriterURL: "off", SigningKey: c.key, ShutdownTimeout: time.Second, Registry: prometheus.NewRegistry()}
			var out syncbuf.Buffer
			err := Run(context.Background(), cfg, slog.New(slog.NewJSONHandler(&out, nil)), nil)
			log := out.String()
			if err == nil {
				t.Fatal("started on an invalid address")
			}
			if c.key != "" && (strings.Contains(log, c.key) || strings.Contains(err.Error(), c.key)) {
				t.Errorf("key material in the log or error %v:\n%s", err, log)
			}
			if c.key != "" && !strings.Contains(log, `"signing_key":"****"`) {
				t.Errorf("signing_key not masked in the start-up line:\n%s", log)
			}
			if built := strings.Contains(log, `"msg":"status leases"`); built != c.started {
				t.Errorf("signer built %v, want %v (err %v):\n%s", built, c.started, err, log)
			}
			if !c.started && !strings.Contains(err.Error(), "EDGE_SIGNING_KEY") {
				t.Errorf("error %v does not name EDGE_SIGNING_KEY", err)
			}
			if ephemeral := strings.Contains(log, "ephemeral key") && strings.Contains(log, "EDGE_SIGNING_KEY_FILE"); ephemeral != (c.key == "") {
				t.Errorf("ephemeral-key warning %v, want %v:\n%s", ephemeral, c.key == "", log)
			}
		})
	}
}

func TestFromEnvReadsTheLeaseSettings(t *testing.T) {
	c, unknown, err := FromEnv([]string{"EDGE_SIGNING_KEY_FILE=/keys/edge.pem", "EDGE_JWKS_FILE=/keys/jwks.json",
		"EDGE_LEASE_ISSUER=https://licenses.example", "EDGE_LEASE_DURATION=24h"})
	if err != nil || len(unknown) != 0 {
		t.Fatal(err, unknown)
	}
	if c.SigningKeyFile != "/keys/edge.pem" || c.JWKSFile != "/keys/jwks.json" || c.LeaseIssuer != "https://licenses.example" ||
		c.LeaseDuration != 24*time.Hour {
		t.Fatalf("%+v", c)
	}
	if c, _, _ := FromEnv(nil); c.LeaseIssuer != "urn:license-service" || c.LeaseDuration != 72*time.Hour || c.LeaseGranularity != time.Second {
		t.Fatalf("defaults %q %v %v", c.LeaseIssuer, c.LeaseDuration, c.LeaseGranularity)
	}
	if _, _, err := FromEnv([]string{"EDGE_LEASE_DURATION=3 days"}); err == nil || !strings.Contains(err.Error(), "EDGE_LEASE_DURATION") {
		t.Fatalf("bad duration: %v", err)
	}
	if c, _, err := FromEnv([]string{"EDGE_LEASE_IAT_GRANULARITY=10s"}); err != nil || c.LeaseGranularity != 10*time.Second {
		t.Fatalf("granularity: %v %v", c.LeaseGranularity, err)
	}
	for _, bad := range []string{"500ms", "1500ms", "2m", "0s"} {
		if _, _, err := FromEnv([]string{"EDGE_LEASE_IAT_GRANULARITY=" + bad}); err == nil || !strings.Contains(err.Error(), "EDGE_LEASE_IAT_GRANULARITY") {
			t.Errorf("granularity %s: %v", bad, err)
		}
	}
}
