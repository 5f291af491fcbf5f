// Package dbtest gives integration tests a fresh Postgres database built from migrations/,
// dropped when the test ends, and the addresses of the other real services that `make test`
// starts (Redis, NATS, the streaming replica).
package dbtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/migrations"
)

// Environment variables set by `make test` (deploy/local/services.sh).
const (
	EnvPG      = "LICENSE_TEST_PG_URL"              // superuser URL of the primary
	EnvReplica = "LICENSE_TEST_REPLICA_URL"         // superuser URL of the streaming replica
	EnvLagging = "LICENSE_TEST_LAGGING_REPLICA_URL" // superuser URL of a replica 300 ms behind
	EnvRedis   = "LICENSE_TEST_REDIS_ADDR"
	EnvNATS    = "LICENSE_TEST_NATS_URL"
	EnvRequire = "LICENSE_TEST_REQUIRE" // "1": a missing service fails instead of skipping
)

// Env returns the value of an environment variable a test needs. When it is unset the test
// is skipped with the reason, unless LICENSE_TEST_REQUIRE=1 (make test sets it), in which
// case it fails.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s is not set; run the tests with `make test`", name)
		}
		t.Skipf("%s is not set: this test needs the real services that `make test` starts", name)
	}
	return v
}

// DB is a fresh migrated database.
type DB struct {
	Name string
	// AdminURL connects as the superuser (owner of the schema).
	AdminURL string
	// AppURL connects as license_app, the writer's role (RLS applies).
	AppURL string
	// ReplicaAppURL connects as license_app to the same database on the replica ("" when
	// the replica is not configured).
	ReplicaAppURL string
	// LaggingAppURL is the same on the replica that applies changes 300 ms late ("" when
	// not configured).
	LaggingAppURL string
	// EdgeURL, ReplicaEdgeURL and LaggingEdgeURL are the same three as license_edge, the
	// edges' read-only role (migrations/00004_edge_role.sql).
	EdgeURL, ReplicaEdgeURL, LaggingEdgeURL string
}

// The application roles (migrations create them without a password). The test URLs give
// each its name as password, what deploy/local/services.sh sets (the test cluster trusts
// loopback connections, so the passwords only matter on a cluster that checks them).
const (
	AppRole  = "license_app"
	EdgeRole = "license_edge"
)

var seq atomic.Int64

// New creates a database named after the test, applies migrations and drops it (forcing
// connections closed) when the test ends.
func New(t testing.TB) DB {
	t.Helper()
	base := Env(t, EnvPG)
	name := fmt.Sprintf("t_%d_%d_%s", os.Getpid(), seq.Add(1), sanitize(t.Name()))
	if len(name) > 60 {
		name = name[:60]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("dbtest: connect %s: %v", EnvPG, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("dbtest: cleanup connect: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
		}
	})
	db := DB{Name: name, AdminURL: withDB(t, base, name, "")}
	if err := migrations.Up(ctx, db.AdminURL); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db.AppURL = withDB(t, base, name, AppRole)
	db.EdgeURL = withDB(t, base, name, EdgeRole)
	if r := os.Getenv(EnvReplica); r != "" {
		db.ReplicaAppURL = withDB(t, r, name, AppRole)
		db.ReplicaEdgeURL = withDB(t, r, name, EdgeRole)
	}
	if r := os.Getenv(EnvLagging); r != "" {
		db.LaggingAppURL = withDB(t, r, name, AppRole)
		db.LaggingEdgeURL = withDB(t, r, name, EdgeRole)
	}
	return db
}

func withDB(t testing.TB, base, db, user string) string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("dbtest: parse url: %v", err)
	}
	u.Path = "/" + db
	if user != "" {
		// the local topologies' password of each role is its name (deploy/local/services.sh)
		u.User = url.UserPassword(user, user)
	}
	return u.String()
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
