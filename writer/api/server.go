// Package api is the writer's HTTP transport: routing, authentication, request decoding,
// problem+json errors (its own kind→status table), request ids, body limits, idempotency
// headers, logging and metrics. It translates HTTP to calls of the domain (the Service
// interface below, which licensing.Service implements) and nothing else.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/licensing/licensing/internal/clientip"
	"github.com/licensing/licensing/internal/cors"
	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/requestid"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Service is what the transport calls of the domain. Errors are problem errors
// (shared/problem) or a *licensing.Replay; anything else is internal.
type Service interface {
	Now() time.Time
	Authenticate(ctx context.Context, token, operatorToken string) (licensing.Principal, error)

	CreateBrand(ctx context.Context, m licensing.Meta, slug, name string) (resource.BrandCreated, error)
	ListBrands(ctx context.Context, page licensing.Page) (resource.List[resource.Brand], error)
	SetBrandRateLimit(ctx context.Context, m licensing.Meta, slug string, l *resource.RateLimit) (resource.Brand, error)
	CreateAPIKey(ctx context.Context, m licensing.Meta, slug string, scopes []string) (resource.APIKey, error)
	RevokeAPIKey(ctx context.Context, m licensing.Meta, slug, id string) error

	CreateProduct(ctx context.Context, m licensing.Meta, p licensing.Principal, spec licensing.ProductSpec) (resource.Product, error)
	UpdateProduct(ctx context.Context, m licensing.Meta, p licensing.Principal, code string, patch licensing.ProductPatch) (resource.Product, error)
	ListProducts(ctx context.Context, p licensing.Principal, page licensing.Page) (resource.List[resource.Product], error)
	Provision(ctx context.Context, m licensing.Meta, p licensing.Principal, email string, specs []licensing.LicenseSpec) (resource.LicenseKey, error)
	AddLicense(ctx context.Context, m licensing.Meta, p licensing.Principal, key string, sp licensing.LicenseSpec) (resource.License, error)
	GetLicenseKey(ctx context.Context, p licensing.Principal, key string) (resource.LicenseKey, error)
	GetLicense(ctx context.Context, p licensing.Principal, id string) (resource.License, error)
	ListActivations(ctx context.Context, p licensing.Principal, licenseID string, page licensing.Page) (resource.List[resource.Activation], error)
	ListByEmail(ctx context.Context, p licensing.Principal, email string, page licensing.Page) (resource.List[resource.License], error)
	Transition(ctx context.Context, m licensing.Meta, p licensing.Principal, id string, t license.Transition, expiresAt *time.Time) (resource.License, error)
	RemoveActivation(ctx context.Context, m licensing.Meta, p licensing.Principal, licenseID, activationID string) error
	Events(ctx context.Context, p licensing.Principal, licenseID string, page licensing.Page) (resource.List[resource.Event], error)
	CustomerLicenses(ctx context.Context, p licensing.Principal, email string, page licensing.Page) (resource.List[resource.CustomerLicense], error)

	CreateEndpoint(ctx context.Context, m licensing.Meta, p licensing.Principal, url string, events []string, description string) (resource.WebhookEndpoint, error)
	ListEndpoints(ctx context.Context, p licensing.Principal, page licensing.Page) (resource.List[resource.WebhookEndpoint], error)
	GetEndpoint(ctx context.Context, p licensing.Principal, id string) (resource.WebhookEndpoint, error)
	UpdateEndpoint(ctx context.Context, m licensing.Meta, p licensing.Principal, id string, patch licensing.EndpointPatch) (resource.WebhookEndpoint, error)
	DeleteEndpoint(ctx context.Context, m licensing.Meta, p licensing.Principal, id string) error
	RotateSecret(ctx context.Context, m licensing.Meta, p licensing.Principal, id string) (resource.WebhookSecret, error)
	TestEndpoint(ctx context.Context, m licensing.Meta, p licensing.Principal, id string) (resource.WebhookDelivery, error)
	ListDeliveries(ctx context.Context, p licensing.Principal, endpointID string, page licensing.Page) (resource.List[resource.WebhookDelivery], error)
	RetryDelivery(ctx context.Context, m licensing.Meta, p licensing.Principal, id string) (resource.WebhookDelivery, error)

	Activate(ctx context.Context, m licensing.Meta, brand, key, product, instance string) (licensing.ActivateResult, error)
	Deactivate(ctx context.Context, m licensing.Meta, brand, key, product, instance string) (resource.DeactivationResult, error)
	Status(ctx context.Context, brand, key, product, instance string) (resource.Status, error)
}

