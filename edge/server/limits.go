package server

import (
	"context"
	"net/netip"
	"strconv"

	"github.com/licensing/licensing/internal/ratelimit"
	"github.com/licensing/licensing/shared/problem"
	"github.com/valyala/fasthttp"
)

// Limits are API.md's per-IP rows on the edge: status checks, public writes (relayed
// writes are charged here only; the writer trusts the edge and does not charge them
// again) and public 404 answers (key guessing), looked at before every public request.
type Limits struct {
	Limiter                       *ratelimit.Limiter
	Status, PublicWrite, NotFound ratelimit.Policy
}

// clientIP is the request's client address: the peer, or the right-most untrusted
// X-Forwarded-For entry when the peer is a trusted proxy.
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) string {
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	if s.cfg.Trusted.Empty() {
		return peer.Unmap().String()
	}
	var xff []string
	for _, v := range ctx.Request.Header.PeekAll("X-Forwarded-For") {
		xff = append(xff, string(v))
	}
	ip, _ := s.cfg.Trusted.Resolve(peer, xff)
	return ip.String()
}

// admit applies the 404 budget (looked at) and the route's row (charged: public writes
// or status checks) to ip; a refused request is answered 429 here. Every answer of a
// limited route carries the row's headers.
func (s *Server) admit(ctx *fasthttp.RequestCtx, rid, route, ip string, write bool) bool {
	l := s.cfg.Limits
	if l == nil {
		return true
	}
	row := l.Status
	if write {
		row = l.PublicWrite
	}
	// key guessing: past the 404 budget every public request is refused, known keys
	// included (answering those would make the block an oracle)
	if d := l.Limiter.Take(context.Background(), l.NotFound, ip, 0); !d.Allowed {
		s.refuse(ctx, rid, route, d)
		return false
	}
	d := l.Limiter.Take(context.Background(), row, ip, 1)
	if !d.Allowed {
		s.refuse(ctx, rid, route, d)
		return false
	}
	ctx.Response.Header.Set("RateLimit-Policy", row.PolicyHeader())
	ctx.Response.Header.Set("RateLimit", d.Header())
	return true
}

func (s *Server) refuse(ctx *fasthttp.RequestCtx, rid, route string, d ratelimit.Decision) {
	s.m.RateLimited.WithLabelValues(route, d.Policy.Name).Inc()
	ctx.Response.Header.Set("RateLimit-Policy", d.Policy.PolicyHeader())
	ctx.Response.Header.Set("RateLimit", d.Header())
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(d.RetryAfterSeconds()))
	s.problem(ctx, rid, problem.New(problem.RateLimited, "rate limit %q exceeded; retry after %d s", d.Policy.Name, d.RetryAfterSeconds()))
}

// afterPublic charges a 404 answer (ours or the writer's) to ip's 404 budget.
func (s *Server) afterPublic(ctx *fasthttp.RequestCtx, ip string) {
	if l := s.cfg.Limits; l != nil && ctx.Response.StatusCode() == fasthttp.StatusNotFound {
		l.Limiter.Take(context.Background(), l.NotFound, ip, 1)
	}
}
