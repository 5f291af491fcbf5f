// Package server is the edge's HTTP surface on fasthttp: the public status check (US4)
// answered from the read tiers, plain or signed as an offline lease (Accept:
// application/jose), the public writes relayed to the writer, the lease keys at
// /.well-known/jwks.json, and /healthz, /readyz and /metrics. Every response carries
// X-Request-Id; errors are problem+json.
package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/edge/source"
	"github.com/licensing/licensing/internal/clientip"
	"github.com/licensing/licensing/internal/cors"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Relayer forwards a public write to the writer (relay.Client).
type Relayer interface {
	// Forward writes the writer's answer into ctx's response, or returns an error having
	// written nothing.
	// clientIP is the resolved client address, forwarded as X-Forwarded-For.
	Forward(ctx *fasthttp.RequestCtx, requestID, clientIP string) error
}

// Config tunes the handlers.
type Config struct {
	// StatusMaxAge is the Cache-Control max-age of a status answer, capped by the nearest
	// expiry of a valid license in it.
	StatusMaxAge time.Duration
	// NotFoundMaxAge is the max-age of a 404 status answer.
	NotFoundMaxAge time.Duration
	// MaxBodyBytes bounds a relayed body (default 64 KiB, API.md).
	MaxBodyBytes int
	// Limits are API.md's per-IP rate limits on the public endpoints (nil: none).
	Limits *Limits
	// Trusted are the proxies (an ingress, a load balancer) whose X-Forwarded-For names
	// the client.
	Trusted clientip.Trusted
	// Signer signs status answers asked for as application/jose and publishes its key set
	// at /.well-known/jwks.json (nil: plain answers only, no key set).
	Signer *lease.Signer
	// SignedCacheEntries bounds the cache of signed answers (DefaultSignedCacheEntries
	// when 0).
	SignedCacheEntries int
	// LeaseGranularity is the resolution of a signed answer's iat (whole seconds;
	// lease.Granularity when 0): the same question about the same key version within one
	// granule is answered with one signature.
	LeaseGranularity time.Duration
	// CORS are the origins whose pages may call the edge (the zero value: none; cors.go).
	CORS cors.Origins
	// StreamSilence says how long the node has applied no relay heartbeat (nil: no event
	// stream). Past StaleWithoutStream every answer is marked stale, whatever tier it
	// came from: the node is cut off from the centre (a partition leaves the region's
	// Redis and replica answering with data that stopped at the cut), so it cannot vouch
	// for the freshness bound.
	StreamSilence      func() time.Duration
	StaleWithoutStream time.Duration
}

// Server holds the handlers' dependencies.
type Server struct {
	src     source.Source
	relay   Relayer
	ready   func(context.Context) error
	metrics fasthttp.RequestHandler
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	m       *metrics.Metrics
	// wasReady is set once a readiness check has passed or a fresh answer was served.
	wasReady atomic.Bool
	// signed caches signed answers within an iat granule; signedHit and signedMiss count
	// them (nil without a signer).
	signed                *signedCache
	signedHit, signedMiss prometheus.Counter
}

// New returns the server. relay may be nil (writes answer 503); ready may be nil.
func New(src source.Source, relay Relayer, ready func(context.Context) error, metricsHandler fasthttp.RequestHandler,
	cfg Config, now func() time.Time, log *slog.Logger, m *metrics.Metrics) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	// iat is whole seconds (a JWT NumericDate), and so is checked_at = iat
	cfg.LeaseGranularity = max(cfg.LeaseGranularity.Truncate(time.Second), lease.Granularity)
	s := &Server{src: src, relay: relay, ready: ready, metrics: metricsHandler, cfg: cfg, now: now, log: log, m: m}
	if cfg.Signer != nil {
		s.signed = newSignedCache(cfg.SignedCacheEntries)
		s.signedHit, s.signedMiss = m.Signed.WithLabelValues("hit"), m.Signed.WithLabelValues("miss")
	}
	return s
}

const publicPrefix = "/v1/public/"

// jwksPath serves the JWK Set that verifies signed answers; clients may keep it 5 minutes.
const (
	jwksPath         = "/.well-known/jwks.json"
	jwksCacheControl = "max-age=300"
)