var _ Service = (*licensing.Service)(nil)

// MaxBodyBytes bounds every request body (API.md: 64 KiB).
const MaxBodyBytes = 64 << 10

// RetryAfterUnavailable is the Retry-After, in seconds, of a 503: a dependency (Postgres)
// could not serve; the request may be retried (with its Idempotency-Key for brand POSTs).
const RetryAfterUnavailable = 1

// Config configures the HTTP layer.
type Config struct {
	OperatorToken string
	// StatusMaxAge is the Cache-Control max-age of status answers.
	StatusMaxAge time.Duration
	// Ready reports whether the writer can serve requests (Postgres usable; /readyz 503
	// otherwise).
	Ready func(ctx context.Context) error
	// Degraded, when set, reports a dependency whose loss leaves the writer serving but
	// not fully (NATS: events wait in the outbox); /readyz stays 200 with status
	// "degraded".
	Degraded func() error
	// Extra registers more routes (the OpenAPI document and docs).
	Extra func(mux *http.ServeMux)
	// Limits, when set, are API.md's rate limits (nil: none).
	Limits *Limits
	// Trusted are the proxies (the edges) whose X-Forwarded-For names the client.
	Trusted clientip.Trusted
	// Signer signs status answers asked for as application/jose and publishes its key set
	// at /.well-known/jwks.json (nil: plain answers only, no key set).
	Signer *lease.Signer
	// CORS are the origins whose pages may call the API (the zero value: none; cors.go).
	CORS cors.Origins
}

// Server is the writer's HTTP handler.
type Server struct {
	svc Service
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	m   *metrics
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight prometheus.Gauge
	limited  *prometheus.CounterVec
}

