package licenseclient

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// doer is what the generated client sends its requests with (ogen's ht.Client).
type doer interface {
	Do(*http.Request) (*http.Response, error)
}

// retrier is the generated client's HTTP client: it gives every brand POST that accepts one
// an Idempotency-Key (unless the caller set one) and sends the request again, with the same
// key, on 429, on 503 and on connection errors.
//
// What is retried: a 429 always (the limiter refused the request before anything ran); a
// refused connection always (nothing was sent); a 503 or any other connection error only
// when a repeat cannot do the work twice — a GET, HEAD, OPTIONS, PUT or DELETE, or a request
// carrying an Idempotency-Key (the service replays the first answer).
type retrier struct {
	next   doer
	prefix string // path of the base URL, stripped before matching operation paths
	policy RetryPolicy
	newKey func() string
}

func (r *retrier) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Header.Get("Idempotency-Key") == "" &&
		AcceptsIdempotencyKey(strings.TrimPrefix(req.URL.Path, r.prefix)) {
		req.Header.Set("Idempotency-Key", r.newKey())
	}
	repeatable := req.Header.Get("Idempotency-Key") != ""
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		repeatable = true
	}
	ctx := req.Context()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.RandomizationFactor, b.Multiplier = r.policy.BaseDelay, r.policy.MaxDelay, 0.5, 2
	for attempt := 1; ; attempt++ {
		resp, err := r.next.Do(req)
		if attempt >= r.policy.MaxAttempts || ctx.Err() != nil {
			return resp, err
		}
		wait := b.NextBackOff()
		switch {
		case err != nil:
			if !repeatable && !refused(err) {
				return resp, err
			}
		case resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode == http.StatusServiceUnavailable && repeatable):
			if after, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				if after > r.policy.MaxRetryAfter || pastDeadline(ctx, after) {
					return resp, nil
				}
				// at least what the server asked, plus up to a tenth of it so that clients
				// refused together do not come back together
				wait = after + rand.N(after/10+time.Millisecond)
			}
		default:
			return resp, nil
		}
		if pastDeadline(ctx, wait) {
			return resp, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return resp, err // the body cannot be sent again
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return resp, err
			}
			req = req.Clone(ctx)
			req.Body = body
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// refused is a connection that could not be opened: the request was not sent.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func pastDeadline(ctx context.Context, wait time.Duration) bool {
	d, ok := ctx.Deadline()
	return ok && time.Now().Add(wait).After(d)
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// AcceptsIdempotencyKey says whether a POST to path (the operation path, without the base
// URL's prefix) accepts Idempotency-Key: every brand POST does (API.md "Idempotency"); the
// operator's and the public ones do not. A test holds this against the OpenAPI document.
func AcceptsIdempotencyKey(path string) bool {
	return strings.HasPrefix(path, "/v1/") &&
		!strings.HasPrefix(path, "/v1/public/") && !strings.HasPrefix(path, "/v1/brands")
}
