package api

import (
	"net/http"
	"strconv"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/licensing"
)

func (s *Server) routes(metrics http.Handler) {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Ready != nil {
			if err := s.cfg.Ready(r.Context()); err != nil {
				s.log.Warn("not ready", "err", err)
				s.problem(w, r, &problem.Error{Kind: problem.Unavailable, Detail: "dependencies unavailable", Cause: err})
				return
			}
		}
		if s.cfg.Degraded != nil {
			if err := s.cfg.Degraded(); err != nil {
				// serving (writes succeed; their events wait in the outbox), but not fully
				s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "degraded", "detail": err.Error()})
				return
			}
		}
		s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
	})
	m.Handle("GET /metrics", metrics)
	if s.cfg.Extra != nil {
		s.cfg.Extra(m)
	}

	// operator
	m.HandleFunc("POST /v1/brands", s.operator(s.createBrand))
	m.HandleFunc("GET /v1/brands", s.operator(s.listBrands))
	m.HandleFunc("PATCH /v1/brands/{slug}", s.operator(s.updateBrand))
	m.HandleFunc("POST /v1/brands/{slug}/api-keys", s.operator(s.createAPIKey))
	m.HandleFunc("DELETE /v1/brands/{slug}/api-keys/{id}", s.operator(s.revokeAPIKey))

	// brand
	m.HandleFunc("POST /v1/products", s.brand(s.createProduct))
	m.HandleFunc("GET /v1/products", s.brand(s.listProducts))
	m.HandleFunc("PATCH /v1/products/{code}", s.brand(s.updateProduct))
	m.HandleFunc("POST /v1/license-keys", s.brand(s.provision))
	m.HandleFunc("POST /v1/license-keys/{key}/licenses", s.brand(s.addLicense))
	m.HandleFunc("GET /v1/license-keys/{key}", s.brand(s.getLicenseKey))
	m.HandleFunc("GET /v1/licenses/{id}", s.brand(s.getLicense))
	m.HandleFunc("GET /v1/licenses", s.brand(s.listLicenses))
	for _, t := range []license.Transition{license.Renew, license.Suspend, license.Resume, license.Cancel} {
		m.HandleFunc("POST /v1/licenses/{id}/"+string(t), s.brand(s.transition(t)))
	}
	m.HandleFunc("GET /v1/licenses/{id}/activations", s.brand(s.listActivations))
	m.HandleFunc("DELETE /v1/licenses/{id}/activations/{activation_id}", s.brand(s.removeActivation))
	m.HandleFunc("GET /v1/licenses/{id}/events", s.brand(s.events))
	m.HandleFunc("GET /v1/customers/{email}/licenses", s.anyCredential(s.customerLicenses))
	m.HandleFunc("POST /v1/webhook-endpoints", s.brand(s.createEndpoint))
	m.HandleFunc("GET /v1/webhook-endpoints", s.brand(s.listEndpoints))
	m.HandleFunc("GET /v1/webhook-endpoints/{id}", s.brand(s.getEndpoint))
	m.HandleFunc("PATCH /v1/webhook-endpoints/{id}", s.brand(s.updateEndpoint))
	m.HandleFunc("DELETE /v1/webhook-endpoints/{id}", s.brand(s.deleteEndpoint))
	m.HandleFunc("POST /v1/webhook-endpoints/{id}/rotate-secret", s.brand(s.rotateSecret))
	m.HandleFunc("POST /v1/webhook-endpoints/{id}/test", s.brand(s.testEndpoint))
	m.HandleFunc("GET /v1/webhook-endpoints/{id}/deliveries", s.brand(s.listDeliveries))
	m.HandleFunc("POST /v1/webhook-deliveries/{id}/retry", s.brand(s.retryDelivery))

	// public
	m.HandleFunc("POST /v1/public/{brand}/activations", s.public(s.activate))
	m.HandleFunc("POST /v1/public/{brand}/deactivations", s.public(s.deactivate))
	m.HandleFunc("GET /v1/public/{brand}/licenses/{key}/status", s.public(s.status))
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)

	m.HandleFunc("/", s.unmatched)
}

// unmatched answers 405 when another method would match, else 404, as problem+json.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		c := r.Clone(r.Context())
		c.Method = method
		if _, pat := s.mux.Handler(c); pat != "/" && pat != "" {
			allow = append(allow, method)
		}
	}
	if len(allow) > 0 {
		for _, a := range allow {
			w.Header().Add("Allow", a)
		}
		s.problem(w, r, problem.New(problem.MethodNotAllowed, "%s is not allowed here", r.Method))
		return
	}
	s.problem(w, r, problem.New(problem.NotFound, "no such endpoint"))
}

