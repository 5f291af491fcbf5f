// Package problem defines the closed set of error kinds the service reports and their
// RFC 9457 problem+json representation. Every transport maps a Kind to one HTTP status
// through Status; anything that is not a *Error is reported as Internal.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Kind is a stable, machine-readable error code. Clients branch on it.
type Kind string

// The closed set of kinds (API.md).
const (
	Internal               Kind = "internal"
	InvalidRequest         Kind = "invalid_request"
	Unauthorized           Kind = "unauthorized"
	InsufficientScope      Kind = "insufficient_scope"
	NotFound               Kind = "not_found"
	Conflict               Kind = "conflict"
	UnknownProduct         Kind = "unknown_product"
	ProductAlreadyLicensed Kind = "product_already_licensed"
	InvalidTransition      Kind = "invalid_transition"
	LicenseNotFound        Kind = "license_not_found"
	ActivationNotFound     Kind = "activation_not_found"
	SeatLimitReached       Kind = "seat_limit_reached"
	LicenseSuspended       Kind = "license_suspended"
	LicenseCancelled       Kind = "license_cancelled"
	LicenseExpired         Kind = "license_expired"
	IdempotencyKeyReused   Kind = "idempotency_key_reused"
	IdempotencyInProgress  Kind = "idempotency_in_progress"
	RateLimited            Kind = "rate_limited"
	MethodNotAllowed       Kind = "method_not_allowed"
	Unavailable            Kind = "unavailable"
)

var table = map[Kind]struct {
	status int
	title  string
}{
	Internal:               {http.StatusInternalServerError, "Internal server error"},
	InvalidRequest:         {http.StatusBadRequest, "Invalid request"},
	Unauthorized:           {http.StatusUnauthorized, "Unauthorized"},
	InsufficientScope:      {http.StatusForbidden, "Insufficient scope"},
	NotFound:               {http.StatusNotFound, "Not found"},
	Conflict:               {http.StatusConflict, "Conflict"},
	UnknownProduct:         {http.StatusUnprocessableEntity, "Unknown product"},
	ProductAlreadyLicensed: {http.StatusConflict, "Product already licensed"},
	InvalidTransition:      {http.StatusConflict, "Invalid transition"},
	LicenseNotFound:        {http.StatusNotFound, "License not found"},
	ActivationNotFound:     {http.StatusNotFound, "Activation not found"},
	SeatLimitReached:       {http.StatusConflict, "Seat limit reached"},
	LicenseSuspended:       {http.StatusForbidden, "License suspended"},
	LicenseCancelled:       {http.StatusForbidden, "License cancelled"},
	LicenseExpired:         {http.StatusForbidden, "License expired"},
	IdempotencyKeyReused:   {http.StatusUnprocessableEntity, "Idempotency key reused"},
	IdempotencyInProgress:  {http.StatusConflict, "Idempotency key in progress"},
	RateLimited:            {http.StatusTooManyRequests, "Rate limited"},
	MethodNotAllowed:       {http.StatusMethodNotAllowed, "Method not allowed"},
	Unavailable:            {http.StatusServiceUnavailable, "Service unavailable"},
}

// Status is the HTTP status of a kind; unknown kinds are 500.
func (k Kind) Status() int {
	if e, ok := table[k]; ok {
		return e.status
	}
	return http.StatusInternalServerError
}

// Title is the short human-readable summary of a kind.
func (k Kind) Title() string {
	if e, ok := table[k]; ok {
		return e.title
	}
	return table[Internal].title
}

// Error is a domain error with a kind and a message that is safe to show to clients.
type Error struct {
	Kind   Kind
	Detail string
	// Status overrides the kind's default status when non-zero (422 vs 400 for
	// invalid_request, for example).
	Status int
}

func (e *Error) Error() string { return string(e.Kind) + ": " + e.Detail }

// HTTPStatus is the status this error is reported with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Kind.Status()
}

// New returns an error of kind k with a formatted detail.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Invalid returns a 400 invalid_request naming the offending field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Kind: InvalidRequest, Detail: field + ": " + fmt.Sprintf(format, args...)}
}

// Unprocessable returns a 422 invalid_request naming the offending field: the request was
// well-formed JSON but a value is out of range.
func Unprocessable(field, format string, args ...any) *Error {
	return &Error{Kind: InvalidRequest, Detail: field + ": " + fmt.Sprintf(format, args...), Status: http.StatusUnprocessableEntity}
}

// KindOf returns the kind of err, Internal when err is not (or does not wrap) an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err is an *Error of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// Body is the RFC 9457 document.
type Body struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      Kind   `json:"code"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// TypeBase prefixes every problem type URI.
const TypeBase = "https://docs.licensing.example/problems/"

// ContentType is the media type of problem documents.
const ContentType = "application/problem+json"

// From turns any error into a problem body. Internal errors never leak their cause.
func From(err error, requestID string) Body {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Kind: Internal, Detail: "an internal error occurred; it has been logged"}
	}
	return Body{
		Type:      TypeBase + string(e.Kind),
		Title:     e.Kind.Title(),
		Status:    e.HTTPStatus(),
		Detail:    e.Detail,
		Code:      e.Kind,
		RequestID: requestID,
	}
}

// Marshal renders err as a problem+json document and returns it with its status.
func Marshal(err error, requestID string) (int, []byte) {
	b := From(err, requestID)
	out, _ := json.Marshal(b)
	return b.Status, out
}
