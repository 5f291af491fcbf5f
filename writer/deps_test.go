// Package writer_test holds the dependency rules of the writer (STYLE.md): the domain,
// writer/licensing, imports no transport and no driver — neither net/http, nor pgx, nor
// NATS — and no writer package imports the edge. The writer's packages live in the
// subfolders.
package writer_test

import (
	"testing"

	"github.com/licensing/licensing/internal/deptest"
)

const module = deptest.Module

func TestDomainImportsNoTransportAndNoDriver(t *testing.T) {
	deptest.Forbid(t, deptest.List(t, module+"/writer/licensing"),
		"net/http", "github.com/jackc/pgx", "github.com/nats-io", "github.com/redis/go-redis", "github.com/valyala/fasthttp",
		"github.com/riverqueue", module+"/writer/api", module+"/writer/postgres", module+"/writer/webhook")
}

func TestWriterDoesNotImportEdge(t *testing.T) {
	deptest.Forbid(t, deptest.List(t, module+"/writer/..."), module+"/edge")
}

func TestProductionWriterDoesNotLinkTheOpenAPIValidator(t *testing.T) {
	deptest.Forbid(t, deptest.List(t, module+"/writer/cmd/writer"),
		module+"/writer/openapi/openapitest", "github.com/pb33f/libopenapi-validator")
}
