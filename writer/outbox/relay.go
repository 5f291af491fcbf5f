// Package outbox relays the transactional outbox to NATS JetStream. Every committed change
// wrote an outbox row in its own transaction; the relay publishes unsent rows in id order
// with the row id as JetStream message id (so a re-publish after a crash is deduplicated),
// then marks them sent. It resumes without loss after the writer or NATS restarts: a row is
// marked sent only after JetStream acknowledged it.
//
// One relay leads at a time across writer replicas, which keeps per-key order. Leadership
// is a lease in Postgres (table leases): the leader renews it every RenewEvery, another
// writer takes it over once it has gone LeaseTimeout without renewal, and everything the
// leader writes as leader is fenced by its lease token. A leader that was paused (SIGSTOP,
// a long GC, a stalled VM) checks its lease before each round when it wakes up and stops.
// What it was about to publish when it was paused is fenced in JetStream itself: every
// message the leader publishes (changes and heartbeats) expects the stream's last sequence
// to be the one the leader last saw (read when it took the lease, advanced by its own
// acknowledgements), so once the new leader has published anything, a stale leader's
// publish is refused and nothing is stored twice, however long the pause (message-id
// deduplication alone would only cover its two-minute window).
//
// Heartbeats: after every round that left nothing unsent, and at least every
// HeartbeatEvery while idle, the leader publishes a heartbeat into the same stream (subject
// event.HeartbeatSubject) certifying that every outbox row committed before the round
// began has been published. An edge that applied a recent heartbeat has therefore applied
// every change committed up to shortly before it (the stream is ordered), which is what
// lets it answer 404 from its own knowledge.
//
// After a failure the relay retries with the project's backoff policy, reset after a
// session that published; a reconnect to NATS (Wake) ends the wait at once.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/retry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaseName is the relay's row in table leases.
const LeaseName = "outbox-relay"

// Config tunes the relay.
type Config struct {
	BatchSize      int           // rows per round, default 500
	PollInterval   time.Duration // fallback when no notification arrives, default 1s
	Retention      time.Duration // sent and dispatched rows are deleted after this, default 1h
	AckTimeout     time.Duration // wait for JetStream acks, default 5s
	HeartbeatEvery time.Duration // default 250ms
	RenewEvery     time.Duration // lease renewal, default 1s
	LeaseTimeout   time.Duration // takeover after this without renewal, default 3s
	// Delay, when set, holds every round back this long (tests: a slow relay).
	Delay time.Duration
	// Retry is the policy between failed sessions (default retry.Default).
	Retry retry.Policy
}

// Metrics receives the relay's observations; any field may be nil.
type Metrics struct {
	Published func(n int)
	Failed    func()                // a relay session failed (Postgres or NATS) and will be retried
	Lag       func(d time.Duration) // commit of the row to its acknowledgement
	Leading   func(bool)            // leadership gained or lost
	Heartbeat func()
}

// Relay publishes the outbox.
type Relay struct {
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	cfg    Config
	log    *slog.Logger
	m      Metrics
	holder string // this relay's identity in the lease

	wake      chan struct{}
	published atomic.Int64
	leading   atomic.Bool
}

// New returns a relay.
func New(pool *pgxpool.Pool, js jetstream.JetStream, cfg Config, log *slog.Logger, m Metrics) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 250 * time.Millisecond
	}
	if cfg.RenewEvery <= 0 {
		cfg.RenewEvery = time.Second
	}
	if cfg.LeaseTimeout <= 0 {
		cfg.LeaseTimeout = 3 * time.Second
	}
	return &Relay{pool: pool, js: js, cfg: cfg, log: log, m: m, holder: holderName(), wake: make(chan struct{}, 1)}
}

// holderName names this relay in the lease row: host and pid for people reading the
// table, a random suffix so that two relays never share a name.
func holderName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8])
}

// Leading reports whether this relay holds the lease.
func (r *Relay) Leading() bool { return r.leading.Load() }

// Wake ends a backoff wait at once (NATS reconnected): the relay retries now.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// StreamConfig is the JetStream stream the events go to, with replicas copies (3 on a
// NATS cluster, 1 on a single server).
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       event.Stream,
		Subjects:   []string{event.SubjectAll},
		Storage:    jetstream.FileStorage,
		MaxAge:     24 * time.Hour,
		Duplicates: 10 * time.Minute,
		Replicas:   max(replicas, 1),
	}
}

// EnsureStream creates or updates the stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if _, err := js.CreateOrUpdateStream(ctx, StreamConfig(replicas)); err != nil {
		return fmt.Errorf("ensure stream %s: %w", event.Stream, err)
	}
	return nil
}