// Handler is the fasthttp entry point.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	rid := requestid.Or(string(ctx.Request.Header.Peek("X-Request-Id")))
	ctx.Response.Header.Set("X-Request-Id", rid)
	route := s.route(ctx, rid)
	if route != "preflight" {
		s.corsHeaders(ctx) // after the route: it adds to the Vary the status answer sets
	}
	code := ctx.Response.StatusCode()
	s.m.Requests.WithLabelValues(route, strconv.Itoa(code/100)+"xx").Observe(time.Since(start).Seconds())
	if code >= 500 {
		s.log.Warn("request failed", "request_id", rid, "route", route, "status", code,
			"duration", time.Since(start))
	}
}

func (s *Server) route(ctx *fasthttp.RequestCtx, rid string) string {
	path := string(ctx.Path())
	method := string(ctx.Method())
	if s.preflight(ctx, method) {
		return "preflight"
	}
	switch path {
	case "/healthz":
		if s.allow(ctx, rid, method, "GET") {
			writeJSON(ctx, http.StatusOK, map[string]string{"status": "ok"})
		}
		return "healthz"
	case "/readyz":
		if s.allow(ctx, rid, method, "GET") {
			s.readyz(ctx, rid)
		}
		return "readyz"
	case "/metrics":
		if s.allow(ctx, rid, method, "GET") && s.metrics != nil {
			s.metrics(ctx)
		}
		return "metrics"
	case jwksPath:
		if s.cfg.Signer == nil {
			break
		}
		if s.allow(ctx, rid, method, "GET") {
			ctx.Response.Header.Set("Cache-Control", jwksCacheControl)
			ctx.SetContentType("application/json")
			ctx.SetBody(s.cfg.Signer.JWKS())
		}
		return "jwks"
	}
	rest, ok := strings.CutPrefix(path, publicPrefix)
	if !ok {
		s.problem(ctx, rid, problem.New(problem.NotFound, "no such endpoint"))
		return "other"
	}
	if err := checkInput(ctx, path); err != nil {
		s.problem(ctx, rid, err)
		return "invalid"
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 4 && parts[1] == "licenses" && parts[3] == "status":
		if s.allow(ctx, rid, method, "GET") {
			ip := "" // only the limits need it: no allocation on the path without them
			if s.cfg.Limits != nil {
				ip = s.clientIP(ctx)
			}
			if s.admit(ctx, rid, "status", ip, false) {
				s.status(ctx, rid, parts[0], parts[2])
				s.afterPublic(ctx, ip)
			}
		}
		return "status"
	case len(parts) == 2 && (parts[1] == "activations" || parts[1] == "deactivations"):
		if s.allow(ctx, rid, method, "POST") {
			ip := s.clientIP(ctx)
			if s.admit(ctx, rid, parts[1], ip, true) {
				s.forward(ctx, rid, parts[1], ip)
				s.afterPublic(ctx, ip)
			}
		}
		return parts[1]
	}
	s.problem(ctx, rid, problem.New(problem.NotFound, "no such endpoint"))
	return "other"
}

func (s *Server) allow(ctx *fasthttp.RequestCtx, rid, method, want string) bool {
	if method == want || (want == "GET" && method == "HEAD") {
		return true
	}
	ctx.Response.Header.Set("Allow", want)
	s.problem(ctx, rid, problem.New(problem.MethodNotAllowed, "use %s", want))
	return false
}

// readyz is 503 until a data tier has answered once since start (a passing check or a
// fresh status answer). After that the node stays
// in rotation whatever fails below it — it can still answer from L1, marked stale, which
// beats every edge leaving the load balancer at once in a shared outage — and reports
// "degraded" with the failing check.
func (s *Server) readyz(ctx *fasthttp.RequestCtx, rid string) {
	if s.ready != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.ready(rctx); err != nil {
			if !s.wasReady.Load() {
				s.problem(ctx, rid, problem.New(problem.Unavailable, "not ready: %v", err))
				return
			}
			writeJSON(ctx, http.StatusOK, map[string]string{"status": "degraded", "detail": err.Error()})
			return
		}
	}
	s.wasReady.Store(true)
	writeJSON(ctx, http.StatusOK, map[string]string{"status": "ready"})
}

