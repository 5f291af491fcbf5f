package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/shared/retry"
	"github.com/licensing/licensing/writer/app"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamEvents reads the whole stream from its start until want events arrived or the
// deadline passed, and returns them in stream order.
func streamEvents(t *testing.T, url string, want int) []event.Change {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cons jetstream.Consumer
	for {
		cons, err = js.OrderedConsumer(ctx, event.Stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("ordered consumer: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll: the writer creates the stream asynchronously
	}
	var out []event.Change
	for len(out) < want {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("fetch: %v", err)
		}
		for m := range batch.Messages() {
			if m.Subject() == event.HeartbeatSubject {
				continue // the relay's certifications, between the changes
			}
			var c event.Change
			if err := json.Unmarshal(m.Data(), &c); err != nil {
				t.Fatalf("event %s: %v", m.Data(), err)
			}
			if m.Headers().Get(jetstream.MsgIDHeader) != event.MsgID(c.ID) {
				t.Fatalf("message id %q for outbox row %d", m.Headers().Get(jetstream.MsgIDHeader), c.ID)
			}
			out = append(out, c)
		}
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d events before the deadline", len(out), want)
		}
	}
	return out
}

// checkEvents asserts exactly one event per outbox row and, per key, versions 1..n in
// order.
func checkEvents(t *testing.T, evs []event.Change, outboxRows int) {
	t.Helper()
	if len(evs) != outboxRows {
		t.Fatalf("%d events for %d outbox rows", len(evs), outboxRows)
	}
	seen := map[int64]bool{}
	last := map[string]int64{}
	for _, ev := range evs {
		if seen[ev.ID] {
			t.Fatalf("outbox row %d delivered twice", ev.ID)
		}
		seen[ev.ID] = true
		if ev.Version != last[ev.KeyID]+1 {
			t.Fatalf("key %s: version %d after %d", ev.KeyID, ev.Version, last[ev.KeyID])
		}
		last[ev.KeyID] = ev.Version
		if ev.BrandID == "" || ev.LicenseKey == "" || ev.Type == "" {
			t.Fatalf("incomplete event %+v", ev)
		}
	}
}

// churn makes n changes on each of the keys: suspend/resume pairs and activations.
func churn(t testing.TB, e *env, brandKey string, keys []resource.LicenseKey, n int) {
	t.Helper()
	for i := range n {
		for _, k := range keys {
			id := k.Licenses[0].ID
			switch i % 3 {
			case 0:
				e.must(t, 200, "POST", "/v1/licenses/"+id+"/suspend", brandKey, nil)
			case 1:
				e.must(t, 200, "POST", "/v1/licenses/"+id+"/resume", brandKey, nil)
			case 2:
				e.must(t, 201, "POST", "/v1/public/events/activations", "", map[string]string{
					"license_key": k.Key, "product": "plugin", "instance": "site-" + time.Now().Format("150405.000000000")})
			}
		}
	}
}

func TestOutboxDeliversInOrderPerKey(t *testing.T) {
	e := start(t)
	key := e.brand(t, "events", "plugin")
	keys := []resource.LicenseKey{e.provision(t, key, "plugin", nil), e.provision(t, key, "plugin", nil), e.provision(t, key, "plugin", nil)}
	churn(t, e, key, keys, 10)
	evs := streamEvents(t, e.nats.URL(), e.count(t, "SELECT count(*) FROM outbox"))
	checkEvents(t, evs, e.count(t, "SELECT count(*) FROM outbox"))
	if evs[0].Type != event.KeyCreated || evs[0].Version != 1 {
		t.Fatalf("first event = %+v", evs[0])
	}
}

