// Package relay forwards the public writes an edge receives (activation, deactivation) to
// the writers over pooled fasthttp clients with timeouts, passing on the request id and
// the client's address, and returns the writer's status and body unchanged. The edge
// never writes licensing data itself.
//
// With several writers (they share one Postgres primary), requests go round robin to the
// writers whose circuit breaker (internal/breaker) is closed; when a call fails without an
// answer (refused, reset, timed out), the request is sent to the next writer, once per
// writer.
// Repeating a public write is safe: an activation is idempotent per instance (the repeat
// answers 200 with the same body), and a deactivation repeated after the first one took
// effect answers 404 activation_not_found, exactly as the plugin's own retry would. A
// writer that failed is skipped for ProbeEvery, then one request probes it.
package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/internal/breaker"
	"github.com/licensing/licensing/shared/envconfig"
	"github.com/valyala/fasthttp"
)

// Config configures the client.
type Config struct {
	// WriterURLs are the writers' base URLs (http or https).
	WriterURLs []string
	// Timeout bounds one relayed call, connect to last byte (default 3s).
	Timeout time.Duration
	// MaxConns bounds connections to each writer (default 256).
	MaxConns int
	// ProbeEvery is how long a writer that failed is skipped (default 1s).
	ProbeEvery time.Duration
	// SourceIP, when set, is the local address the connections to the writers come from
	// (the local topology: the writer trusts only that loopback address as a proxy).
	SourceIP string
}

// Client relays requests to the writers.
type Client struct {
	writers []writer
	timeout time.Duration
	next    atomic.Uint64
}

type writer struct {
	hc   *fasthttp.HostClient
	host string
	br   *breaker.Breaker
}

// ErrNoWriter is returned when every writer was skipped or failed.
var ErrNoWriter = errors.New("no writer answered")

// New returns a client for the writers.
func New(cfg Config, log *slog.Logger, m *metrics.Metrics) (*Client, error) {
	if len(cfg.WriterURLs) == 0 {
		return nil, errors.New("no writer url")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 256
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = time.Second
	}
	c := &Client{timeout: cfg.Timeout}
	dialer := &net.Dialer{}
	if cfg.SourceIP != "" {
		ip := net.ParseIP(cfg.SourceIP)
		if ip == nil {
			return nil, fmt.Errorf("writer source address %q: not an IP address", cfg.SourceIP)
		}
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	for _, raw := range cfg.WriterURLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("writer url %q: must be http(s)://host[:port]", envconfig.Redact(raw))
		}
		addr := u.Host
		if u.Port() == "" {
			if u.Scheme == "https" {
				addr = net.JoinHostPort(u.Hostname(), "443")
			} else {
				addr = net.JoinHostPort(u.Hostname(), "80")
			}
		}
		hc := &fasthttp.HostClient{
			Addr:                     addr,
			Name:                     "license-edge",
			IsTLS:                    u.Scheme == "https",
			MaxConns:                 cfg.MaxConns,
			ReadTimeout:              cfg.Timeout,
			WriteTimeout:             cfg.Timeout,
			MaxIdleConnDuration:      30 * time.Second,
			MaxConnWaitTimeout:       cfg.Timeout,
			NoDefaultUserAgentHeader: true,
			// the client never retries on its own: Forward decides which writer is next
			MaxIdemponentCallAttempts: 1,
			RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
			DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
				d := *dialer
				d.Timeout = min(timeout, 2*time.Second)
				return d.Dial("tcp", addr)
			},
		}
		c.writers = append(c.writers, writer{hc: hc, host: u.Host,
			br: breaker.New("writer "+u.Host, cfg.ProbeEvery, 1, nil, log, m.TierOpenFunc("writer "+u.Host))})
	}
	return c, nil
}

// passed are the request headers relayed to the writer besides the ones set here.
var passed = []string{"Content-Type", "Idempotency-Key", "User-Agent", "Accept"}

// returned are the response headers copied back to the client.
var returned = []string{"Content-Type", "Retry-After", "Idempotent-Replayed", "Cache-Control", "Location"}

// Forward sends ctx's request to a writer at the same path and query and writes the
// writer's answer into ctx's response. X-Forwarded-For carries clientIP alone: the
// address the edge resolved (the writer trusts the edge, and only the edge, to say it).
// On error nothing has been written.
func (c *Client) Forward(ctx *fasthttp.RequestCtx, requestID, clientIP string) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	req.Header.SetMethodBytes(ctx.Method())
	req.SetRequestURIBytes(ctx.Request.URI().RequestURI())
	for _, h := range passed {
		if v := ctx.Request.Header.Peek(h); len(v) > 0 {
			req.Header.SetBytesV(h, v)
		}
	}
	req.Header.Set("X-Request-Id", requestID)
	req.Header.Set("X-Forwarded-For", clientIP)
	req.SetBodyRaw(ctx.Request.Body())

	var errs []error
	first := int(c.next.Add(1) % uint64(len(c.writers)))
	for i := range c.writers {
		w := c.writers[(first+i)%len(c.writers)]
		done, ok := w.br.Allow()
		if !ok {
			errs = append(errs, fmt.Errorf("%s: skipped after failing", w.host))
			continue
		}
		req.Header.SetHost(w.host)
		err := w.hc.DoTimeout(req, resp, c.timeout)
		done(err)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.host, err))
			resp.Reset()
			continue
		}
		ctx.Response.SetStatusCode(resp.StatusCode())
		for _, h := range returned {
			if v := resp.Header.Peek(h); len(v) > 0 {
				ctx.Response.Header.SetBytesV(h, v)
			}
		}
		ctx.Response.SetBody(resp.Body())
		return nil
	}
	return fmt.Errorf("relay to writer: %w: %w", ErrNoWriter, errors.Join(errs...))
}

// SetDialer replaces how c connects to the writers (tests: in-memory listeners).
func SetDialer(c *Client, dial func(addr string) (net.Conn, error)) {
	for _, w := range c.writers {
		w.hc.DialTimeout = nil
		w.hc.Dial = dial
	}
}
