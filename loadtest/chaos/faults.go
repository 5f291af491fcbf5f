package chaos

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// TakeoverBound is the longest a surviving writer may take to lead the outbox relay after
// the leader died or stalled: the lease lapses after 3 s without renewal, followers try
// it every second, plus a second of slack for a loaded machine.
const TakeoverBound = 5 * time.Second

// KillWriters kills a writer with SIGKILL n times, alternating writers, restarting each
// after down.
func KillWriters(n int, down, every time.Duration) func(context.Context, *Run) error {
	return func(ctx context.Context, r *Run) error {
		for i := range n {
			w := r.T.Writers[i%len(r.T.Writers)]
			r.Logf("kill -9 %s (pid %d)", w.Name, w.Pid())
			if err := w.Kill(); err != nil {
				return err
			}
			if err := sleep(ctx, down); err != nil {
				return err
			}
			t0 := time.Now()
			if err := w.Start(ctx); err != nil {
				return err
			}
			r.Logf("%s ready again after %v", w.Name, time.Since(t0).Round(time.Millisecond))
			if i < n-1 {
				if err := sleep(ctx, every); err != nil {
					return err
				}
			}
		}
		r.Note("%d × kill -9 of a writer, each down %v (the other writer and the edges' failover served meanwhile)", n, down)
		return nil
	}
}

// leader waits for exactly one relay leader and returns it.
func leader(ctx context.Context, r *Run) (int, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if i := r.T.Leader(ctx); i >= 0 {
			return i, nil
		}
		if time.Now().After(deadline) {
			return -1, errors.New("no single outbox relay leader")
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return -1, err
		}
	}
}