// status answers US4 (API.md): the snapshot from the tiers, evaluated now; signed
// (signedStatus) when the client accepts application/jose. Either representation, and
// every problem, carries Vary: Accept.
func (s *Server) status(ctx *fasthttp.RequestCtx, rid, brand, rawKey string) {
	ctx.Response.Header.Set("Vary", "Accept")
	key := license.NormalizeKey(rawKey)
	notFound := errLicenseNotFound
	if !license.ValidSlug(brand) || !license.ValidKey(key) {
		// an impossible key never reaches a backend
		s.problem(ctx, rid, notFound)
		return
	}
	args := ctx.QueryArgs()
	product := string(args.Peek("product"))
	instance := string(args.Peek("instance"))
	if instance != "" {
		n, err := license.NormalizeInstance(instance)
		if err != nil {
			s.problem(ctx, rid, problem.Invalid("instance", "%v", err))
			return
		}
		instance = n
	}
	// no per-request deadline here: every tier bounds its own calls (L1 fills, Redis and
	// Postgres timeouts), and a timer per request costs more than an L1 hit
	r, err := s.src.Get(context.Background(), brand, key)
	var inst *license.Instance
	stale := r.Stale
	if !stale && s.cutOff() {
		stale = true
		s.m.StaleServed.Inc()
	}
	if err == nil && r.Found && instance != "" {
		var ir source.InstanceResult
		ir, err = s.src.Instance(context.Background(), brand, key, instance)
		if err == nil && ir.Found {
			inst, stale = &ir.Instance, stale || ir.Stale
		} else if err == nil {
			// the tiers refuse an instance entry older than the key they know, so this
			// is a race with nothing to answer from: unavailable, never a 404
			err = fmt.Errorf("instance entry of a key the state tier knows: %w", source.ErrUnavailable)
		}
	}
	if err != nil {
		s.log.Warn("status lookup failed", "request_id", rid, "key", license.KeyDigest(key), "err", err)
		ctx.Response.Header.Set("Retry-After", "1")
		s.problem(ctx, rid, problem.New(problem.Unavailable, "license data is temporarily unavailable"))
		return
	}
	ctx.Response.Header.Set("X-Cache", r.Tier)
	if stale {
		ctx.Response.Header.Set("X-Cache-Stale", "true")
		ctx.Response.Header.Set("Warning", `110 - "Response is Stale"`)
	}
	if !r.Found {
		status, body := renderProblem(notFound, rid)
		ctx.Response.Header.Set("Cache-Control", "max-age="+strconv.Itoa(int(s.cfg.NotFoundMaxAge/time.Second)))
		ctx.SetContentType(problemContentType)
		ctx.SetStatusCode(status)
		ctx.SetBody(body)
		return
	}
	now := s.now()
	ctx.Response.Header.Set("X-License-Version", strconv.FormatInt(r.State.Version, 10))
	if s.signed != nil && lease.AcceptsJOSE(ctx.Request.Header.Peek("Accept")) {
		s.signedStatus(ctx, &r, inst, stale, key, product, instance, now)
		return
	}
	out := r.State.Evaluate(product, inst, now)
	age := 0
	if !stale {
		age = license.CacheMaxAge(s.cfg.StatusMaxAge, out, now)
		if !s.wasReady.Load() {
			s.wasReady.Store(true) // a tier answered: this node has served fresh data
		}
	}
	ctx.Response.Header.Set("Cache-Control", "max-age="+strconv.Itoa(age))
	buf := bodyPool.Get().(*[]byte)
	*buf = out.AppendJSON((*buf)[:0])
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetBody(*buf) // copies
	bodyPool.Put(buf)
}

