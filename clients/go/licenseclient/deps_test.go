package licenseclient_test

import (
	"testing"

	"github.com/licensing/licensing/internal/deptest"
)

// TestClientImportsNothingOfTheService keeps the client standalone: brand backends link
// licenseclient and licenseapi, never the writer, the edges or the service's shared and
// internal packages, so the client could move into a module of its own unchanged.
func TestClientImportsNothingOfTheService(t *testing.T) {
	t.Parallel()
	pkgs := deptest.List(t, deptest.Module+"/clients/go/...")
	deptest.Forbid(t, pkgs, deptest.Module+"/writer", deptest.Module+"/edge", deptest.Module+"/shared",
		deptest.Module+"/internal", deptest.Module+"/loadtest", "go.opentelemetry.io/otel")
}