// New builds the handler and registers its metrics with reg.
func New(svc Service, cfg Config, log *slog.Logger, reg prometheus.Registerer, gather prometheus.Gatherer) *Server {
	if cfg.StatusMaxAge == 0 {
		cfg.StatusMaxAge = 60 * time.Second
	}
	s := &Server{svc: svc, cfg: cfg, log: log, mux: http.NewServeMux()}
	s.m = &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_writer_http_requests_total",
			Help: "HTTP requests by route, method and code (the status class: 2xx, 4xx, 5xx)."}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "license_writer_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and code (the status class).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"route", "method", "code"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "license_writer_http_inflight_requests", Help: "Requests being served."}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "license_writer_rate_limited_total",
			Help: "Requests refused with 429 by route and reason (the rate-limit policy)."}, []string{"route", "reason"}),
	}
	reg.MustRegister(s.m.requests, s.m.latency, s.m.inflight, s.m.limited)
	s.routes(promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := requestid.Or(r.Header.Get("X-Request-Id"))
	w.Header().Set("X-Request-Id", rid)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	ctx := context.WithValue(r.Context(), ctxKey{}, &reqInfo{id: rid})
	r = r.WithContext(ctx)
	s.m.inflight.Inc()
	preflight := false
	defer func() {
		s.m.inflight.Dec()
		if p := recover(); p != nil {
			s.log.Error("panic", "request_id", rid, "panic", p)
			if !rec.wrote {
				s.problem(rec, r, errors.New("panic"))
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
			if preflight {
				route = "preflight"
			}
		}
		d := time.Since(start)
		code := strconv.Itoa(rec.status/100) + "xx"
		s.m.requests.WithLabelValues(route, r.Method, code).Inc()
		s.m.latency.WithLabelValues(route, r.Method, code).Observe(d.Seconds())
		info := info(ctx)
		lvl := slog.LevelInfo
		if rec.status >= 500 {
			lvl = slog.LevelError
		}
		// the route pattern, never the raw path: paths carry license keys
		s.log.LogAttrs(ctx, lvl, "request", slog.String("request_id", rid), slog.String("method", r.Method),
			slog.String("route", route), slog.Int("status", rec.status), slog.Duration("duration", d),
			slog.String("brand", info.brand), slog.String("actor", info.actor), slog.String("code", info.code))
	}()
	if preflight = s.preflight(rec, r); preflight {
		return
	}
	s.corsHeaders(rec, r)
	if err := checkRequest(r); err != nil {
		s.problem(rec, r, err)
		return
	}
	inf := info(ctx)
	inf.ip, inf.viaProxy = s.cfg.Trusted.Resolve(clientip.PeerAddr(r.RemoteAddr), r.Header.Values("X-Forwarded-For"))
	// failed authentications: past the budget, every request with a credential is refused
	credentialed := r.Header.Get("Authorization") != ""
	if l := s.cfg.Limits; l != nil && credentialed && s.take(rec, r, l.Unauthorized, inf.ip.String(), 0, false) {
		return
	}
	s.mux.ServeHTTP(rec, r)
	if l := s.cfg.Limits; l != nil && rec.status == http.StatusUnauthorized {
		s.charge(r, l.Unauthorized, inf.ip.String())
	}
}

type ctxKey struct{}

type reqInfo struct {
	id, brand, actor, code string
	ip                     netip.Addr // the resolved client address
	viaProxy               bool       // the peer is a trusted proxy
}

func info(ctx context.Context) *reqInfo {
	if v, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return v
	}
	return &reqInfo{}
}

type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.wrote = true
	}
	return r.ResponseWriter.Write(b)
}

// problem writes err as problem+json.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	inf := info(r.Context())
	kind := problem.KindOf(err)
	inf.code = string(kind)
	switch kind {
	case problem.Internal:
		s.log.Error("internal error", "request_id", inf.id, "route", r.Pattern, "err", err)
	case problem.Unavailable:
		s.log.Warn("dependency unavailable", "request_id", inf.id, "route", r.Pattern, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterUnavailable))
	}
	status, body := renderProblem(err, inf.id)
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.problem(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	writeRaw(w, status, body)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// reply writes v with status, or the error; a *licensing.Replay is rendered like a fresh
// answer (its stored resource with the route's success status, or its stored problem),
// marked Idempotent-Replayed.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		var rp *licensing.Replay
		if errors.As(err, &rp) {
			w.Header().Set("Idempotent-Replayed", "true")
			if rp.Err != nil {
				s.problem(w, r, rp.Err)
				return
			}
			writeRaw(w, status, rp.Body)
			return
		}
		s.problem(w, r, err)
		return
	}
	s.writeJSON(w, r, status, v)
}

// bearer extracts the bearer token.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) authenticate(r *http.Request) (licensing.Principal, error) {
	p, err := s.svc.Authenticate(r.Context(), bearer(r), s.cfg.OperatorToken)
	if err != nil {
		return p, err
	}
	inf := info(r.Context())
	if p.Operator {
		inf.actor = "operator"
	} else {
		inf.actor, inf.brand = "api_key:"+p.KeyID, p.BrandSlug
	}
	return p, nil
}

func (s *Server) meta(r *http.Request, p *licensing.Principal) licensing.Meta {
	inf := info(r.Context())
	actor := inf.actor
	if p == nil {
		actor = "public:" + info(r.Context()).ip.String()
	}
	return licensing.Meta{Actor: actor, RequestID: inf.id}
}
