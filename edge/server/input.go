package server

import (
	"errors"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/requestid"
	"github.com/valyala/fasthttp"
)

// MaxHeadBytes is the contract's bound of a request head (API.md: 16 KiB). It is the
// server's read buffer size: a larger head fails to parse and ErrorHandler answers 431.
const MaxHeadBytes = 16 << 10

// ErrorHandler answers the requests fasthttp refuses before any handler runs (API.md:
// problem+json with X-Request-Id on every binary): a head over the read buffer is 431,
// a body over the server's limit or a malformed request is 400, a read timeout is 408.
// fasthttp also calls it when a new connection carries no byte within the read timeout: a
// client's spare connection it never used. 408 is the answer HTTP clients expect there
// (Go's transport, for one, closes an idle connection that receives a 408 without
// complaint, where a 400 is an "unsolicited response").
func (s *Server) ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	rid := requestid.New()
	ctx.Response.Header.Set("X-Request-Id", rid)
	var small *fasthttp.ErrSmallBuffer
	var timeout interface{ Timeout() bool }
	switch {
	case errors.As(err, &small):
		s.problem(ctx, rid, &problem.Error{Kind: problem.InvalidRequest, Reason: problem.HeadTooLarge,
			Detail: "request head: larger than 16 KiB"})
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.problem(ctx, rid, problem.Invalid("body", "too large"))
	case errors.As(err, &timeout) && timeout.Timeout():
		s.problem(ctx, rid, &problem.Error{Kind: problem.InvalidRequest, Reason: problem.TimedOut,
			Detail: "request: not received in time"})
	default:
		s.problem(ctx, rid, problem.Invalid("request", "malformed HTTP request"))
	}
	s.m.Requests.WithLabelValues("refused", "4xx").Observe(0)
}

// checkInput enforces the strict-input rules on what a public request carries besides
// its body (which the writer checks): valid text in the (decoded) path and in every query
// name and value (UTF-8, no control character).
func checkInput(ctx *fasthttp.RequestCtx, path string) error {
	if err := license.CheckText(path); err != nil {
		return problem.Invalid("path", "%v", err)
	}
	for k, v := range ctx.QueryArgs().All() {
		if err := license.CheckTextBytes(k); err != nil {
			return problem.Invalid("query", "%v", err)
		}
		if err := license.CheckTextBytes(v); err != nil {
			return problem.Invalid(string(k), "%v", err)
		}
	}
	return nil
}