// Run relays until ctx ends. Errors (Postgres or NATS unavailable) are logged and retried;
// Run returns only when ctx is done.
func (r *Relay) Run(ctx context.Context) error {
	policy := r.cfg.Retry
	if policy.Initial <= 0 {
		policy = retry.Default
	}
	b := policy.Backoff()
	for ctx.Err() == nil {
		published := r.published.Load()
		err := r.lead(ctx)
		r.setLeading(false)
		if ctx.Err() != nil {
			break
		}
		if r.published.Load() != published || errors.Is(err, errNotLeader) {
			b.Reset()
		}
		wait := b.NextBackOff()
		if errors.Is(err, errNotLeader) {
			wait = r.cfg.RenewEvery // a follower: try the lease again soon, quietly
		} else {
			r.log.Warn("outbox relay restarting", "err", err, "backoff", wait)
			if r.m.Failed != nil {
				r.m.Failed()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		case <-r.wake:
			b.Reset()
		}
	}
	return nil
}

var errNotLeader = errors.New("another writer leads the outbox relay")

// errSeqMoved: JetStream refused a publish because the stream's last sequence is not the
// one this relay expected (another relay published, or a re-publish was deduplicated).
var errSeqMoved = errors.New("stream sequence moved")

func wrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// lastSeq reads the stream's last sequence.
func (r *Relay) lastSeq(ctx context.Context) (uint64, error) {
	s, err := r.js.Stream(ctx, event.Stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", event.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", event.Stream, err)
	}
	return info.State.LastSeq, nil
}

func (r *Relay) setLeading(v bool) {
	if r.leading.Swap(v) != v {
		if v {
			r.log.Info("outbox relay leading", "holder", r.holder)
		} else {
			r.log.Info("outbox relay not leading", "holder", r.holder)
		}
		if r.m.Leading != nil {
			r.m.Leading(v)
		}
	}
}

// lead takes the lease (or returns errNotLeader), then relays on a dedicated connection
// that LISTENs for new rows, renewing the lease as it goes.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	c := conn.Conn()
	if _, err := c.Exec(ctx, "SELECT set_config('app.brand_id', 'all', false)"); err != nil {
		return err
	}
	token, err := r.acquire(ctx, c)
	if err != nil {
		return err
	}
	// read after taking the lease: a stale leader's later publish cannot match it once
	// this relay published
	seq, err := r.lastSeq(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "LISTEN outbox"); err != nil {
		return err
	}
	defer c.Exec(context.WithoutCancel(ctx), "UNLISTEN outbox") //nolint:errcheck // the connection goes back to the pool
	defer func() {
		if ctx.Err() != nil {
			// shutting down: hand the lease over now instead of after its timeout (on a
			// connection of its own: the cancelled wait closed this one)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			_, _ = r.pool.Exec(rctx, `UPDATE leases SET renewed_at = '-infinity' WHERE name = $1 AND token = $2`, LeaseName, token)
		}
	}()
	r.setLeading(true)
	lastRenew, lastHeartbeat, lastCleanup := time.Now(), time.Time{}, time.Time{}
	for {
		if time.Since(lastRenew) >= r.cfg.RenewEvery {
			if err := r.renew(ctx, c, token); err != nil {
				return err
			}
			lastRenew = time.Now()
		}
		if r.cfg.Delay > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(r.cfg.Delay):
			}
		}
		start := time.Now()
		n, err := r.round(ctx, c, token, &seq)
		if err == nil && n < r.cfg.BatchSize && time.Since(lastHeartbeat) >= r.cfg.HeartbeatEvery {
			// every row committed before start was visible to the round and is published
			if err = r.heartbeat(ctx, start, &seq); err == nil {
				lastHeartbeat = time.Now()
			}
		}
		if errors.Is(err, errSeqMoved) {
			// re-read the sequence; the next round checks the lease before publishing
			r.log.Debug("outbox relay: stream sequence moved, re-reading it", "holder", r.holder)
			if seq, err = r.lastSeq(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if time.Since(lastCleanup) > time.Minute {
			if _, err := c.Exec(ctx, "DELETE FROM outbox WHERE sent_at < now() - $1::interval AND dispatched_at IS NOT NULL", r.cfg.Retention.String()); err != nil {
				return err
			}
			lastCleanup = time.Now()
		}
		if n == r.cfg.BatchSize {
			continue // more waiting
		}
		wait := min(r.cfg.PollInterval, r.cfg.HeartbeatEvery, r.cfg.RenewEvery)
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, err = c.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// acquire takes the lease when it is free (never held, lapsed, or held by this relay
// before a reconnect) and returns its new token.
func (r *Relay) acquire(ctx context.Context, c *pgx.Conn) (string, error) {
	var token string
	err := c.QueryRow(ctx, `UPDATE leases SET holder = $2, token = gen_random_uuid(), renewed_at = now()
		WHERE name = $1 AND (renewed_at < now() - $3::interval OR holder = $2) RETURNING token`,
		LeaseName, r.holder, r.cfg.LeaseTimeout.String()).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNotLeader
	}
	return token, err
}

// renew extends the lease; a lease taken over meanwhile ends this relay's leadership.
func (r *Relay) renew(ctx context.Context, c *pgx.Conn, token string) error {
	tag, err := c.Exec(ctx, `UPDATE leases SET renewed_at = now() WHERE name = $1 AND token = $2`, LeaseName, token)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		r.log.Warn("outbox relay lease lost (taken over while this writer stalled)", "holder", r.holder)
		return errNotLeader
	}
	return nil
}

