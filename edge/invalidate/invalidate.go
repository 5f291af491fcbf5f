// Package invalidate follows the writer's change events on NATS JetStream and hands each
// to the edge's tiers (known-version bump, Redis tombstone). Each edge reads the stream
// through its own ephemeral ordered consumer starting after the stream's last message at
// subscription time; when the connection or the consumer is lost, the ordered consumer is
// recreated from the last stream sequence applied, so nothing is missed while the stream
// still holds it (24 h). When messages the edge needed are gone (a gap in the stream
// sequence), and once when the subscription is first established (what was cached before
// it may have missed events), reset is called so the edge drops what it cannot trust. The hard revalidation ceiling covers the time NATS
// is silent or unreachable.
//
// The ordered consumer recreates itself after missed heartbeats, but with its own backoff
// (1 s doubling to 10 s, each attempt waiting up to 10 s): an edge whose NATS server
// stayed reachable while the stream did not (a region cut off from the centre, its leaf
// link down) would follow the stream again only 10 to 20 s after the link heals. A
// watchdog closes that gap: every Config.Stalled (jittered), when the edge has applied
// nothing since its previous look, no relay heartbeat for Config.Stalled and its
// connection is up, it asks the stream for its last sequence; when the stream holds
// messages the edge has not seen, the consumer is stuck and a new one is made from the
// last sequence applied (the old one is stopped once the new one runs; should the new one
// not move either, the watchdog looks less often, up to every 8 periods). A consumer that
// moves, however far behind, is left alone. While the writer is down the stream does not
// grow and nothing is recreated; when the messages after the last one applied are gone
// from the stream, the edge drops its cache as after a gap.
package invalidate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/retry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures the consumer.
type Config struct {
	URL  string
	Name string // client name (node id)
	// Heartbeat is the pull heartbeat; a silent consumer is recreated after two missed
	// heartbeats (default 1s, at least 500ms: JetStream's lower bound).
	Heartbeat time.Duration
	// CurrentWithin is how recent the last relay heartbeat must be for the stream to count
	// as current (default 1s).
	CurrentWithin time.Duration
	// Stalled is how long without a relay heartbeat, the connection up, before the
	// watchdog checks whether the stream moved on without the edge, and how often it
	// checks again (default 2s; the relay sends one every 250 ms).
	Stalled time.Duration
}

// Consumer applies change events.
type Consumer struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics.Metrics
	now   func() time.Time
	apply func(context.Context, event.Change)
	reset func()

	nc      atomic.Pointer[nats.Conn]
	lastSeq atomic.Uint64
	// gens numbers the subscriptions; gen is the newest that has delivered a message.
	// handle drops what an older one still delivers (a consumer the watchdog replaced
	// stops asynchronously). handleMu keeps apply on one goroutine in stream order across
	// replacements.
	gens, gen     atomic.Uint64
	handleMu      sync.Mutex
	subscribed    atomic.Bool
	lastHeartbeat atomic.Int64 // unix nanos when the last relay heartbeat was applied
	created       int64        // unix nanos when the consumer was made (Silence before any heartbeat)
	// certified is the latest heartbeat certification applied (unix nanos, writer
	// clock): every change committed before it has been applied. certifiedCh is closed
	// and replaced each time it moves.
	certified   atomic.Int64
	certifiedMu sync.Mutex
	certifiedCh chan struct{}
}

