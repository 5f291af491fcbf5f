package api

import (
	"net/http"
	"strings"

	"github.com/licensing/licensing/shared/lease"
	"github.com/licensing/licensing/shared/resource"
)

// jwks serves the JWK Set that verifies signed status answers (API.md "Signed status
// and offline leases"); clients may keep it five minutes.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Signer == nil {
		s.unmatched(w, r)
		return
	}
	w.Header().Set("Cache-Control", "max-age=300")
	writeRaw(w, http.StatusOK, s.cfg.Signer.JWKS())
}

// wantsLease: the client asked for a signed answer and this writer can sign.
func (s *Server) wantsLease(r *http.Request) bool {
	return s.cfg.Signer != nil && lease.AcceptsJOSE([]byte(strings.Join(r.Header.Values("Accept"), ",")))
}

// signedStatus writes out as a lease: checked_at and iat are the answer's time to the
// second, exp is iat + the lease capped by the expiry of a license the answer calls
// valid. The caller has set the plain answer's headers.
func (s *Server) signedStatus(w http.ResponseWriter, out resource.Status) {
	iat := out.CheckedAt.Truncate(lease.Granularity)
	out.CheckedAt = iat
	tok := s.cfg.Signer.Sign(out.AppendJSON(nil), out.LicenseKey, out.Brand, iat, lease.ValidUntil(&out))
	w.Header().Set("Content-Type", lease.ContentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(tok)
}
