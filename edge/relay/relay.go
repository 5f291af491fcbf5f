// Package relay forwards the public writes an edge receives (activation, deactivation) to
// the writer over a pooled fasthttp client with timeouts, passing on the request id and
// the client's address, and returns the writer's status and body unchanged. The edge
// never writes licensing data itself.
package relay

import (
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// Config configures the client.
type Config struct {
	// WriterURL is the writer's base URL (http or https).
	WriterURL string
	// Timeout bounds one relayed call, connect to last byte (default 10s).
	Timeout time.Duration
	// MaxConns bounds connections to the writer (default 256).
	MaxConns int
}

// Client relays requests to the writer.
type Client struct {
	hc      *fasthttp.HostClient
	host    string
	timeout time.Duration
}

// New returns a client for the writer.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.WriterURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("writer url %q: must be http(s)://host[:port]", cfg.WriterURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 256
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
		// a write is never retried by the client: the writer decides about replays
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			return fasthttp.DialTimeout(addr, min(timeout, 2*time.Second))
		},
	}
	return &Client{hc: hc, host: u.Host, timeout: cfg.Timeout}, nil
}

// passed are the request headers relayed to the writer besides the ones set here.
var passed = []string{"Content-Type", "Idempotency-Key", "User-Agent", "Accept"}

// returned are the response headers copied back to the client.
var returned = []string{"Content-Type", "Retry-After", "Idempotent-Replayed", "Cache-Control", "Location"}

// Forward sends ctx's request to the writer at the same path and query and writes the
// writer's answer into ctx's response. On error nothing has been written.
func (c *Client) Forward(ctx *fasthttp.RequestCtx, requestID string) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	req.Header.SetMethodBytes(ctx.Method())
	req.SetRequestURIBytes(ctx.Request.URI().RequestURI())
	req.Header.SetHost(c.host)
	for _, h := range passed {
		if v := ctx.Request.Header.Peek(h); len(v) > 0 {
			req.Header.SetBytesV(h, v)
		}
	}
	req.Header.Set("X-Request-Id", requestID)
	ip := ctx.RemoteIP().String()
	if prior := ctx.Request.Header.Peek("X-Forwarded-For"); len(prior) > 0 {
		ip = string(prior) + ", " + ip
	}
	req.Header.Set("X-Forwarded-For", ip)
	req.SetBodyRaw(ctx.Request.Body())

	if err := c.hc.DoTimeout(req, resp, c.timeout); err != nil {
		return fmt.Errorf("relay to writer: %w", err)
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

// SetDialer replaces how c connects to the writer (tests: in-memory listeners).
func SetDialer(c *Client, dial func(addr string) (net.Conn, error)) {
	c.hc.DialTimeout = nil
	c.hc.Dial = dial
}