// WaitCertified waits until a heartbeat certifying at least t has been applied (every
// change committed before t has then been applied), or ctx ends; it reports whether it
// was.
func (c *Consumer) WaitCertified(ctx context.Context, t time.Time) bool {
	want := t.UnixNano()
	for {
		c.certifiedMu.Lock()
		if c.certifiedCh == nil {
			c.certifiedCh = make(chan struct{})
		}
		ch := c.certifiedCh
		c.certifiedMu.Unlock()
		if c.certified.Load() >= want {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// Certified is the latest heartbeat certification applied (zero: none yet).
func (c *Consumer) Certified() time.Time {
	if n := c.certified.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// certify records a heartbeat's certification and wakes the waiters.
func (c *Consumer) certify(at time.Time) {
	if at.UnixNano() <= c.certified.Load() {
		return
	}
	c.certified.Store(at.UnixNano())
	c.certifiedMu.Lock()
	if c.certifiedCh != nil {
		close(c.certifiedCh)
		c.certifiedCh = nil
	}
	c.certifiedMu.Unlock()
}

// Current reports whether the edge has applied a relay heartbeat within the configured
// window (Config.CurrentWithin): it has then applied every change committed up to
// shortly before, and may answer "no such key" from its own knowledge.
func (c *Consumer) Current() bool {
	hb := c.lastHeartbeat.Load()
	return hb != 0 && c.now().Sub(time.Unix(0, hb)) < c.cfg.CurrentWithin
}

// Silence is how long ago the consumer last applied a relay heartbeat, or, before the
// first one, how long ago it was created: how long the edge has heard nothing from the
// centre. The relay sends a heartbeat every 250 ms while a writer leads it.
func (c *Consumer) Silence() time.Duration {
	hb := c.lastHeartbeat.Load()
	if hb == 0 {
		hb = c.created
	}
	return c.now().Sub(time.Unix(0, hb))
}

// New returns a consumer calling apply for every change and reset when the edge's cached
// state can no longer be trusted. apply runs on one goroutine, in stream order.
func New(cfg Config, apply func(context.Context, event.Change), reset func(), now func() time.Time, log *slog.Logger, m *metrics.Metrics) *Consumer {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	cfg.Heartbeat = max(cfg.Heartbeat, 500*time.Millisecond)
	if cfg.CurrentWithin <= 0 {
		cfg.CurrentWithin = time.Second
	}
	if cfg.Stalled <= 0 {
		cfg.Stalled = 2 * time.Second
	}
	return &Consumer{cfg: cfg, apply: apply, reset: reset, now: now, log: log, m: m, created: now().UnixNano()}
}

// Connected reports whether the consumer is connected and subscribed.
func (c *Consumer) Connected() bool {
	nc := c.nc.Load()
	return nc != nil && nc.IsConnected() && c.subscribed.Load()
}

// Conn is the consumer's NATS connection, nil until Run connects (metrics).
func (c *Consumer) Conn() *nats.Conn { return c.nc.Load() }

// Subscribed reports whether the consumer has subscribed (LastSeq is meaningful).
func (c *Consumer) Subscribed() bool { return c.subscribed.Load() }

// LastSeq is the stream sequence of the last applied event.
func (c *Consumer) LastSeq() uint64 { return c.lastSeq.Load() }

// Run consumes until ctx ends. It never fails because NATS is down: it keeps retrying.
func (c *Consumer) Run(ctx context.Context) error {
	nc, err := nats.Connect(c.cfg.URL, nats.Name("license-edge-"+c.cfg.Name), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(250*time.Millisecond), nats.Timeout(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close at shutdown
				c.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { c.log.Info("nats reconnected") }))
	if err != nil {
		return fmt.Errorf("nats connect: %w", err)
	}
	c.nc.Store(nc)
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	started := c.now()
	var cc jetstream.ConsumeContext
	first := true
	err = retry.Until(ctx, retry.Policy{Initial: 250 * time.Millisecond, Max: 2 * time.Second}, func() error {
		var err error
		cc, err = c.subscribe(ctx, js, 0)
		return err
	}, func(err error, _ time.Duration) {
		if first {
			c.log.Warn("jetstream not available yet, retrying", "err", err)
		}
		first = false
	})
	if err != nil {
		return nil // ctx ended
	}
	// whatever was cached before the subscription may have missed events published
	// before the start sequence: drop it (nearly nothing on a normal start)
	if late := c.now().Sub(started); late > time.Second {
		c.dropAll(fmt.Sprintf("subscribed %v after start", late.Round(time.Millisecond)))
	} else if c.reset != nil {
		c.reset()
	}
	c.subscribed.Store(true)
	wait := c.cfg.Stalled
	prev := c.lastSeq.Load()
	for {
		t := time.NewTimer(wait + rand.N(wait/4+1))
		select {
		case <-ctx.Done():
			t.Stop()
			stopAsync(cc)
			return nil
		case <-t.C:
		}
		seq := c.lastSeq.Load()
		progressed := seq != prev
		prev = seq
		if progressed {
			wait = c.cfg.Stalled // a consumer that is only behind (a backlog, a slow apply) is left alone
			continue
		}
		if !nc.IsConnected() || c.Silence() < c.cfg.Stalled {
			continue // nats.go reconnects and resumes the consumer itself
		}
		switch c.stuck(ctx, js) {
		case streamGone:
			// the messages after the last one applied are no longer in the stream: the
			// edge missed them, as after a gap
			c.dropAll(fmt.Sprintf("event stream holds nothing after %d", seq))
		case streamAhead:
			// the new consumer first; the old one, which may be inside nats.go's own
			// reset holding its lock for up to 10 s, is stopped without waiting once the
			// new one runs (and is ignored from its first message on)
			ncc, err := c.subscribe(ctx, js, seq+1)
			if err != nil {
				c.log.Debug("event stream consumer not recreated", "err", err)
				continue
			}
			stopAsync(cc)
			cc = ncc
			c.m.Resubscribes.Inc()
			c.log.Info("event stream consumer recreated", "from_seq", seq+1, "silence", c.Silence().Round(time.Millisecond))
			// should the new one not move either, ask less often (up to every 8 periods)
			wait = min(2*wait, 8*c.cfg.Stalled)
		}
	}
}

// streamState is what the watchdog learns from the stream.
type streamState int

const (
	streamUnknown streamState = iota // no answer within a second, or nothing after the last applied
	streamAhead                      // messages after the last one applied
	streamGone                       // sequences after the last one applied, but no message left
)

// stuck asks the stream (within a second) whether it holds messages after the last one
// applied.
func (c *Consumer) stuck(ctx context.Context, js jetstream.JetStream) streamState {
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := js.Stream(sctx, event.Stream)
	if err != nil {
		return streamUnknown
	}
	state, last := st.CachedInfo().State, c.lastSeq.Load()
	switch {
	case state.LastSeq <= last:
		return streamUnknown
	case state.Msgs == 0 || state.FirstSeq > state.LastSeq:
		c.handleMu.Lock()
		if c.lastSeq.Load() < state.LastSeq {
			c.lastSeq.Store(state.LastSeq)
		}
		c.handleMu.Unlock()
		return streamGone
	}
	return streamAhead
}

func stopAsync(cc jetstream.ConsumeContext) {
	if cc != nil {
		go cc.Stop()
	}
}

// subscribe creates an ordered consumer from stream sequence from, or, when from is 0,
// after the stream's last message. Once it delivers, what an earlier subscription still
// delivers is dropped.
func (c *Consumer) subscribe(ctx context.Context, js jetstream.JetStream, from uint64) (jetstream.ConsumeContext, error) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := from
	if start == 0 {
		st, err := js.Stream(sctx, event.Stream)
		if err != nil {
			return nil, err
		}
		start = st.CachedInfo().State.LastSeq + 1
		c.lastSeq.Store(start - 1)
	}
	gen := c.gens.Add(1)
	cons, err := js.OrderedConsumer(sctx, event.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.SubjectAll},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return nil, err
	}
	return cons.Consume(func(msg jetstream.Msg) { c.handle(ctx, gen, msg) },
		jetstream.PullHeartbeat(c.cfg.Heartbeat), jetstream.PullExpiry(5*c.cfg.Heartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				c.log.Debug("jetstream consume", "err", err)
			}
		}))
}

