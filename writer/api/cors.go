package api

import (
	"net/http"

	"github.com/licensing/licensing/internal/cors"
)

// preflight answers a CORS preflight (OPTIONS with Origin and
// Access-Control-Request-Method) with 204, before the strict-input rules, the rate limits
// and authentication: a browser sends it without credentials or body. An origin not in
// the list gets the 204 without Access-Control-Allow-* headers, which the browser reads as
// a refusal. It reports whether r was a preflight.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodOptions || r.Header.Get("Origin") == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if allow := s.cfg.CORS.Allow(r.Header.Get("Origin")); allow != "" {
		h.Set("Access-Control-Allow-Origin", allow)
		h.Set("Access-Control-Allow-Methods", cors.AllowMethods)
		h.Set("Access-Control-Allow-Headers", cors.AllowHeaders)
		h.Set("Access-Control-Max-Age", cors.MaxAge)
	}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// corsHeaders marks an actual answer to an allowed origin readable by the page, with the
// API's own response headers exposed.
func (s *Server) corsHeaders(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.CORS.Enabled() {
		return
	}
	w.Header().Add("Vary", "Origin")
	if allow := s.cfg.CORS.Allow(r.Header.Get("Origin")); allow != "" {
		w.Header().Set("Access-Control-Allow-Origin", allow)
		w.Header().Set("Access-Control-Expose-Headers", cors.ExposeHeaders)
	}
}