func TestOutboxSurvivesNATSAndWriterRestarts(t *testing.T) {
	e := start(t)
	key := e.brand(t, "events", "plugin")
	keys := []resource.LicenseKey{e.provision(t, key, "plugin", nil), e.provision(t, key, "plugin", nil)}
	churn(t, e, key, keys, 3)

	// NATS goes away; the writer keeps accepting changes (they wait in the outbox)
	e.nats.Stop()
	churn(t, e, key, keys, 4)
	if n := e.count(t, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"); n == 0 {
		t.Fatal("changes made while NATS was down were marked sent")
	}
	// the writer stops too, before NATS is back: a new writer must deliver the backlog
	e.stop()
	e.nats.Restart(t)
	e2 := startWith(t, e.db, e.nats)
	churn(t, e2, key, keys, 2)

	// simulate a crash after publishing but before marking sent: the relay publishes
	// these rows again and JetStream's deduplication drops the copies
	deadline := time.Now().Add(20 * time.Second)
	for e2.count(t, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("outbox not drained")
		}
		time.Sleep(20 * time.Millisecond) // poll with a deadline
	}
	if _, err := e2.admin(t).Exec(context.Background(), "UPDATE outbox SET sent_at = NULL WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 5)"); err != nil {
		t.Fatal(err)
	}
	total := e2.count(t, "SELECT count(*) FROM outbox")
	streamEvents(t, e2.nats.URL(), total) // every row arrived once before the re-publication
	for e2.count(t, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("re-published rows not marked sent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// read again after the re-publication: still exactly one message per row
	evs := streamEvents(t, e2.nats.URL(), total)
	checkEvents(t, evs, total)
}

// metricValue reads one sample of the writer's /metrics.
func metricValue(t *testing.T, e *env, name string) float64 {
	t.Helper()
	r := e.must(t, 200, "GET", "/metrics", "", nil, "X-Test-Undocumented", "true")
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return 0
}

// TestRelayLeadershipIsOneLeaseAcrossWriters: of two writers on one database exactly one
// relays; when it stops the other takes over, and every change reaches the stream once.
func TestRelayLeadershipIsOneLeaseAcrossWriters(t *testing.T) {
	a := start(t)
	b := startWith(t, a.db, a.nats)
	leaders := func() (float64, float64) {
		return metricValue(t, a, "license_outbox_relay_leading"), metricValue(t, b, "license_outbox_relay_leading")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		la, lb := leaders()
		if la+lb == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaders: a %v, b %v", la, lb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	leader, follower := a, b
	if la, _ := leaders(); la == 0 {
		leader, follower = b, a
	}
	key := leader.brand(t, "events", "plugin")
	keys := []resource.LicenseKey{leader.provision(t, key, "plugin", nil)}
	churn(t, follower, key, keys, 3)
	leader.stop() // hands the lease over
	stopped := time.Now()
	churn(t, follower, key, keys, 3)
	for metricValue(t, follower, "license_outbox_relay_leading") != 1 {
		if time.Since(stopped) > 5*time.Second {
			t.Fatal("the follower did not take the relay over")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("takeover %v after the leader stopped", time.Since(stopped).Round(time.Millisecond))
	total := follower.count(t, "SELECT count(*) FROM outbox")
	checkEvents(t, streamEvents(t, follower.nats.URL(), total), total)
}

// TestRelayResumesAtOnceAfterNATSReturns: the relay failed while NATS was away and waits
// 30 s before its next try (its retry policy here): the events written meanwhile go out
// as soon as NATS is back (the reconnect wakes the relay), not after the wait; and again
// after a second outage.
func TestRelayResumesAtOnceAfterNATSReturns(t *testing.T) {
	e := start(t, withConfig(func(c *app.Config) { c.RelayRetry = retry.Policy{Initial: 30 * time.Second, Max: 30 * time.Second} }))
	key := e.brand(t, "events", "plugin")
	keys := []resource.LicenseKey{e.provision(t, key, "plugin", nil)}
	for round := range 2 {
		failures := metricValue(t, e, "license_outbox_publish_failures_total")
		e.nats.Stop()
		churn(t, e, key, keys, 1)
		// the relay fails to publish (the event waits in the outbox)
		deadline := time.Now().Add(10 * time.Second)
		for metricValue(t, e, "license_outbox_publish_failures_total") == failures {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the relay did not notice NATS was gone", round)
			}
			time.Sleep(20 * time.Millisecond)
		}
		e.nats.Restart(t)
		back := time.Now()
		for e.count(t, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") > 0 {
			if time.Since(back) > 3*time.Second {
				t.Fatalf("round %d: events still unsent %v after NATS returned", round, time.Since(back))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("round %d: backlog sent %v after NATS returned", round, time.Since(back).Round(time.Millisecond))
	}
}

// TestWriterStaysReadyWithoutNATS: with NATS gone the writer keeps serving writes (their
// events wait in the outbox), so it stays in the load balancer: /readyz answers 200 with
// status degraded and license_writer_nats_connected drops to 0; when NATS is back it is
// ready again and the events go out.
func TestWriterStaysReadyWithoutNATS(t *testing.T) {
	e := start(t)
	key := e.brand(t, "events", "plugin")
	e.nats.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, e, "license_writer_nats_connected") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("license_writer_nats_connected still 1 with NATS stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// well past the old readiness probe's failure threshold
	for range 5 {
		r := e.must(t, 200, "GET", "/readyz", "", nil)
		var body struct{ Status string }
		if err := json.Unmarshal(r.Body, &body); err != nil || body.Status != "degraded" {
			t.Fatalf("readyz with NATS down: %s", r.Body)
		}
		e.provision(t, key, "plugin", nil)
	}
	if n := e.count(t, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"); n < 5 {
		t.Fatalf("%d events waiting in the outbox, want at least 5", n)
	}
	e.nats.Restart(t)
	deadline = time.Now().Add(10 * time.Second)
	for {
		r := e.must(t, 200, "GET", "/readyz", "", nil)
		if strings.Contains(string(r.Body), `"ready"`) && e.count(t, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0 &&
			metricValue(t, e, "license_writer_nats_connected") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS back: readyz %s", r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