func (c *Consumer) handle(ctx context.Context, gen uint64, msg jetstream.Msg) {
	c.handleMu.Lock()
	defer c.handleMu.Unlock()
	switch cur := c.gen.Load(); {
	case gen < cur:
		return // a replaced consumer, not yet stopped
	case gen > cur:
		c.gen.Store(gen) // its replacement delivers: from now on only it is heard
	}
	if md, err := msg.Metadata(); err == nil {
		last := c.lastSeq.Load()
		if last != 0 && md.Sequence.Stream <= last {
			return // applied already
		}
		if last != 0 && md.Sequence.Stream > last+1 {
			// messages between were removed from the stream (retention, purge)
			c.dropAll(fmt.Sprintf("gap in event stream: %d after %d", md.Sequence.Stream, last))
		}
		c.lastSeq.Store(md.Sequence.Stream)
	}
	if msg.Subject() == event.HeartbeatSubject {
		// every change committed before the heartbeat's certification came before it
		c.lastHeartbeat.Store(c.now().UnixNano())
		c.m.Heartbeats.Inc()
		var hb event.Heartbeat
		if err := json.Unmarshal(msg.Data(), &hb); err == nil && !hb.CertifiedAt.IsZero() {
			c.certify(hb.CertifiedAt)
		}
		return
	}
	var ch event.Change
	if err := json.Unmarshal(msg.Data(), &ch); err != nil {
		c.log.Warn("undecodable change event", "subject", msg.Subject(), "err", err)
		return
	}
	c.apply(ctx, ch)
	c.m.Invalidations.Inc()
	if !ch.CommitTime.IsZero() {
		c.m.InvalidationLag.Observe(max(c.now().Sub(ch.CommitTime), 0).Seconds())
	}
}

func (c *Consumer) dropAll(reason string) {
	c.log.Warn("dropping cached state", "reason", reason)
	c.m.Resets.Inc()
	if c.reset != nil {
		c.reset()
	}
}