type handler func(w http.ResponseWriter, r *http.Request, p *licensing.Principal)

// who says which credentials an endpoint accepts.
type who int

const (
	operatorOnly who = iota
	brandOnly
	operatorOrBrand
)

func (s *Server) guard(w who, h handler) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		switch {
		case err != nil:
		case w == operatorOnly && !p.Operator:
			err = problem.New(problem.InsufficientScope, "this call needs the operator token")
		case w == brandOnly && p.Operator:
			err = problem.New(problem.InsufficientScope, "brand endpoints need a brand API key")
		}
		if err != nil {
			s.problem(rw, r, err)
			return
		}
		if l := s.cfg.Limits; l != nil && !p.Operator && s.take(rw, r, l.brandPolicy(&p), p.KeyID, 1, true) {
			return
		}
		h(rw, r, &p)
	}
}

func (s *Server) operator(h handler) http.HandlerFunc      { return s.guard(operatorOnly, h) }
func (s *Server) brand(h handler) http.HandlerFunc         { return s.guard(brandOnly, h) }
func (s *Server) anyCredential(h handler) http.HandlerFunc { return s.guard(operatorOrBrand, h) }

func (s *Server) public(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		inf := info(r.Context())
		inf.brand = r.PathValue("brand")
		l := s.cfg.Limits
		if l == nil || inf.viaProxy {
			// a public write an edge relays was limited at the edge (API.md)
			h(w, r, nil)
			return
		}
		ip := inf.ip.String()
		row := l.PublicWrite
		if r.Method == http.MethodGet {
			row = l.Status
		}
		// key guessing: past the 404 budget every public request is refused, known
		// keys included (answering those would make the block an oracle)
		if s.take(w, r, l.NotFound, ip, 0, false) || s.take(w, r, row, ip, 1, true) {
			return
		}
		h(w, r, nil)
		if rec, ok := w.(*recorder); ok && rec.status == http.StatusNotFound {
			s.charge(r, l.NotFound, ip)
		}
	}
}

// ---------------------------------------------------------------- operator

func (s *Server) createBrand(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	var in struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	}
	if _, err := readJSON(w, r, &in, false); err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.CreateBrand(r.Context(), s.meta(r, p), in.Slug, in.Name)
	s.reply(w, r, http.StatusCreated, out, err)
}

