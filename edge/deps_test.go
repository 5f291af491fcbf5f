// Package edge_test holds the dependency rules of the edge and of shared/ (STYLE.md,
// after tailscale's tstest/deptest): no edge package imports the writer, and shared/
// imports neither binary nor any driver. The edge has no code at this level; its packages
// live in the subfolders.
package edge_test

import (
	"testing"

	"github.com/licensing/licensing/internal/deptest"
)

const module = deptest.Module

func TestEdgeDoesNotImportWriter(t *testing.T) {
	deptest.Forbid(t, deptest.List(t, module+"/edge/..."), module+"/writer")
}

func TestSharedImportsNoBinaryAndNoDriver(t *testing.T) {
	deptest.Forbid(t, deptest.List(t, module+"/shared/..."),
		module+"/writer", module+"/edge",
		"github.com/jackc/pgx", "github.com/redis/go-redis", "github.com/nats-io",
		"github.com/valyala/fasthttp", "github.com/dgraph-io/ristretto", "github.com/lib/pq", "net/http")
}
