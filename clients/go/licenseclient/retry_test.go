package licenseclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/writer/openapi"
	"github.com/pb33f/libopenapi"
)

// script answers each attempt in turn and records what was sent.
type script struct {
	answers []func() (*http.Response, error)
	keys    []string
	bodies  []string
}

func (s *script) Do(req *http.Request) (*http.Response, error) {
	s.keys = append(s.keys, req.Header.Get("Idempotency-Key"))
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
	}
	s.bodies = append(s.bodies, string(b))
	i := min(len(s.keys)-1, len(s.answers)-1)
	return s.answers[i]()
}

func status(code int, hdr ...string) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		h := http.Header{}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Set(hdr[i], hdr[i+1])
		}
		return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader("{}"))}, nil
	}
}

func fail(err error) func() (*http.Response, error) {
	return func() (*http.Response, error) { return nil, err }
}

var (
	errReset   = &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
)

func TestRetrier(t *testing.T) {
	fast := RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxRetryAfter: 2 * time.Second}
	cases := []struct {
		name         string
		method, path string
		key          string // Idempotency-Key set by the caller
		answers      []func() (*http.Response, error)
		wantAttempts int
		wantStatus   int // 0: an error
		wantKey      bool
	}{
		{"brand-post-503-retried-same-key", "POST", "/v1/license-keys", "", []func() (*http.Response, error){status(503), status(201)}, 2, 201, true},
		{"brand-post-reset-retried-same-key", "POST", "/v1/licenses/x/renew", "", []func() (*http.Response, error){fail(errReset), status(200)}, 2, 200, true},
		{"caller-key-kept", "POST", "/v1/products", "order-42", []func() (*http.Response, error){status(503), status(201)}, 2, 201, true},
		{"get-503-retried-without-key", "GET", "/v1/licenses/x", "", []func() (*http.Response, error){status(503), status(503), status(200)}, 3, 200, false},
		{"gives-up-after-max-attempts", "GET", "/v1/products", "", []func() (*http.Response, error){status(503)}, 4, 503, false},
		{"operator-post-no-key-503-not-retried", "POST", "/v1/brands", "", []func() (*http.Response, error){status(503), status(201)}, 1, 503, false},
		{"public-post-reset-not-retried", "POST", "/v1/public/acme/activations", "", []func() (*http.Response, error){fail(errReset), status(201)}, 1, 0, false},
		{"public-post-refused-retried", "POST", "/v1/public/acme/activations", "", []func() (*http.Response, error){fail(errRefused), status(201)}, 2, 201, false},
		{"public-post-429-retried", "POST", "/v1/public/acme/activations", "", []func() (*http.Response, error){status(429, "Retry-After", "0"), status(201)}, 2, 201, false},
		{"429-retry-after-too-long-returned", "GET", "/v1/products", "", []func() (*http.Response, error){status(429, "Retry-After", "3600"), status(200)}, 1, 429, false},
		{"400-not-retried", "POST", "/v1/products", "", []func() (*http.Response, error){status(400), status(201)}, 1, 400, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &script{answers: c.answers}
			n := 0
			r := &retrier{next: s, policy: fast, newKey: func() string { n++; return "generated-" + string(rune('0'+n)) }}
			req, err := http.NewRequest(c.method, "http://writer.test"+c.path, bytes.NewReader([]byte(`{"a":1}`)))
			if err != nil {
				t.Fatal(err)
			}
			if c.key != "" {
				req.Header.Set("Idempotency-Key", c.key)
			}
			resp, err := r.Do(req)
			if len(s.keys) != c.wantAttempts {
				t.Fatalf("%d attempts, want %d", len(s.keys), c.wantAttempts)
			}
			switch {
			case c.wantStatus == 0 && err == nil:
				t.Fatalf("answer %d, want the error", resp.StatusCode)
			case c.wantStatus != 0 && err != nil:
				t.Fatalf("error %v, want %d", err, c.wantStatus)
			case c.wantStatus != 0 && resp.StatusCode != c.wantStatus:
				t.Fatalf("answer %d, want %d", resp.StatusCode, c.wantStatus)
			}
			for i := range s.keys {
				if s.keys[i] != s.keys[0] {
					t.Errorf("attempt %d sent Idempotency-Key %q, the first sent %q", i+1, s.keys[i], s.keys[0])
				}
				if s.bodies[i] != `{"a":1}` {
					t.Errorf("attempt %d sent body %q", i+1, s.bodies[i])
				}
			}
			switch {
			case c.key != "" && s.keys[0] != c.key:
				t.Errorf("sent key %q, the caller set %q", s.keys[0], c.key)
			case c.wantKey && s.keys[0] == "":
				t.Error("no Idempotency-Key sent")
			case !c.wantKey && s.keys[0] != "":
				t.Errorf("Idempotency-Key %q sent where the operation takes none", s.keys[0])
			}
			if n > 1 {
				t.Errorf("%d keys generated for one logical call", n)
			}
		})
	}
}

func TestRetrierHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	s := &script{answers: []func() (*http.Response, error){status(429, "Retry-After", "1"), status(200)}}
	r := &retrier{next: s, policy: RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, MaxRetryAfter: time.Minute}}
	req, _ := http.NewRequest("GET", "http://writer.test/v1/products", nil)
	start := time.Now()
	resp, err := r.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	// 1 s plus at most 10 % jitter; the upper bound leaves room for a loaded machine but
	// catches a wait of twice what the server asked
	if took := time.Since(start); took < time.Second || took >= 1900*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After said 1 s", took)
	}
}

func TestRetrierStopsWithContext(t *testing.T) {
	s := &script{answers: []func() (*http.Response, error){status(503)}}
	r := &retrier{next: s, policy: RetryPolicy{MaxAttempts: 10, BaseDelay: time.Second, MaxDelay: time.Second, MaxRetryAfter: time.Minute}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://writer.test/v1/products", nil)
	start := time.Now()
	resp, err := r.Do(req)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("returned after %v, the deadline was 100 ms", took)
	}
	// a backoff delay past the deadline returns the last answer at once
	if err != nil || resp.StatusCode != 503 || len(s.keys) != 1 {
		t.Fatalf("got %v %v after %d attempts, want the 503 after 1", resp, err, len(s.keys))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{"0", 0, true},
		{"Thu, 01 Jan 2026 00:00:05 GMT", 5 * time.Second, true},
		{"Wed, 31 Dec 2025 23:59:00 GMT", 0, true},
		{"", 0, false},
		{"soon", 0, false},
		{"-1", 0, false},
	} {
		got, ok := retryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("retryAfter(%q) = %v %v, want %v %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestAcceptsIdempotencyKeyMatchesDocument holds AcceptsIdempotencyKey against every
// operation of the OpenAPI document: a POST takes Idempotency-Key exactly when the rule says
// so, and no other method takes one.
func TestAcceptsIdempotencyKeyMatchesDocument(t *testing.T) {
	t.Parallel()
	doc, err := libopenapi.NewDocument(openapi.Spec())
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	posts := 0
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			takes := false
			for _, p := range append(item.Parameters, op.Parameters...) {
				if p.In == "header" && strings.EqualFold(p.Name, "Idempotency-Key") {
					takes = true
				}
			}
			if !strings.EqualFold(method, "post") {
				if takes {
					t.Errorf("%s %s takes Idempotency-Key: the client adds keys to POSTs only", method, path)
				}
				continue
			}
			posts++
			if got := AcceptsIdempotencyKey(path); got != takes {
				t.Errorf("POST %s: AcceptsIdempotencyKey = %v, the document says %v", path, got, takes)
			}
		}
	}
	if posts < 10 {
		t.Fatalf("only %d POST operations found in the document", posts)
	}
}