// signedStatus answers with a lease: the answer evaluated now and signed with iat (and
// checked_at) now truncated to the granularity, or the token signed for the same
// question about the same state earlier in that granule, unless a license it calls valid
// has expired since. Its headers are the plain answer's; a stale answer is signed too
// (X-Cache-Stale says so) and its exp is still iat + the lease: the lease vouches for
// the state it carries, which is what the edge knew at iat.
func (s *Server) signedStatus(ctx *fasthttp.RequestCtx, r *source.Result, inst *license.Instance, stale bool,
	key, product, instance string, now time.Time) {
	iat := now.Truncate(s.cfg.LeaseGranularity)
	granule := iat.UnixNano() / int64(s.cfg.LeaseGranularity)
	ck := signedKey{brand: r.State.Brand, key: key, product: product, instance: instance, version: r.State.Version, stale: stale}
	if inst != nil {
		ck.instanceAsOf = inst.AsOf
	}
	e, ok := s.signed.get(ck, granule)
	if ok && (e.cacheUntil.IsZero() || now.Before(e.cacheUntil)) {
		s.signedHit.Inc()
	} else {
		out := r.State.Evaluate(product, inst, now)
		out.CheckedAt = iat
		buf := bodyPool.Get().(*[]byte)
		*buf = out.AppendJSON((*buf)[:0])
		e.token = s.cfg.Signer.Sign(*buf, out.LicenseKey, out.Brand, iat, lease.ValidUntil(&out))
		bodyPool.Put(buf)
		for _, l := range out.Licenses {
			if l.Valid && l.ExpiresAt != nil && (e.cacheUntil.IsZero() || l.ExpiresAt.Before(e.cacheUntil)) {
				e.cacheUntil = *l.ExpiresAt
			}
		}
		s.signed.put(ck, granule, e)
		s.signedMiss.Inc()
	}
	cc := "max-age=0"
	if !stale {
		cc = cacheMaxAge(s.cfg.StatusMaxAge, e.cacheUntil, now)
		if !s.wasReady.Load() {
			s.wasReady.Store(true)
		}
	}
	ctx.Response.Header.Set("Cache-Control", cc)
	ctx.SetContentType(lease.ContentType)
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetBody(e.token) // copies
}

// cutOff reports whether the node has heard nothing from the centre for longer than
// Config.StaleWithoutStream.
func (s *Server) cutOff() bool {
	return s.cfg.StreamSilence != nil && s.cfg.StaleWithoutStream > 0 && s.cfg.StreamSilence() > s.cfg.StaleWithoutStream
}

// errLicenseNotFound is the status check's 404, made once (problem errors are values that
// are only read): building it per request cost two allocations on the hottest path.
var errLicenseNotFound = problem.New(problem.LicenseNotFound, "license not found")

// bodyPool recycles status encoding buffers (the answer is a few hundred bytes).
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (s *Server) forward(ctx *fasthttp.RequestCtx, rid, route, ip string) {
	if len(ctx.Request.Body()) > s.cfg.MaxBodyBytes {
		s.problem(ctx, rid, problem.Invalid("body", "must be at most %d bytes", s.cfg.MaxBodyBytes))
		return
	}
	if s.relay == nil {
		s.problem(ctx, rid, problem.New(problem.Unavailable, "writes are not available at this node"))
		return
	}
	if err := s.relay.Forward(ctx, rid, ip); err != nil {
		s.log.Warn("relay failed", "request_id", rid, "route", route, "err", err)
		s.m.Relayed.WithLabelValues(route, "error").Inc()
		ctx.Response.Header.Set("Retry-After", "1")
		s.problem(ctx, rid, problem.New(problem.Unavailable, "the license service is temporarily unavailable"))
		return
	}
	ctx.Response.Header.Set("X-Request-Id", rid)
	s.m.Relayed.WithLabelValues(route, strconv.Itoa(ctx.Response.StatusCode()/100)+"xx").Inc()
}

func (s *Server) problem(ctx *fasthttp.RequestCtx, rid string, err error) {
	status, body := renderProblem(err, rid)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetContentType(problemContentType)
	ctx.SetStatusCode(status)
	ctx.SetBody(body)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = renderProblem(fmt.Errorf("encode response: %w", err), "")
		ctx.SetContentType(problemContentType)
	} else {
		ctx.SetContentType("application/json")
	}
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}
