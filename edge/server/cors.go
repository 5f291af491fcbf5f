package server

import (
	"net/http"

	"github.com/licensing/licensing/internal/cors"
	"github.com/valyala/fasthttp"
)

// preflight answers a CORS preflight (OPTIONS with Origin and
// Access-Control-Request-Method) with 204, before the input rules and the rate limits: a
// browser sends it without credentials or body. An origin not in Config.CORS gets the 204
// without Access-Control-Allow-* headers, which the browser reads as a refusal. It reports
// whether the request was a preflight.
func (s *Server) preflight(ctx *fasthttp.RequestCtx, method string) bool {
	if method != http.MethodOptions {
		return false
	}
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 || len(ctx.Request.Header.Peek("Access-Control-Request-Method")) == 0 {
		return false
	}
	h := &ctx.Response.Header
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if allow := s.cfg.CORS.Allow(string(origin)); allow != "" {
		h.Set("Access-Control-Allow-Origin", allow)
		h.Set("Access-Control-Allow-Methods", cors.AllowMethods)
		h.Set("Access-Control-Allow-Headers", cors.AllowHeaders)
		h.Set("Access-Control-Max-Age", cors.MaxAge)
	}
	h.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(http.StatusNoContent)
	return true
}

// corsHeaders marks an actual answer to an allowed origin readable by the page, with the
// edge's own response headers (X-Cache, RateLimit, Retry-After...) exposed. Without
// configured origins it reads nothing: the status path pays one branch. It runs after the
// route (Handler), so its Vary: Origin adds to the Vary: Accept of a status answer.
func (s *Server) corsHeaders(ctx *fasthttp.RequestCtx) {
	if !s.cfg.CORS.Enabled() {
		return
	}
	ctx.Response.Header.Add("Vary", "Origin")
	if allow := s.cfg.CORS.Allow(string(ctx.Request.Header.Peek("Origin"))); allow != "" {
		ctx.Response.Header.Set("Access-Control-Allow-Origin", allow)
		ctx.Response.Header.Set("Access-Control-Expose-Headers", cors.ExposeHeaders)
	}
}