func (s *Server) listBrands(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	page, err := licensing.ParsePage(r.URL.Query().Get("limit"), r.URL.Query().Get("cursor"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.ListBrands(r.Context(), page)
	s.reply(w, r, http.StatusOK, out, err)
}

// updateBrand sets or clears the brand's own rate limit: {"rate_limit": {...} | null}.
func (s *Server) updateBrand(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	absent := &resource.RateLimit{PerSecond: -1, Burst: -1}
	in := struct {
		RateLimit *resource.RateLimit `json:"rate_limit"`
	}{RateLimit: absent}
	if _, err := readJSON(w, r, &in, false); err != nil {
		s.problem(w, r, err)
		return
	}
	if in.RateLimit == absent && *absent == (resource.RateLimit{PerSecond: -1, Burst: -1}) {
		s.problem(w, r, problem.Invalid("rate_limit", "is required: an object {per_second, burst}, or null for the default"))
		return
	}
	out, err := s.svc.SetBrandRateLimit(r.Context(), s.meta(r, p), r.PathValue("slug"), in.RateLimit)
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	var in struct {
		Scopes []string `json:"scopes"`
	}
	if _, err := readJSON(w, r, &in, true); err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.CreateAPIKey(r.Context(), s.meta(r, p), r.PathValue("slug"), in.Scopes)
	s.reply(w, r, http.StatusCreated, out, err)
}

func (s *Server) revokeAPIKey(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	err := s.svc.RevokeAPIKey(r.Context(), s.meta(r, p), r.PathValue("slug"), r.PathValue("id"))
	s.reply(w, r, http.StatusNoContent, nil, err)
}

// ---------------------------------------------------------------- brand

// input reads the body, decodes it into dst and parses the Idempotency-Key header.
func (s *Server) input(w http.ResponseWriter, r *http.Request, p *licensing.Principal, dst any, optionalBody bool) (licensing.Meta, bool) {
	body, err := readJSON(w, r, dst, optionalBody)
	var idem *licensing.Idempotency
	if err == nil {
		idem, err = idempotency(r, body)
	}
	if err != nil {
		s.problem(w, r, err)
		return licensing.Meta{}, false
	}
	m := s.meta(r, p)
	m.Idempotency = idem
	return m, true
}

func (s *Server) createProduct(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	var in struct {
		Code                string   `json:"code"`
		Name                string   `json:"name"`
		DevInstances        *bool    `json:"dev_instances"`
		DevInstanceSuffixes []string `json:"dev_instance_suffixes"`
	}
	m, ok := s.input(w, r, p, &in, false)
	if !ok {
		return
	}
	out, err := s.svc.CreateProduct(r.Context(), m, *p, licensing.ProductSpec{Code: in.Code, Name: in.Name,
		DevInstances: in.DevInstances, DevInstanceSuffixes: in.DevInstanceSuffixes})
	s.reply(w, r, http.StatusCreated, out, err)
}

func (s *Server) updateProduct(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	var in struct {
		Name                *string   `json:"name"`
		DevInstances        *bool     `json:"dev_instances"`
		DevInstanceSuffixes *[]string `json:"dev_instance_suffixes"`
	}
	if _, err := readJSON(w, r, &in, false); err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.UpdateProduct(r.Context(), s.meta(r, p), *p, r.PathValue("code"),
		licensing.ProductPatch{Name: in.Name, DevInstances: in.DevInstances, DevInstanceSuffixes: in.DevInstanceSuffixes})
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) listProducts(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	page, err := licensing.ParsePage(r.URL.Query().Get("limit"), r.URL.Query().Get("cursor"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.ListProducts(r.Context(), *p, page)
	s.reply(w, r, http.StatusOK, out, err)
}

type licenseSpecIn struct {
	Product   string  `json:"product"`
	ExpiresAt *string `json:"expires_at"`
	SeatLimit *int    `json:"seat_limit"`
}

func (in licenseSpecIn) spec(field string) (licensing.LicenseSpec, error) {
	exp, err := parseTime(field+"expires_at", in.ExpiresAt)
	return licensing.LicenseSpec{Product: in.Product, ExpiresAt: exp, SeatLimit: in.SeatLimit}, err
}

func (s *Server) provision(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	var in struct {
		CustomerEmail string          `json:"customer_email"`
		Licenses      []licenseSpecIn `json:"licenses"`
	}
	m, ok := s.input(w, r, p, &in, false)
	if !ok {
		return
	}
	specs := make([]licensing.LicenseSpec, len(in.Licenses))
	for i, l := range in.Licenses {
		sp, err := l.spec("licenses[" + strconv.Itoa(i) + "].")
		if err != nil {
			s.problem(w, r, err)
			return
		}
		specs[i] = sp
	}
	out, err := s.svc.Provision(r.Context(), m, *p, in.CustomerEmail, specs)
	s.reply(w, r, http.StatusCreated, out, err)
}

func (s *Server) addLicense(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	var in licenseSpecIn
	m, ok := s.input(w, r, p, &in, false)
	if !ok {
		return
	}
	sp, err := in.spec("")
	if err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.AddLicense(r.Context(), m, *p, r.PathValue("key"), sp)
	s.reply(w, r, http.StatusCreated, out, err)
}

func (s *Server) getLicenseKey(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	out, err := s.svc.GetLicenseKey(r.Context(), *p, r.PathValue("key"))
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) getLicense(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	out, err := s.svc.GetLicense(r.Context(), *p, r.PathValue("id"))
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) listLicenses(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	q := r.URL.Query()
	page, err := licensing.ParsePage(q.Get("limit"), q.Get("cursor"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if q.Get("customer_email") == "" {
		s.problem(w, r, problem.Invalid("customer_email", "is required"))
		return
	}
	out, err := s.svc.ListByEmail(r.Context(), *p, q.Get("customer_email"), page)
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) transition(t license.Transition) handler {
	return func(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
		var in struct {
			ExpiresAt *string `json:"expires_at"`
		}
		m, ok := s.input(w, r, p, &in, t != license.Renew)
		if !ok {
			return
		}
		if t != license.Renew && in.ExpiresAt != nil {
			s.problem(w, r, problem.Invalid("expires_at", "unknown field"))
			return
		}
		exp, err := parseTime("expires_at", in.ExpiresAt)
		if err != nil {
			s.problem(w, r, err)
			return
		}
		out, err := s.svc.Transition(r.Context(), m, *p, r.PathValue("id"), t, exp)
		s.reply(w, r, http.StatusOK, out, err)
	}
}

func (s *Server) removeActivation(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	m, ok := s.input(w, r, p, &struct{}{}, true)
	if !ok {
		return
	}
	err := s.svc.RemoveActivation(r.Context(), m, *p, r.PathValue("id"), r.PathValue("activation_id"))
	s.reply(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) listActivations(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	page, err := licensing.ParsePage(r.URL.Query().Get("limit"), r.URL.Query().Get("cursor"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.ListActivations(r.Context(), *p, r.PathValue("id"), page)
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	page, err := licensing.ParsePage(r.URL.Query().Get("limit"), r.URL.Query().Get("cursor"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.Events(r.Context(), *p, r.PathValue("id"), page)
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) customerLicenses(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	page, err := licensing.ParsePage(r.URL.Query().Get("limit"), r.URL.Query().Get("cursor"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.CustomerLicenses(r.Context(), *p, r.PathValue("email"), page)
	s.reply(w, r, http.StatusOK, out, err)
}

// ---------------------------------------------------------------- public

type seatIn struct {
	LicenseKey string `json:"license_key"`
	Product    string `json:"product"`
	Instance   string `json:"instance"`
}

func (s *Server) activate(w http.ResponseWriter, r *http.Request, _ *licensing.Principal) {
	var in seatIn
	if _, err := readJSON(w, r, &in, false); err != nil {
		s.problem(w, r, err)
		return
	}
	res, err := s.svc.Activate(r.Context(), s.meta(r, nil), r.PathValue("brand"), in.LicenseKey, in.Product, in.Instance)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	s.reply(w, r, status, res.ActivationResult, err)
}

func (s *Server) deactivate(w http.ResponseWriter, r *http.Request, _ *licensing.Principal) {
	var in seatIn
	if _, err := readJSON(w, r, &in, false); err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.Deactivate(r.Context(), s.meta(r, nil), r.PathValue("brand"), in.LicenseKey, in.Product, in.Instance)
	s.reply(w, r, http.StatusOK, out, err)
}

// status answers plain JSON, or a signed lease when the client accepts application/jose
// (lease.go); problems stay plain. Every answer varies by Accept.
func (s *Server) status(w http.ResponseWriter, r *http.Request, _ *licensing.Principal) {
	w.Header().Add("Vary", "Accept") // Add: CORS may have set Vary: Origin
	q := r.URL.Query()
	out, err := s.svc.Status(r.Context(), r.PathValue("brand"), r.PathValue("key"), q.Get("product"), q.Get("instance"))
	if err == nil {
		w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(license.CacheMaxAge(s.cfg.StatusMaxAge, out, s.svc.Now())))
		if s.wantsLease(r) {
			s.signedStatus(w, out)
			return
		}
	}
	s.reply(w, r, http.StatusOK, out, err)
}

// ---------------------------------------------------------------- webhooks

type endpointIn struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	var in endpointIn
	m, ok := s.input(w, r, p, &in, false)
	if !ok {
		return
	}
	out, err := s.svc.CreateEndpoint(r.Context(), m, *p, in.URL, in.Events, in.Description)
	s.reply(w, r, http.StatusCreated, out, err)
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	page, err := licensing.ParsePage(r.URL.Query().Get("limit"), r.URL.Query().Get("cursor"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.ListEndpoints(r.Context(), *p, page)
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	out, err := s.svc.GetEndpoint(r.Context(), *p, r.PathValue("id"))
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) updateEndpoint(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	var in struct {
		URL         *string   `json:"url"`
		Events      *[]string `json:"events"`
		Description *string   `json:"description"`
		Status      *string   `json:"status"`
	}
	if _, err := readJSON(w, r, &in, false); err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.UpdateEndpoint(r.Context(), s.meta(r, p), *p, r.PathValue("id"),
		licensing.EndpointPatch{URL: in.URL, Events: in.Events, Description: in.Description, Status: in.Status})
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	err := s.svc.DeleteEndpoint(r.Context(), s.meta(r, p), *p, r.PathValue("id"))
	s.reply(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	m, ok := s.input(w, r, p, &struct{}{}, true)
	if !ok {
		return
	}
	out, err := s.svc.RotateSecret(r.Context(), m, *p, r.PathValue("id"))
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) testEndpoint(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	m, ok := s.input(w, r, p, &struct{}{}, true)
	if !ok {
		return
	}
	out, err := s.svc.TestEndpoint(r.Context(), m, *p, r.PathValue("id"))
	s.reply(w, r, http.StatusAccepted, out, err)
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	page, err := licensing.ParsePage(r.URL.Query().Get("limit"), r.URL.Query().Get("cursor"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	out, err := s.svc.ListDeliveries(r.Context(), *p, r.PathValue("id"), page)
	s.reply(w, r, http.StatusOK, out, err)
}

func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request, p *licensing.Principal) {
	m, ok := s.input(w, r, p, &struct{}{}, true)
	if !ok {
		return
	}
	out, err := s.svc.RetryDelivery(r.Context(), m, *p, r.PathValue("id"))
	s.reply(w, r, http.StatusAccepted, out, err)
}