// takeover waits until a writer other than old leads the relay and returns how long that
// took since t0; over TakeoverBound is a failed check.
func takeover(ctx context.Context, r *Run, old int, t0 time.Time, how string) (time.Duration, error) {
	ch := Check{Name: fmt.Sprintf("relay taken over within %v after %s", TakeoverBound, how), Checked: 1}
	defer func() { r.Extra = append(r.Extra, ch) }()
	for {
		for i, u := range r.T.WriterURLs {
			if i == old || !r.T.Writers[i].Running() {
				continue
			}
			if v, err := r.T.Metric(ctx, u, "license_outbox_relay_leading"); err == nil && v == 1 {
				d := time.Since(t0)
				if d > TakeoverBound {
					ch.fail("took %v", d)
				}
				return d, nil
			}
		}
		if time.Since(t0) > 30*time.Second {
			ch.fail("no takeover within 30 s")
			return 0, errors.New("no takeover")
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// heartbeatsResume waits until every edge applies relay heartbeats again after t0.
func heartbeatsResume(ctx context.Context, r *Run, t0 time.Time) time.Duration {
	base := make([]float64, len(r.T.EdgeURLs))
	for i, u := range r.T.EdgeURLs {
		base[i], _ = r.T.Metric(ctx, u, "license_edge_heartbeats_applied_total")
	}
	for time.Since(t0) < 30*time.Second {
		all := true
		for i, u := range r.T.EdgeURLs {
			v, err := r.T.Metric(ctx, u, "license_edge_heartbeats_applied_total")
			all = all && err == nil && v > base[i]
		}
		if all {
			return time.Since(t0)
		}
		if sleep(ctx, 20*time.Millisecond) != nil {
			break
		}
	}
	return -1
}

// KillLeader kills the writer leading the outbox relay and measures the takeover.
func KillLeader(ctx context.Context, r *Run) error {
	old, err := leader(ctx, r)
	if err != nil {
		return err
	}
	w := r.T.Writers[old]
	r.Logf("kill -9 leader %s (pid %d)", w.Name, w.Pid())
	if err := w.Kill(); err != nil {
		return err
	}
	t0 := time.Now()
	d, err := takeover(ctx, r, old, t0, "kill -9 of the leader")
	if err != nil {
		return err
	}
	hb := heartbeatsResume(ctx, r, time.Now())
	r.Note("kill -9 of the relay leader %s: another writer leads after %v, edges apply its heartbeats %v later", w.Name,
		d.Round(time.Millisecond), hb.Round(time.Millisecond))
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	return w.Start(ctx)
}

// PauseLeader stops the relay leader with SIGSTOP for pause, measures the takeover, lets
// it continue, and checks in the stream that it stored nothing once the new leader had
// published (every message names its relay), and that it does not lead again.
func PauseLeader(pause time.Duration) func(context.Context, *Run) error {
	return func(ctx context.Context, r *Run) error {
		old, err := leader(ctx, r)
		if err != nil {
			return err
		}
		w, u := r.T.Writers[old], r.T.WriterURLs[old]
		holder, err := r.T.LeaseHolder(ctx)
		if err != nil {
			return err
		}
		before, err := readStream(ctx, r.T.NATSURL)
		if err != nil {
			return err
		}
		var pausedAt uint64 // the stream's last sequence before the pause
		if len(before) > 0 {
			pausedAt = before[len(before)-1].Seq
		}
		r.Logf("SIGSTOP leader %s (pid %d, relay %s) for %v", w.Name, w.Pid(), holder, pause)
		if err := w.Pause(); err != nil {
			return err
		}
		t0 := time.Now()
		d, terr := takeover(ctx, r, old, t0, "SIGSTOP of the leader")
		if err := sleep(ctx, pause-time.Since(t0)); err != nil {
			return err
		}
		if err := w.Resume(); err != nil {
			return err
		}
		if terr != nil {
			return terr
		}
		// give the woken writer time to act on what it held when it stopped
		if err := sleep(ctx, 3*time.Second); err != nil {
			return err
		}
		ch := Check{Name: "a paused leader stores nothing in the stream when it wakes up"}
		msgs, err := readStream(ctx, r.T.NATSURL)
		if err != nil {
			ch.fail("read stream: %v", err)
		}
		// messages of the old leader after the first one of a new leader
		var newLeader string
		late := 0
		for _, m := range msgs {
			switch {
			case m.Seq <= pausedAt:
			case m.Holder == holder && newLeader != "":
				late++
			case m.Holder != holder && newLeader == "":
				newLeader = m.Holder
			}
		}
		ch.Checked = len(msgs) - int(pausedAt)
		if newLeader == "" {
			ch.fail("no message from a new leader in the stream")
		}
		if late > 0 {
			ch.fail("%s stored %d messages after the new leader %s had published", holder, late, newLeader)
		}
		if v, err := r.T.Metric(ctx, u, "license_outbox_relay_leading"); err != nil || v != 0 {
			ch.fail("%s leads again (%v %v)", w.Name, v, err)
		}
		r.Extra = append(r.Extra, ch)
		r.Note("SIGSTOP of the relay leader %s for %v: another writer leads after %v; after it woke up it stored nothing (%d messages read)",
			w.Name, pause, d.Round(time.Millisecond), len(msgs))
		return nil
	}
}

// Down takes procs down (SIGKILL, or a clean stop), waits d, and starts them again in
// the same order.
func Down(d time.Duration, kill bool, procs func(*Topology) []*Proc) func(context.Context, *Run) error {
	return func(ctx context.Context, r *Run) error {
		ps := procs(r.T)
		for _, p := range ps {
			if p == nil {
				return errNotOwned
			}
			r.Logf("down: %s (kill=%v)", p.Name, kill)
			var err error
			if kill {
				err = p.Kill()
			} else {
				err = p.Stop(30 * time.Second)
			}
			if err != nil {
				return err
			}
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
		for _, p := range ps {
			t0 := time.Now()
			if err := p.Start(ctx); err != nil {
				return err
			}
			r.Logf("%s back after %v", p.Name, time.Since(t0).Round(time.Millisecond))
		}
		return nil
	}
}

// RestartPrimary crashes the primary (SIGQUIT: immediate shutdown, recovery on start) and
// starts it again at once.
func RestartPrimary(ctx context.Context, r *Run) error {
	p := r.T.Primary
	if p == nil {
		return errNotOwned
	}
	t0 := time.Now()
	if err := p.Signal(syscall.SIGQUIT); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Wait(wctx); err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	r.Note("primary crashed (immediate shutdown) and restarted: serving again after %v", time.Since(t0).Round(time.Millisecond))
	return nil
}

// Catalogue is every scenario of `make chaos`, in order.
func Catalogue() []Scenario {
	pg := func(f func(*Topology) []*Proc) func(*Topology) []*Proc { return f }
	return []Scenario{
		{Name: "writer-kill9", Description: "kill -9 of a writer, four times, alternating, under provisioning and activation load",
			Before: 5 * time.Second, After: 5 * time.Second, Fault: KillWriters(4, time.Second, 3*time.Second), MinDuring: 0.999},
		{Name: "leader-kill9", Description: "kill -9 of the writer leading the outbox relay",
			Before: 5 * time.Second, After: 5 * time.Second, Fault: KillLeader, MinDuring: 0.999},
		{Name: "leader-sigstop", Description: "SIGSTOP of the relay leader for 8 s, then SIGCONT",
			Before: 5 * time.Second, After: 5 * time.Second, Fault: PauseLeader(8 * time.Second), MinDuring: 0.999},
		{Name: "redis-down", Description: "Redis killed (kill -9) for 10 s, restarted empty",
			Before: 5 * time.Second, After: 5 * time.Second, MinDuring: 0.99,
			Fault: Down(10*time.Second, true, func(t *Topology) []*Proc { return []*Proc{t.Redis} })},
		{Name: "nats-down", Description: "NATS killed (kill -9) for 10 s, restarted with its store",
			Before: 5 * time.Second, After: 5 * time.Second, MinDuring: 0.99,
			Fault: Down(10*time.Second, true, func(t *Topology) []*Proc { return []*Proc{t.NATS} })},
		{Name: "replica-down", Description: "the read replica stopped for 10 s",
			Before: 5 * time.Second, After: 5 * time.Second, MinDuring: 0.99, NeedsPostgres: true,
			Fault: Down(10*time.Second, false, pg(func(t *Topology) []*Proc { return []*Proc{t.Replica} }))},
		{Name: "edge-down", Description: "one edge killed (kill -9) for 10 s; clients fail over to the other",
			Before: 5 * time.Second, After: 5 * time.Second, MinDuring: 0.99,
			Fault: Down(10*time.Second, true, func(t *Topology) []*Proc { return []*Proc{t.Edges[0]} })},
		{Name: "primary-restart", Description: "the primary crashes (immediate shutdown) and restarts",
			Before: 5 * time.Second, After: 5 * time.Second, MinDuring: 0.99, NeedsPostgres: true, Fault: RestartPrimary},
		{Name: "primary-stop", Description: "the primary stopped for 10 s",
			Before: 5 * time.Second, After: 5 * time.Second, MinDuring: 0.99, NeedsPostgres: true,
			Fault: Down(10*time.Second, false, pg(func(t *Topology) []*Proc { return []*Proc{t.Primary} }))},
		{Name: "below-cache-down", Description: "everything below the edge cache down for 20 s: Redis, NATS, replica and primary",
			Before: 10 * time.Second, After: 10 * time.Second, NeedsPostgres: true,
			Fault: Down(20*time.Second, true, pg(func(t *Topology) []*Proc { return []*Proc{t.Primary, t.Replica, t.Redis, t.NATS} }))},
	}
}

// Short is the shortened run of `make test`: a kill -9 of a writer (twice) and a Redis
// outage, with the load's phases cut down.
func Short() []Scenario {
	return []Scenario{
		{Name: "writer-kill9", Description: "kill -9 of a writer, twice, under provisioning and activation load",
			Before: 2 * time.Second, After: 3 * time.Second, Fault: KillWriters(2, time.Second, 2*time.Second), MinDuring: 0.999},
		{Name: "redis-down", Description: "Redis killed (kill -9) for 4 s, restarted empty",
			Before: 2 * time.Second, After: 3 * time.Second, MinDuring: 0.99,
			Fault: Down(4*time.Second, true, func(t *Topology) []*Proc { return []*Proc{t.Redis} })},
	}
}
