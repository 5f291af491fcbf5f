package api

import (
	"encoding/json"
	"net/http"

	"github.com/licensing/licensing/shared/problem"
)

// statusOf is the writer's kind→status table (API.md).
var statusOf = map[problem.Kind]int{
	problem.Internal:                http.StatusInternalServerError,
	problem.InvalidRequest:          http.StatusBadRequest, // 422 for a bad value, see status
	problem.Unauthorized:            http.StatusUnauthorized,
	problem.InsufficientScope:       http.StatusForbidden,
	problem.NotFound:                http.StatusNotFound,
	problem.Conflict:                http.StatusConflict,
	problem.UnknownProduct:          http.StatusUnprocessableEntity,
	problem.ProductAlreadyLicensed:  http.StatusConflict,
	problem.InvalidTransition:       http.StatusConflict,
	problem.LicenseNotFound:         http.StatusNotFound,
	problem.ActivationNotFound:      http.StatusNotFound,
	problem.SeatLimitReached:        http.StatusConflict,
	problem.DevInstanceLimitReached: http.StatusConflict,
	problem.LicenseSuspended:        http.StatusForbidden,
	problem.LicenseCancelled:        http.StatusForbidden,
	problem.LicenseExpired:          http.StatusForbidden,
	problem.IdempotencyKeyReused:    http.StatusUnprocessableEntity,
	problem.IdempotencyInProgress:   http.StatusConflict,
	problem.RateLimited:             http.StatusTooManyRequests,
	problem.UnsupportedMediaType:    http.StatusUnsupportedMediaType,
	problem.MethodNotAllowed:        http.StatusMethodNotAllowed,
	problem.Unavailable:             http.StatusServiceUnavailable,
}

// status is the HTTP status err is answered with.
func status(e *problem.Error) int {
	if e.Kind == problem.InvalidRequest && e.Reason == problem.BadValue {
		return http.StatusUnprocessableEntity
	}
	if e.Kind == problem.InvalidRequest && e.Reason == problem.HeadTooLarge {
		return http.StatusRequestHeaderFieldsTooLarge
	}
	if s, ok := statusOf[e.Kind]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ProblemContentType is the media type of problem documents (RFC 9457).
const ProblemContentType = "application/problem+json"

// problemBody is the RFC 9457 document.
type problemBody struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Code      problem.Kind `json:"code"`
	RequestID string       `json:"request_id,omitempty"`
}

// renderProblem returns the status and problem+json document of err; an error without a
// kind is internal and its cause is not shown.
func renderProblem(err error, requestID string) (int, []byte) {
	e := problem.As(err)
	st := status(e)
	b, _ := json.Marshal(problemBody{Type: problem.TypeBase + string(e.Kind), Title: e.Kind.Title(), Status: st,
		Detail: e.Detail, Code: e.Kind, RequestID: requestID})
	return st, b
}
