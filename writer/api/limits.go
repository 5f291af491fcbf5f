package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/licensing/licensing/internal/ratelimit"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/writer/licensing"
)

// Limits are API.md's rate limits on the writer. Every policy is a row of its table; the
// per-IP rows count the resolved client address (Config.Trusted).
type Limits struct {
	Limiter *ratelimit.Limiter
	// Brand is the default budget of each brand API key (a brand's own limit, set with
	// PATCH /v1/brands/{slug}, replaces it).
	Brand ratelimit.Policy
	// Status and PublicWrite are per client IP; NotFound counts public 404 answers and
	// Unauthorized counts 401 answers, each looked at before the next request.
	Status, PublicWrite, NotFound, Unauthorized ratelimit.Policy
}

// DefaultLimits are API.md's defaults.
func DefaultLimits() Limits {
	return Limits{Brand: ratelimit.Brand, Status: ratelimit.Status, PublicWrite: ratelimit.PublicWrite,
		NotFound: ratelimit.NotFound, Unauthorized: ratelimit.Unauthorized}
}

// take charges n (0: looks) to key's budget under p and, when refused, answers 429 with
// Retry-After. headers: the answer carries the row's RateLimit-Policy and RateLimit.
func (s *Server) take(w http.ResponseWriter, r *http.Request, p ratelimit.Policy, key string, n int, headers bool) (refused bool) {
	l := s.cfg.Limits
	if l == nil {
		return false
	}
	d := l.Limiter.Take(r.Context(), p, key, n)
	if headers || !d.Allowed {
		w.Header().Set("RateLimit-Policy", p.PolicyHeader())
		w.Header().Set("RateLimit", d.Header())
	}
	if d.Allowed {
		return false
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	s.m.limited.WithLabelValues(route, p.Name).Inc()
	w.Header().Set("Retry-After", strconv.Itoa(d.RetryAfterSeconds()))
	s.problem(w, r, problem.New(problem.RateLimited, "rate limit %q exceeded; retry after %d s", p.Name, d.RetryAfterSeconds()))
	return true
}

// charge records an answer that counts against a budget after it was given (404, 401).
func (s *Server) charge(r *http.Request, p ratelimit.Policy, key string) {
	if l := s.cfg.Limits; l != nil {
		l.Limiter.Take(r.Context(), p, key, 1)
	}
}

// brandPolicy is the budget of a brand API key: the brand's own limit or the default.
func (l *Limits) brandPolicy(p *licensing.Principal) ratelimit.Policy {
	pol := l.Brand
	if rl := p.RateLimit; rl != nil {
		pol.Rate, pol.Period, pol.Burst = rl.PerSecond, time.Second, rl.Burst
	}
	return pol
}
