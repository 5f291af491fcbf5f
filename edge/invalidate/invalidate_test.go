package invalidate

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/licensing/licensing/edge/metrics"
	"github.com/licensing/licensing/internal/natstest"
	"github.com/licensing/licensing/shared/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

type recorder struct {
	mu       sync.Mutex
	versions []int64
	resets   atomic.Int64
}

func (r *recorder) apply(_ context.Context, ch event.Change) {
	r.mu.Lock()
	r.versions = append(r.versions, ch.Version)
	r.mu.Unlock()
}

func (r *recorder) got() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.versions...)
}

func stream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: event.Stream, Subjects: []string{event.SubjectAll},
		Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	return js
}

func publish(t *testing.T, js jetstream.JetStream, v int64) {
	t.Helper()
	b, _ := json.Marshal(event.Change{ID: v, Type: event.LicenseSuspended, BrandID: "b", Brand: "acme", KeyID: "k",
		LicenseKey: "KEY", Version: v, CommitTime: time.Now()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, err := js.Publish(ctx, event.Subject("b", "k"), b)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("publish: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func start(t *testing.T, url string, rec *recorder, m *metrics.Metrics, now func() time.Time, log *slog.Logger, opts ...func(*Config)) *Consumer {
	t.Helper()
	cfg := Config{URL: url, Name: "test", Heartbeat: 500 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	c := New(cfg, rec.apply,
		func() { rec.resets.Add(1) }, now, log, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestResumesAfterNATSRestart: events are applied in order, and those published while
// the edge was cut off are applied after NATS comes back (resume from the last sequence).
func TestResumesAfterNATSRestart(t *testing.T) {
	ns := natstest.Start(t)
	js := stream(t, ns.URL())
	publish(t, js, 1) // before the edge subscribed: not for it
	rec := &recorder{}
	m := metrics.New(prometheus.NewRegistry())
	c := start(t, ns.URL(), rec, m, time.Now, slog.New(slog.DiscardHandler))
	waitFor(t, 5*time.Second, "subscribed", c.Connected)
	publish(t, js, 2)
	publish(t, js, 3)
	waitFor(t, 5*time.Second, "events 2 and 3", func() bool { return equal(rec.got(), []int64{2, 3}) })
	resets := rec.resets.Load()

	ns.Stop()
	ns.Restart(t)
	publish(t, js, 4) // the edge's consumer is gone with the old server
	publish(t, js, 5)
	waitFor(t, 15*time.Second, "events published after the restart", func() bool { return equal(rec.got(), []int64{2, 3, 4, 5}) })
	if v := testutil.ToFloat64(m.Invalidations); v != 4 {
		t.Errorf("invalidations counted %v, want 4", v)
	}
	if rec.resets.Load() != resets {
		t.Errorf("%d resets after the restart: nothing was lost", rec.resets.Load()-resets)
	}
}

// logSignal is a log handler that closes seen when a record with message msg is logged.
type logSignal struct {
	msg  string
	once sync.Once
	seen chan struct{}
}

func (h *logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h *logSignal) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logSignal) WithGroup(string) slog.Handler            { return h }
func (h *logSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestLateSubscriptionDropsCache: an edge that could not follow the stream from its
// start cannot trust what it cached meanwhile, so it drops it once subscribed.
func TestLateSubscriptionDropsCache(t *testing.T) {
	ns := natstest.Start(t)
	url := ns.URL()
	stream(t, url)
	ns.Stop()
	rec := &recorder{}
	m := metrics.New(prometheus.NewRegistry())
	clk := &fakeClock{}
	clk.ns.Store(time.Now().UnixNano())
	failed := &logSignal{msg: "jetstream not available yet, retrying", seen: make(chan struct{})}
	c := start(t, url, rec, m, clk.Now, slog.New(failed))
	select {
	case <-failed.seen: // the edge runs, unsubscribed: its first attempt failed
	case <-time.After(10 * time.Second):
		t.Fatal("no failed subscription attempt with NATS stopped")
	}
	if c.Connected() || rec.resets.Load() != 0 {
		t.Fatal("subscribed to a stopped server")
	}
	clk.Advance(2 * time.Second) // unsubscribed for longer than a start takes
	ns.Restart(t)
	waitFor(t, 10*time.Second, "subscribed", c.Connected)
	if rec.resets.Load() != 1 || testutil.ToFloat64(m.Resets) != 1 {
		t.Fatalf("%d resets (%v counted) after a late subscription, want 1", rec.resets.Load(), testutil.ToFloat64(m.Resets))
	}
}

// fakeMsg is a delivered message at a stream sequence (mock at the NATS boundary).
type fakeMsg struct {
	jetstream.Msg
	seq  uint64
	data []byte
}

func (m fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}}, nil
}
func (m fakeMsg) Data() []byte    { return m.data }
func (m fakeMsg) Subject() string { return event.Subject("b", "k") }

// TestGapInStreamDropsCache: when messages the edge needed are gone from the stream
// (retention, purge), the next delivered sequence jumps and the edge drops its cache.
func TestGapInStreamDropsCache(t *testing.T) {
	rec := &recorder{}
	m := metrics.New(prometheus.NewRegistry())
	c := New(Config{}, rec.apply, func() { rec.resets.Add(1) }, time.Now, slog.New(slog.DiscardHandler), m)
	msg := func(seq uint64, v int64) fakeMsg {
		b, _ := json.Marshal(event.Change{Brand: "acme", LicenseKey: "KEY", Version: v, CommitTime: time.Now()})
		return fakeMsg{seq: seq, data: b}
	}
	c.lastSeq.Store(10)
	c.handle(context.Background(), 0, msg(11, 1))
	c.handle(context.Background(), 0, msg(12, 2))
	if rec.resets.Load() != 0 {
		t.Fatal("reset without a gap")
	}
	c.handle(context.Background(), 0, msg(15, 3)) // 13 and 14 are gone
	if rec.resets.Load() != 1 || testutil.ToFloat64(m.Resets) != 1 {
		t.Fatalf("resets %d after a gap, want 1", rec.resets.Load())
	}
	if !equal(rec.got(), []int64{1, 2, 3}) || c.LastSeq() != 15 {
		t.Fatalf("applied %v, last seq %d", rec.got(), c.LastSeq())
	}
}

// TestSilenceCountsFromTheLastHeartbeat: Silence is the time since the last relay
// heartbeat was applied, or since the consumer was made before the first one (the edge's
// stale marking reads it).
func TestSilenceCountsFromTheLastHeartbeat(t *testing.T) {
	ns := natstest.Start(t)
	js := stream(t, ns.URL())
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC).UnixNano())
	c := start(t, ns.URL(), &recorder{}, metrics.New(prometheus.NewRegistry()), clk.Now, slog.New(slog.DiscardHandler))
	waitFor(t, 5*time.Second, "subscribed", c.Connected)
	clk.Advance(7 * time.Second)
	if s := c.Silence(); s != 7*time.Second {
		t.Fatalf("silence before any heartbeat = %v, want 7s (since the consumer was made)", s)
	}
	hb, _ := json.Marshal(event.Heartbeat{Type: event.HeartbeatType, CertifiedAt: clk.Now()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, event.HeartbeatSubject, hb); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "heartbeat applied", func() bool { return c.Silence() == 0 })
	clk.Advance(3 * time.Second)
	if s := c.Silence(); s != 3*time.Second {
		t.Fatalf("silence 3 s after a heartbeat = %v", s)
	}
}

// TestWatchdogRecreatesAStuckConsumer: an edge whose connection to NATS stays up while
// nothing crosses it (a black hole, as when its region's leaf link is cut) follows the
// stream again within seconds of the healing. Without the watchdog it waits for nats.go's
// own reset, whose attempt sent into the hole waits 10 s.
func TestWatchdogRecreatesAStuckConsumer(t *testing.T) {
	ns := natstest.Start(t)
	js := stream(t, ns.URL())
	url, hole := holeProxy(t, ns)
	rec := &recorder{}
	m := metrics.New(prometheus.NewRegistry())
	c := start(t, url, rec, m, time.Now, slog.New(slog.DiscardHandler), stalledAfter(time.Second))
	waitFor(t, 5*time.Second, "subscribed", c.Connected)

	// the relay: a heartbeat every 100 ms, straight to NATS
	ctx, stop := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	defer func() { stop(); <-relayDone }()
	go func() {
		defer close(relayDone)
		for ctx.Err() == nil {
			hb, _ := json.Marshal(event.Heartbeat{Type: event.HeartbeatType, CertifiedAt: time.Now()})
			_, _ = js.Publish(ctx, event.HeartbeatSubject, hb)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	waitFor(t, 5*time.Second, "heartbeats applied", func() bool { return c.Silence() < 500*time.Millisecond })

	hole(true)
	// two missed pull heartbeats (2 × 500 ms): nats.go's reset is under way, its request
	// lost in the hole (a second and a half of margin for a slow machine)
	waitFor(t, 5*time.Second, "silence", func() bool { return c.Silence() > 2500*time.Millisecond })
	if !c.Conn().IsConnected() {
		t.Fatal("the connection dropped: the hole did not keep it up, nothing to test")
	}
	publish(t, js, 1) // a change while the edge is cut off
	hole(false)
	healed := time.Now()
	waitFor(t, 6*time.Second, "the change and heartbeats applied after the healing", func() bool {
		return equal(rec.got(), []int64{1}) && c.Silence() < 500*time.Millisecond
	})
	t.Logf("following the stream again %v after the healing", time.Since(healed).Round(time.Millisecond))
	if testutil.ToFloat64(m.Resubscribes) == 0 {
		t.Error("the watchdog did not recreate the consumer: nats.go's own reset was faster")
	}
}

// holeProxy puts a toxiproxy in front of ns and returns its client URL and a switch that
// makes it a black hole in both directions (connections stay up, nothing crosses) or
// heals it.
func holeProxy(t *testing.T, ns *natstest.Server) (string, func(on bool)) {
	t.Helper()
	p := toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		"nats", "127.0.0.1:0", strings.TrimPrefix(ns.URL(), "nats://"))
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return "nats://" + p.Listen, func(on bool) {
		t.Helper()
		for _, dir := range []string{"upstream", "downstream"} {
			var err error
			if on {
				_, err = p.Toxics.AddToxicJson(strings.NewReader(`{"name":"hole_` + dir + `","type":"timeout","stream":"` + dir + `","attributes":{"timeout":0}}`))
			} else {
				err = p.Toxics.RemoveToxic(context.Background(), "hole_"+dir)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func stalledAfter(d time.Duration) func(*Config) { return func(c *Config) { c.Stalled = d } }

// TestWatchdogLeavesAMovingConsumerAlone: an edge working through a backlog (no relay
// heartbeat among the changes, each change slow to apply) is behind the stream for
// seconds but moves: the watchdog does not replace its consumer.
func TestWatchdogLeavesAMovingConsumerAlone(t *testing.T) {
	ns := natstest.Start(t)
	js := stream(t, ns.URL())
	rec := &recorder{}
	slow := func(ctx context.Context, ch event.Change) {
		time.Sleep(10 * time.Millisecond)
		rec.apply(ctx, ch)
	}
	m := metrics.New(prometheus.NewRegistry())
	c := New(Config{URL: ns.URL(), Name: "test", Heartbeat: 500 * time.Millisecond, Stalled: time.Second}, slow,
		nil, time.Now, slog.New(slog.DiscardHandler), m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 5*time.Second, "subscribed", c.Connected)
	const n = 300 // 3 s of applying, three watchdog periods
	want := make([]int64, n)
	for i := range n {
		publish(t, js, int64(i+1))
		want[i] = int64(i + 1)
	}
	waitFor(t, 20*time.Second, "every change applied", func() bool { return len(rec.got()) == n })
	if got := rec.got(); !equal(got, want) {
		t.Fatalf("applied out of order or twice: %v", got)
	}
	if r := testutil.ToFloat64(m.Resubscribes); r != 0 {
		t.Errorf("the watchdog replaced a consumer that was moving, %v times", r)
	}
}

// TestWatchdogDropsWhenTheMissedMessagesAreGone: an edge cut off while the stream got a
// message that was then purged cannot be given it by any consumer: once the link heals the
// watchdog drops the cache, as after a gap, instead of recreating the consumer again and
// again.
func TestWatchdogDropsWhenTheMissedMessagesAreGone(t *testing.T) {
	ns := natstest.Start(t)
	js := stream(t, ns.URL())
	url, hole := holeProxy(t, ns)
	rec := &recorder{}
	m := metrics.New(prometheus.NewRegistry())
	c := start(t, url, rec, m, time.Now, slog.New(slog.DiscardHandler), stalledAfter(500*time.Millisecond))
	waitFor(t, 5*time.Second, "subscribed", c.Connected)
	resets := rec.resets.Load()
	hole(true)
	publish(t, js, 1) // the writer's last change before it went down; no heartbeat follows
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, event.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	hole(false)
	waitFor(t, 8*time.Second, "cache dropped", func() bool { return rec.resets.Load() > resets })
	if c.LastSeq() != 1 || len(rec.got()) != 0 {
		t.Errorf("last seq %d, applied %v: want 1 and nothing", c.LastSeq(), rec.got())
	}
	if r := testutil.ToFloat64(m.Resubscribes); r != 0 {
		t.Errorf("%v consumers recreated for messages that are gone", r)
	}
}

// TestReplacedConsumerIsIgnored: once the consumer the watchdog made delivers, what the
// one it replaced still delivers is dropped; until then the old one is heard (the new one
// may never have come up); a message both deliver is applied once.
func TestReplacedConsumerIsIgnored(t *testing.T) {
	rec := &recorder{}
	c := New(Config{}, rec.apply, nil, time.Now, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	msg := func(seq uint64, v int64) fakeMsg {
		b, _ := json.Marshal(event.Change{Brand: "acme", LicenseKey: "KEY", Version: v, CommitTime: time.Now()})
		return fakeMsg{seq: seq, data: b}
	}
	old := c.gens.Add(1)
	c.handle(context.Background(), old, msg(1, 1))
	cur := c.gens.Add(1)                           // the replacement, not delivering yet
	c.handle(context.Background(), old, msg(2, 2)) // still the one heard
	c.handle(context.Background(), cur, msg(2, 2)) // the replacement delivers 2 again: skipped
	c.handle(context.Background(), old, msg(3, 3)) // the replaced one, still delivering: dropped
	c.handle(context.Background(), cur, msg(3, 3))
	if !equal(rec.got(), []int64{1, 2, 3}) || c.LastSeq() != 3 {
		t.Fatalf("applied %v, last seq %d; want [1 2 3], 3", rec.got(), c.LastSeq())
	}
}
