// Package problem defines the closed set of error kinds the service reports (the stable
// codes of API.md) and the error value that carries one. It knows nothing of HTTP: each
// transport (writer/api, edge/server) owns its kind→status table and renders RFC 9457
// problem documents itself. Anything that is not an *Error is reported as Internal.
package problem

import (
	"errors"
	"fmt"
)

// Kind is a stable, machine-readable error code. Clients branch on it.
type Kind string

// The closed set of kinds (API.md).
const (
	Internal                Kind = "internal"
	InvalidRequest          Kind = "invalid_request"
	Unauthorized            Kind = "unauthorized"
	InsufficientScope       Kind = "insufficient_scope"
	NotFound                Kind = "not_found"
	Conflict                Kind = "conflict"
	UnknownProduct          Kind = "unknown_product"
	ProductAlreadyLicensed  Kind = "product_already_licensed"
	InvalidTransition       Kind = "invalid_transition"
	LicenseNotFound         Kind = "license_not_found"
	ActivationNotFound      Kind = "activation_not_found"
	SeatLimitReached        Kind = "seat_limit_reached"
	DevInstanceLimitReached Kind = "dev_instance_limit_reached"
	LicenseSuspended        Kind = "license_suspended"
	LicenseCancelled        Kind = "license_cancelled"
	LicenseExpired          Kind = "license_expired"
	IdempotencyKeyReused    Kind = "idempotency_key_reused"
	IdempotencyInProgress   Kind = "idempotency_in_progress"
	RateLimited             Kind = "rate_limited"
	UnsupportedMediaType    Kind = "unsupported_media_type"
	MethodNotAllowed        Kind = "method_not_allowed"
	Unavailable             Kind = "unavailable"
)

var titles = map[Kind]string{
	Internal:                "Internal server error",
	InvalidRequest:          "Invalid request",
	Unauthorized:            "Unauthorized",
	InsufficientScope:       "Insufficient scope",
	NotFound:                "Not found",
	Conflict:                "Conflict",
	UnknownProduct:          "Unknown product",
	ProductAlreadyLicensed:  "Product already licensed",
	InvalidTransition:       "Invalid transition",
	LicenseNotFound:         "License not found",
	ActivationNotFound:      "Activation not found",
	SeatLimitReached:        "Seat limit reached",
	DevInstanceLimitReached: "Development instance limit reached",
	LicenseSuspended:        "License suspended",
	LicenseCancelled:        "License cancelled",
	LicenseExpired:          "License expired",
	IdempotencyKeyReused:    "Idempotency key reused",
	IdempotencyInProgress:   "Idempotency key in progress",
	RateLimited:             "Rate limited",
	UnsupportedMediaType:    "Unsupported media type",
	MethodNotAllowed:        "Method not allowed",
	Unavailable:             "Service unavailable",
}

// Kinds lists every kind (for transports that check their tables cover them all).
func Kinds() []Kind {
	out := make([]Kind, 0, len(titles))
	for k := range titles {
		out = append(out, k)
	}
	return out
}

// Known reports whether k is one of the closed set.
func (k Kind) Known() bool {
	_, ok := titles[k]
	return ok
}

// Title is the short human-readable summary of a kind.
func (k Kind) Title() string {
	if t, ok := titles[k]; ok {
		return t
	}
	return titles[Internal]
}

// Reason refines invalid_request: whether the request could not be read as the contract
// says (Malformed: a syntax error, an unknown field, a bad parameter) or was read but a
// value is not acceptable (BadValue). Transports choose a status for each.
type Reason uint8

const (
	// Malformed: the request cannot be read as the contract says.
	Malformed Reason = iota
	// BadValue: the request is well-formed but a value is out of range.
	BadValue
	// HeadTooLarge: the request head (request line and headers) is over the limit.
	HeadTooLarge
	// TimedOut: the request did not arrive whole within the server's read timeout (408,
	// which HTTP clients recognise on a connection they left idle and close quietly).
	TimedOut
)

// Error is a domain error with a kind and a message that is safe to show to clients.
type Error struct {
	Kind   Kind
	Detail string
	// Reason refines InvalidRequest.
	Reason Reason
	// Cause, when set, is what went wrong underneath (a dependency's error): logged,
	// never shown to clients.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return string(e.Kind) + ": " + e.Detail + ": " + e.Cause.Error()
	}
	return string(e.Kind) + ": " + e.Detail
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// New returns an error of kind k with a formatted detail.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Invalid returns an invalid_request for a request that cannot be read as the contract
// says (malformed body, unknown field, wrong type, bad query parameter or header), naming
// the field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Kind: InvalidRequest, Detail: field + ": " + fmt.Sprintf(format, args...), Reason: Malformed}
}

// Unacceptable returns an invalid_request for a well-formed request in which a value is out
// of range, naming the field.
func Unacceptable(field, format string, args ...any) *Error {
	return &Error{Kind: InvalidRequest, Detail: field + ": " + fmt.Sprintf(format, args...), Reason: BadValue}
}

// As returns the *Error err is or wraps, and an Internal error when it is none: the detail
// of an internal error never reaches a client.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Internal, Detail: "an internal error occurred; it has been logged"}
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

// TypeBase prefixes every problem type URI.
const TypeBase = "https://docs.licensing.example/problems/"
