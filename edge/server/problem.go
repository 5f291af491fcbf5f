package server

import (
	"encoding/json"
	"net/http"

	"github.com/licensing/licensing/shared/problem"
)

// statusOf is the edge's kind→status table: the kinds the edge answers itself (relayed
// writes carry the writer's answer unchanged).
var statusOf = map[problem.Kind]int{
	problem.Internal:             http.StatusInternalServerError,
	problem.InvalidRequest:       http.StatusBadRequest,
	problem.NotFound:             http.StatusNotFound,
	problem.LicenseNotFound:      http.StatusNotFound,
	problem.RateLimited:          http.StatusTooManyRequests,
	problem.UnsupportedMediaType: http.StatusUnsupportedMediaType,
	problem.MethodNotAllowed:     http.StatusMethodNotAllowed,
	problem.Unavailable:          http.StatusServiceUnavailable,
}

const problemContentType = "application/problem+json"

type problemBody struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Code      problem.Kind `json:"code"`
	RequestID string       `json:"request_id,omitempty"`
}

// renderProblem returns the status and problem+json document of err (internal when it has
// no kind; its cause is not shown).
func renderProblem(err error, requestID string) (int, []byte) {
	e := problem.As(err)
	st, ok := statusOf[e.Kind]
	if !ok {
		st = http.StatusInternalServerError
	}
	if e.Kind == problem.InvalidRequest && e.Reason == problem.BadValue {
		st = http.StatusUnprocessableEntity
	}
	if e.Kind == problem.InvalidRequest && e.Reason == problem.HeadTooLarge {
		st = http.StatusRequestHeaderFieldsTooLarge
	}
	if e.Kind == problem.InvalidRequest && e.Reason == problem.TimedOut {
		st = http.StatusRequestTimeout
	}
	b, _ := json.Marshal(problemBody{Type: problem.TypeBase + string(e.Kind), Title: e.Kind.Title(), Status: st,
		Detail: e.Detail, Code: e.Kind, RequestID: requestID})
	return st, b
}
