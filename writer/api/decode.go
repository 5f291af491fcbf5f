package api

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/writer/licensing"
)

// readBody reads at most MaxBodyBytes; a larger body is 413 invalid_request.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			// API.md: bodies over 64 KiB are 400 invalid_request
			return nil, problem.Invalid("body", "larger than 64 KiB")
		}
		return nil, problem.Invalid("body", "could not be read")
	}
	return body, nil
}

// readJSON reads the body and strictly decodes it into dst; an empty body is accepted when
// optional. It returns the raw body (for the idempotency fingerprint).
func readJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) ([]byte, error) {
	body, err := readBody(w, r)
	if err == nil && (len(body) > 0 || !optional) {
		err = decodeJSON(body, dst)
	}
	return body, err
}

// parseTime parses an optional RFC 3339 time.
func parseTime(field string, s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return nil, problem.Invalid(field, "must be an RFC 3339 date-time, e.g. 2030-01-31T00:00:00Z")
	}
	t = t.UTC()
	if t.Year() < 1970 || t.Year() > 9999 {
		return nil, problem.Unacceptable(field, "must lie between 1970 and 9999 (UTC)")
	}
	return &t, nil
}

// idempotency reads the Idempotency-Key header; the fingerprint covers method, route,
// path values and body, so the same key on a different request is detected.
func idempotency(r *http.Request, body []byte) (*licensing.Idempotency, error) {
	key := r.Header.Get("Idempotency-Key")
	if _, present := r.Header["Idempotency-Key"]; !present {
		return nil, nil
	}
	if n := license.Chars(key); n < 1 || n > 255 {
		return nil, problem.Invalid("Idempotency-Key", "must be 1 to 255 characters")
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	// canonicalize JSON so whitespace and key order do not matter
	var v any
	if json.Unmarshal(body, &v) == nil {
		body, _ = json.Marshal(v)
	}
	h.Write(body)
	return &licensing.Idempotency{Key: key, Fingerprint: h.Sum(nil)}, nil
}
