package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/licensing/licensing/internal/natstest"
	"github.com/licensing/licensing/shared/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func rows(ids ...int64) []row {
	var b []row
	for _, id := range ids {
		b = append(b, row{id: id, subject: event.Subject("b", "k"), payload: fmt.Appendf(nil, `{"id":%d}`, id), created: time.Now()})
	}
	return b
}

// TestStaleLeaderCannotPublish: a relay that took the lease reads the stream's last
// sequence and every publish expects it, so a leader that was paused and publishes what it
// read before the pause (rows the new leader has published already, and rows it has not)
// stores nothing once the new leader has published, whatever the deduplication window. A
// batch whose head was already stored (a lost acknowledgement) is stored exactly once.
func TestStaleLeaderCannotPublish(t *testing.T) {
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := EnsureStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	stale, fresh := New(nil, js, Config{}, log, Metrics{}), New(nil, js, Config{}, log, Metrics{})
	stored := func() uint64 {
		t.Helper()
		s, err := js.Stream(ctx, event.Stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	// the first leader publishes rows 1 and 2
	var staleSeq uint64
	if acked, err := stale.publish(ctx, rows(1, 2), &staleSeq); err != nil || len(acked) != 2 || staleSeq != 2 {
		t.Fatalf("first leader: acked %v seq %d err %v", acked, staleSeq, err)
	}
	// ... is paused; the new leader takes the lease, reads the sequence, publishes row 3
	// and a heartbeat
	freshSeq, err := fresh.lastSeq(ctx)
	if err != nil || freshSeq != 2 {
		t.Fatalf("last seq %d %v", freshSeq, err)
	}
	if acked, err := fresh.publish(ctx, rows(3), &freshSeq); err != nil || len(acked) != 1 {
		t.Fatalf("new leader: %v %v", acked, err)
	}
	if err := fresh.heartbeat(ctx, time.Now(), &freshSeq); err != nil || freshSeq != 4 {
		t.Fatalf("heartbeat: seq %d %v", freshSeq, err)
	}
	// the paused leader wakes up in the middle of publishing rows 3 and 4
	acked, err := stale.publish(ctx, rows(3, 4), &staleSeq)
	if !errors.Is(err, errSeqMoved) || len(acked) != 0 {
		t.Fatalf("stale leader: acked %v err %v, want nothing acked and errSeqMoved", acked, err)
	}
	if err := stale.heartbeat(ctx, time.Now(), &staleSeq); !errors.Is(err, errSeqMoved) {
		t.Fatalf("stale heartbeat: %v", err)
	}
	if n := stored(); n != 4 {
		t.Fatalf("%d messages stored, want 4 (rows 1-3 and one heartbeat)", n)
	}

	// the new leader re-publishes row 3 (its acknowledgement was lost) with row 4: row 3
	// is a duplicate, row 4 is refused (the pipeline expected the stream to move), then
	// stored after re-reading the sequence
	acked, err = fresh.publish(ctx, rows(3, 4), &freshSeq)
	if !errors.Is(err, errSeqMoved) || len(acked) != 1 || acked[0] != 3 {
		t.Fatalf("re-publish: acked %v err %v", acked, err)
	}
	if freshSeq, err = fresh.lastSeq(ctx); err != nil {
		t.Fatal(err)
	}
	if acked, err := fresh.publish(ctx, rows(4), &freshSeq); err != nil || len(acked) != 1 {
		t.Fatalf("after re-reading the sequence: %v %v", acked, err)
	}
	if n := stored(); n != 5 {
		t.Fatalf("%d messages stored, want 5", n)
	}
}
