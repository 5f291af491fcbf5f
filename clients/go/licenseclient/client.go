// Package licenseclient is the Go client brand backends use to call the license service: the
// generated licenseapi client, plus what a generator cannot know — the credentials, an
// Idempotency-Key for every brand POST that accepts one (one per logical call, the same on
// each retry), retries with backoff and jitter on 429, 503 and connection errors that honour
// Retry-After, and a problem+json error type carrying the API's stable `code`.
//
//	c, err := licenseclient.New("https://licensing.example.com", os.Getenv("LICENSE_API_KEY"))
//	key, err := licenseclient.Expect[*licenseapi.LicenseKeyHeaders](c.CreateLicenseKey(ctx, req, licenseapi.CreateLicenseKeyParams{}))
//	if licenseclient.CodeOf(err) == licenseapi.ErrorCodeProductAlreadyLicensed { ... }
package licenseclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/licensing/licensing/clients/go/licenseapi"
	"github.com/ogen-go/ogen/ogenerrors"
)

// Client is the generated client (every operation of the API as a method) over a
// retrying, idempotency-keying HTTP client.
type Client struct {
	*licenseapi.Client
}

// Option adjusts a Client.
type Option func(*config)

type config struct {
	http          *http.Client
	operatorToken string
	retry         RetryPolicy
	newKey        func() string
}

// RetryPolicy says how often and how long a call is tried again.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included (1: no retry).
	MaxAttempts int
	// BaseDelay is the first backoff delay; each retry doubles it up to MaxDelay, with ±50 %
	// jitter. A Retry-After header replaces the backoff delay for that retry.
	BaseDelay, MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits for; a longer one (and one
	// past the context's deadline) is returned to the caller as the error answer.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy: four attempts, 200 ms doubling to 5 s, Retry-After up to 30 s.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 4, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second, MaxRetryAfter: 30 * time.Second}

// WithHTTPClient sends the requests through c (its transport, timeout, tracing); the default
// is a client with a 30 s timeout per attempt.
func WithHTTPClient(c *http.Client) Option { return func(cfg *config) { cfg.http = c } }

// WithOperatorToken adds the operator token, for the operator operations (brands and their
// API keys). Brand backends do not have one.
func WithOperatorToken(token string) Option { return func(cfg *config) { cfg.operatorToken = token } }

// WithRetryPolicy replaces DefaultRetryPolicy.
func WithRetryPolicy(p RetryPolicy) Option { return func(cfg *config) { cfg.retry = p } }

// WithIdempotencyKeys replaces the generator of Idempotency-Key values (random UUIDs), e.g.
// to derive them from the backend's own order ids.
func WithIdempotencyKeys(next func() string) Option {
	return func(cfg *config) { cfg.newKey = next }
}

// New returns a client of the service at baseURL (scheme, host and any path prefix the
// service is mounted under) that authenticates with the brand API key apiKey (`lsk_...`;
// empty for the public operations only).
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	cfg := config{
		http:   &http.Client{Timeout: 30 * time.Second},
		retry:  DefaultRetryPolicy,
		newKey: uuid.NewString,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.retry.MaxAttempts < 1 {
		return nil, fmt.Errorf("licenseclient: MaxAttempts %d: at least 1", cfg.retry.MaxAttempts)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("licenseclient: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("licenseclient: base URL %q: want http(s)://host[/prefix]", baseURL)
	}
	doer := &retrier{next: cfg.http, prefix: strings.TrimSuffix(u.Path, "/"), policy: cfg.retry, newKey: cfg.newKey}
	c, err := licenseapi.NewClient(baseURL, credentials{apiKey: apiKey, operator: cfg.operatorToken}, licenseapi.WithClient(doer))
	if err != nil {
		return nil, fmt.Errorf("licenseclient: %w", err)
	}
	return &Client{Client: c}, nil
}

// credentials is the security source: each credential the client was given, and
// ogenerrors.ErrSkipClientSecurity for one it was not (the call then fails before it is
// sent, unless the operation accepts the other credential).
type credentials struct{ apiKey, operator string }

func (c credentials) BrandApiKey(context.Context, licenseapi.OperationName) (licenseapi.BrandApiKey, error) {
	if c.apiKey == "" {
		return licenseapi.BrandApiKey{}, ogenerrors.ErrSkipClientSecurity
	}
	return licenseapi.BrandApiKey{Token: c.apiKey}, nil
}

func (c credentials) OperatorToken(_ context.Context, op licenseapi.OperationName) (licenseapi.OperatorToken, error) {
	// The cross-brand customer lookup takes either credential: a brand backend given both
	// asks as its brand (one Authorization header is sent, the last one set wins).
	if c.operator == "" || (c.apiKey != "" && op == licenseapi.ListCustomerLicensesAcrossBrandsOperation) {
		return licenseapi.OperatorToken{}, ogenerrors.ErrSkipClientSecurity
	}
	return licenseapi.OperatorToken{Token: c.operator}, nil
}

var _ licenseapi.SecuritySource = credentials{}

// Error is a problem+json answer (RFC 9457): the service refused the call. Branch on Code,
// never on Title.
type Error struct {
	Status    int
	Code      licenseapi.ErrorCode
	Title     string
	Detail    string
	RequestID string
	// RetryAfter is the server's Retry-After on a 429 (0 when absent).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("license service: %d %s", e.Status, e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// CodeOf returns the problem code of err, or "" when err is not a problem answer.
func CodeOf(err error) licenseapi.ErrorCode {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

// problemAnswer is every generated problem answer (BadRequestHeaders, ConflictHeaders, ...).
type problemAnswer interface {
	GetXRequestID() string
	GetResponse() licenseapi.Problem
}

// Expect turns a generated call's answer into the success answer S, or into an error: the
// transport or decoding error as it is, a problem answer as *Error, any other answer as an
// error naming its type.
//
//	key, err := Expect[*licenseapi.LicenseKeyHeaders](c.CreateLicenseKey(ctx, req, params))
func Expect[S, R any](res R, err error) (S, error) {
	var zero S
	if err != nil {
		return zero, err
	}
	if s, ok := any(res).(S); ok {
		return s, nil
	}
	if p, ok := any(res).(problemAnswer); ok {
		return zero, problemError(p)
	}
	return zero, fmt.Errorf("license service: unexpected answer %T, want %T", res, zero)
}

func problemError(p problemAnswer) *Error {
	pr := p.GetResponse()
	e := &Error{Status: pr.Status, Code: pr.Code, Title: pr.Title, Detail: pr.Detail.Or(""), RequestID: p.GetXRequestID()}
	if e.RequestID == "" {
		e.RequestID = pr.RequestID.Or("")
	}
	if r, ok := p.(interface{ GetRetryAfter() int }); ok {
		e.RetryAfter = time.Duration(r.GetRetryAfter()) * time.Second
	}
	return e
}
