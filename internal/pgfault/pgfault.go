// Package pgfault classifies Postgres errors for the writer (503 versus 500) and the
// edge (whether a tier's circuit breaker counts a failure): a failure to reach or be
// served by Postgres, as opposed to a query that is wrong or a row that conflicts.
package pgfault

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// Unavailable reports whether err means Postgres could not be reached or would not serve
// (rather than a query that is wrong): a failed connection or a connection lost mid-way
// (class 08, pgconn's connect and safe-to-retry errors, network errors, a timeout), a
// server shutting down or starting up (57P01–57P03), too many connections (53300) or
// another lack of resources (class 53), a pool that could not hand out a connection in
// time.
func Unavailable(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return strings.HasPrefix(pg.Code, "08") || strings.HasPrefix(pg.Code, "53") ||
			pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, puddle.ErrClosedPool) || strings.Contains(err.Error(), "conn closed")
}