type row struct {
	id      int64
	subject string
	payload []byte
	created time.Time
}

// round checks the lease, publishes one batch and returns how many rows it read. A lease
// taken over meanwhile (this writer stalled past it) ends the round with errNotLeader
// before anything is read or published.
func (r *Relay) round(ctx context.Context, c *pgx.Conn, token string, seq *uint64) (int, error) {
	// the lease check and the read in one statement
	rows, err := c.Query(ctx, `SELECT l.held, o.id, o.subject, o.payload || jsonb_build_object('id', o.id), o.created_at
		FROM (SELECT EXISTS (SELECT 1 FROM leases WHERE name = $2 AND token = $3) AS held) l
		LEFT JOIN LATERAL (SELECT id, subject, payload, created_at FROM outbox WHERE l.held
			AND (sent_at IS NULL OR dispatched_at IS NULL) AND sent_at IS NULL -- outbox_pending's predicate: its index
			ORDER BY id LIMIT $1) o ON true`, r.cfg.BatchSize, LeaseName, token)
	if err != nil {
		return 0, err
	}
	var batch []row
	held := false
	for rows.Next() {
		var x row
		var id *int64
		var subject *string
		var created *time.Time
		if err := rows.Scan(&held, &id, &subject, &x.payload, &created); err != nil {
			rows.Close()
			return 0, err
		}
		if id != nil {
			x.id, x.subject, x.created = *id, *subject, *created
			batch = append(batch, x)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if !held {
		r.log.Warn("outbox relay lease lost (taken over while this writer stalled)", "holder", r.holder)
		return 0, errNotLeader
	}
	if len(batch) == 0 {
		return 0, nil
	}
	acked, perr := r.publish(ctx, batch, seq)
	if len(acked) > 0 {
		tag, err := c.Exec(ctx, `UPDATE outbox SET sent_at = clock_timestamp() WHERE id = ANY($1)
			AND EXISTS (SELECT 1 FROM leases WHERE name = $2 AND token = $3)`, acked, LeaseName, token)
		if err != nil {
			return 0, err
		}
		if tag.RowsAffected() == 0 {
			return 0, errNotLeader
		}
		r.published.Add(int64(len(acked)))
		if r.m.Published != nil {
			r.m.Published(len(acked))
		}
	}
	if perr != nil {
		return 0, perr
	}
	return len(batch), nil
}

// publish sends the batch asynchronously, message i expecting the stream's last sequence
// to be *seq+i, and returns the ids of the longest prefix that JetStream acknowledged (the
// rest is retried, in order, next round), advancing *seq past what it stored.
func (r *Relay) publish(ctx context.Context, batch []row, seq *uint64) ([]int64, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	var sendErr error
	for i, x := range batch {
		msg := &nats.Msg{Subject: x.subject, Data: x.payload, Header: nats.Header{event.RelayHeader: []string{r.holder}}}
		f, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(event.MsgID(x.id)),
			jetstream.WithExpectStream(event.Stream), jetstream.WithExpectLastSequence(*seq+uint64(i)))
		if err != nil {
			sendErr = fmt.Errorf("publish outbox %d: %w", x.id, err)
			break
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(r.cfg.AckTimeout)
	defer timeout.Stop()
	acked := make([]int64, 0, len(futures))
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			acked = append(acked, batch[i].id)
			if ack.Duplicate {
				// stored before (a re-publish after a lost acknowledgement): the stream
				// did not move, so the messages pipelined after this one will be refused
				continue
			}
			*seq = ack.Sequence
			if r.m.Lag != nil {
				r.m.Lag(time.Since(batch[i].created))
			}
		case err := <-f.Err():
			if wrongLastSeq(err) {
				return acked, errSeqMoved
			}
			return acked, fmt.Errorf("publish outbox %d: %w", batch[i].id, err)
		case <-timeout.C:
			return acked, fmt.Errorf("publish outbox %d: ack timeout", batch[i].id)
		case <-ctx.Done():
			return acked, ctx.Err()
		}
	}
	return acked, sendErr
}

// heartbeat publishes the certification that every row committed before certified has
// been published (and acknowledged).
func (r *Relay) heartbeat(ctx context.Context, certified time.Time, seq *uint64) error {
	b, err := json.Marshal(event.Heartbeat{Type: event.HeartbeatType, CertifiedAt: certified.UTC(), Holder: r.holder})
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: event.HeartbeatSubject, Data: b, Header: nats.Header{event.RelayHeader: []string{r.holder}}}
	ack, err := r.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(event.Stream),
		jetstream.WithExpectLastSequence(*seq))
	if wrongLastSeq(err) {
		return errSeqMoved
	}
	if err != nil {
		return fmt.Errorf("publish heartbeat: %w", err)
	}
	*seq = ack.Sequence
	if r.m.Heartbeat != nil {
		r.m.Heartbeat()
	}
	return nil
}
