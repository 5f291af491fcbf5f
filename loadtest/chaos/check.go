package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/resource"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Check is the result of one invariant check.
type Check struct {
	Name string
	// Checked counts what was looked at; Failed lists what broke (at most a few shown).
	Checked int
	Failed  []string
}

// OK reports whether the check held.
func (c Check) OK() bool { return len(c.Failed) == 0 }

func (c *Check) fail(format string, args ...any) {
	c.Failed = append(c.Failed, fmt.Sprintf(format, args...))
}

// Checker verifies a run's invariants against Postgres, the JetStream stream and the
// edges, after the load stopped and every fault healed.
type Checker struct {
	t  *Topology
	hc *http.Client
	// Converge bounds how long the edges may take to agree with Postgres once the outbox
	// drained (default 10s).
	Converge time.Duration
}

// NewChecker returns a checker for t.
func NewChecker(t *Topology) *Checker {
	return &Checker{t: t, hc: &http.Client{Timeout: 10 * time.Second}, Converge: 10 * time.Second}
}

// Settle waits until every outbox row is published and every edge applies heartbeats
// again (the stream is current), up to timeout.
func (c *Checker) Settle(ctx context.Context, timeout time.Duration) error {
	db, err := pgx.Connect(ctx, c.t.AdminURL)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	deadline := time.Now().Add(timeout)
	for {
		var unsent int
		err := db.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE sent_at IS NULL").Scan(&unsent)
		if err == nil && unsent == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("outbox not drained after %v: %d unsent (%v)", timeout, unsent, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// All runs every check over ops (the scenario's writes).
func (c *Checker) All(ctx context.Context, ops []*Op) []Check {
	db, err := pgx.Connect(ctx, c.t.AdminURL)
	if err != nil {
		return []Check{{Name: "connect", Failed: []string{err.Error()}}}
	}
	defer db.Close(ctx)
	checks := []Check{
		c.resolved(ops),
		c.provisioning(ctx, db, ops),
		c.activations(ctx, db, ops),
		c.lifecycle(ctx, db, ops),
		c.seats(ctx, db),
		c.orphans(ctx, db),
	}
	checks = append(checks, c.events(ctx, db)...)
	checks = append(checks, c.edges(ctx, ops))
	return checks
}

// resolved: every write got a definitive answer (its retries did not run out).
func (c *Checker) resolved(ops []*Op) Check {
	ch := Check{Name: "every write answered (after retries)"}
	for _, o := range ops {
		ch.Checked++
		if o.Status == 0 {
			ch.fail("op %d %s %s: no definitive answer after %d attempts", o.ID, o.Kind, o.IdemKey, o.Attempts)
		} else if o.Status >= 500 {
			ch.fail("op %d %s: %d %s", o.ID, o.Kind, o.Status, o.Code)
		}
	}
	return ch
}

// provisioning: one key per Idempotency-Key (the customer email is unique per op), the
// acknowledged key is the one stored, and a replay answers the same key.
func (c *Checker) provisioning(ctx context.Context, db *pgx.Conn, ops []*Op) Check {
	ch := Check{Name: "one key per Idempotency-Key, acknowledged keys stored, replays agree"}
	stored := map[string][]string{}
	rows, err := db.Query(ctx, `SELECT customer_email, key FROM license_keys WHERE customer_email LIKE '%@chaos.example'`)
	if err != nil {
		ch.fail("query: %v", err)
		return ch
	}
	for rows.Next() {
		var email, key string
		if err := rows.Scan(&email, &key); err != nil {
			ch.fail("scan: %v", err)
			return ch
		}
		stored[email] = append(stored[email], key)
	}
	rows.Close()
	for _, o := range ops {
		if o.Kind != "provision" {
			continue
		}
		ch.Checked++
		keys := stored[o.Email]
		switch {
		case len(keys) > 1:
			ch.fail("%s: %d keys stored for one Idempotency-Key", o.IdemKey, len(keys))
		case o.Acked() && (len(keys) != 1 || keys[0] != o.Key):
			ch.fail("%s: acknowledged key %s, stored %v", o.IdemKey, o.Key, keys)
		case o.Acked():
			// the replay answers the first response
			var k resource.LicenseKey
			status, hdr, err := c.request(ctx, c.t.WriterURLs[0], o.Method, o.Path, o.Body, o.IdemKey, &k)
			if err != nil || status != 201 || k.Key != o.Key || hdr.Get("Idempotent-Replayed") != "true" {
				ch.fail("%s: replay answered %d key %s replayed=%q (%v), want 201 %s replayed", o.IdemKey, status, k.Key,
					hdr.Get("Idempotent-Replayed"), err, o.Key)
			}
		}
	}
	return ch
}

type pair struct{ license, instance string }

// actState is what the answers say of one (license, instance) pair; dev is whether its
// activation is a development instance's.
type actState struct{ known, active, dev bool }

// activationStates replays the activations and deactivations in each key's order (an op
// without a definitive answer makes its pair unknown until the next answered one), and
// lists the answers that make no sense.
func activationStates(ops []*Op) (map[pair]actState, []string) {
	want := map[pair]actState{}
	var odd []string
	for _, o := range ops {
		if o.Kind != "activate" && o.Kind != "deactivate" {
			continue
		}
		p := pair{o.LicenseID, o.Instance}
		st, seen := want[p]
		if !seen {
			st = actState{known: true}
		}
		switch {
		case o.Status == 0:
			st.known = false
		case o.Kind == "activate" && o.Acked():
			if o.AnsweredDev != o.Dev {
				odd = append(odd, fmt.Sprintf("op %d: activation of %s answered development=%v, want %v", o.ID, o.Instance, o.AnsweredDev, o.Dev))
			}
			if st.known && st.active && st.dev != o.Dev {
				odd = append(odd, fmt.Sprintf("op %d: reinstall of %s changed its classification", o.ID, o.Instance))
			}
			st = actState{known: true, active: true, dev: o.Dev}
		case o.Kind == "deactivate" && (o.Acked() || o.Code == "activation_not_found"):
			st = actState{known: true, active: false}
		case o.Kind == "activate" && (o.Code == "seat_limit_reached" || o.Code == "dev_instance_limit_reached"):
			// refused: nothing changed, and the instance was not active (a reinstall never
			// costs a seat: it would have answered 200); a development instance is never
			// refused for want of a seat, nor another one for the development cap
			if st.known && st.active {
				odd = append(odd, fmt.Sprintf("op %d: activation of an active instance refused with %s", o.ID, o.Code))
			}
			if o.Dev != (o.Code == "dev_instance_limit_reached") {
				odd = append(odd, fmt.Sprintf("op %d: activation of %s (development %v) refused with %s", o.ID, o.Instance, o.Dev, o.Code))
			}
		case o.Kind == "activate" && (o.Code == "license_suspended" || o.Code == "license_cancelled" || o.Code == "license_expired"):
			// refused by the license's status: nothing changed
		default:
			odd = append(odd, fmt.Sprintf("op %d %s: unexpected answer %d %s", o.ID, o.Kind, o.Status, o.Code))
		}
		want[p] = st
	}
	return want, odd
}

// activations: the activation rows are what the acknowledged activations and
// deactivations say (activationStates).
func (c *Checker) activations(ctx context.Context, db *pgx.Conn, ops []*Op) Check {
	ch := Check{Name: "acknowledged activations and deactivations present"}
	want, odd := activationStates(ops)
	ch.Failed = append(ch.Failed, odd...)
	have := map[pair]bool{}
	dev := map[pair]bool{}
	rows, err := db.Query(ctx, `SELECT license_id::text, instance, development FROM activations`)
	if err != nil {
		ch.fail("query: %v", err)
		return ch
	}
	for rows.Next() {
		var p pair
		var d bool
		if err := rows.Scan(&p.license, &p.instance, &d); err != nil {
			ch.fail("scan: %v", err)
			return ch
		}
		have[p], dev[p] = true, d
	}
	rows.Close()
	for p, st := range want {
		if !st.known {
			continue
		}
		ch.Checked++
		if have[p] != st.active {
			ch.fail("license %s instance %s: active=%v in Postgres, the acknowledged answers say %v", p.license, p.instance, have[p], st.active)
		} else if st.active && dev[p] != st.dev {
			ch.fail("license %s instance %s: development=%v in Postgres, the acknowledged answer says %v", p.license, p.instance, dev[p], st.dev)
		}
	}
	return ch
}

// lifecycle: each license's status is the one its last acknowledged change answered.
func (c *Checker) lifecycle(ctx context.Context, db *pgx.Conn, ops []*Op) Check {
	ch := Check{Name: "acknowledged lifecycle changes present"}
	type state struct {
		known  bool
		status string
	}
	want := map[string]state{}
	for _, o := range ops {
		switch o.Kind {
		case "suspend", "resume", "renew":
		default:
			continue
		}
		switch {
		case o.Acked():
			want[o.LicenseID] = state{true, o.LicenseStatus}
		case o.Status == 0:
			want[o.LicenseID] = state{}
		case o.Status == 409 && o.Code == "invalid_transition":
		default:
			ch.fail("op %d %s: unexpected answer %d %s", o.ID, o.Kind, o.Status, o.Code)
		}
	}
	for id, st := range want {
		if !st.known {
			continue
		}
		ch.Checked++
		var status string
		if err := db.QueryRow(ctx, `SELECT status FROM licenses WHERE id = $1`, id).Scan(&status); err != nil {
			ch.fail("license %s: %v", id, err)
		} else if status != st.status {
			ch.fail("license %s: %s in Postgres, last acknowledged change answered %s", id, status, st.status)
		}
	}
	return ch
}

// seats: seats_used equals the seat-taking activation rows of every license, within its
// limit, and dev_instances_used its development ones, at most 20 (invariant 1 as amended).
func (c *Checker) seats(ctx context.Context, db *pgx.Conn) Check {
	ch := Check{Name: "seats_used = seat-taking activation rows, dev_instances_used = development ones"}
	rows, err := db.Query(ctx, `SELECT l.id::text, l.seats_used, l.seat_limit,
		(SELECT count(*) FROM activations a WHERE a.license_id = l.id AND NOT a.development),
		l.dev_instances_used, (SELECT count(*) FROM activations a WHERE a.license_id = l.id AND a.development)
		FROM licenses l`)
	if err != nil {
		ch.fail("query: %v", err)
		return ch
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var used int
		var limit *int
		var n, devUsed, devN int
		if err := rows.Scan(&id, &used, &limit, &n, &devUsed, &devN); err != nil {
			ch.fail("scan: %v", err)
			return ch
		}
		ch.Checked++
		if used != n || (limit != nil && n > *limit) {
			ch.fail("license %s: seats_used %d, %d seat-taking activation rows, limit %v", id, used, n, limit)
		}
		if devUsed != devN || devN > 20 {
			ch.fail("license %s: dev_instances_used %d, %d development activation rows", id, devUsed, devN)
		}
	}
	return ch
}

// orphans: no row without its parent, no key without licenses, no claim left running.
func (c *Checker) orphans(ctx context.Context, db *pgx.Conn) Check {
	ch := Check{Name: "no orphan rows, no claim left running"}
	for _, q := range []struct{ what, sql string }{
		{"activations without their license (or of another brand)", `SELECT count(*) FROM activations a
			WHERE NOT EXISTS (SELECT 1 FROM licenses l WHERE l.id = a.license_id AND l.brand_id = a.brand_id)`},
		{"licenses without their key", `SELECT count(*) FROM licenses l
			WHERE NOT EXISTS (SELECT 1 FROM license_keys k WHERE k.id = l.license_key_id AND k.brand_id = l.brand_id)`},
		{"keys without licenses", `SELECT count(*) FROM license_keys k WHERE NOT EXISTS (SELECT 1 FROM licenses l WHERE l.license_key_id = k.id)`},
		{"outbox rows without their key", `SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM license_keys k WHERE k.id = o.license_key_id)`},
		{"idempotency claims still running", `SELECT count(*) FROM idempotency_keys WHERE state = 'running'`},
	} {
		var n int
		ch.Checked++
		if err := db.QueryRow(ctx, q.sql).Scan(&n); err != nil {
			ch.fail("%s: %v", q.what, err)
		} else if n > 0 {
			ch.fail("%d %s", n, q.what)
		}
	}
	return ch
}

// events: every key's versions are 1..n in the outbox, each once, and every outbox row
// is in the JetStream stream exactly once, with its version.
func (c *Checker) events(ctx context.Context, db *pgx.Conn) []Check {
	outbox := Check{Name: "key versions 1..n in the outbox, no gap"}
	stream := Check{Name: "every outbox row in JetStream exactly once"}
	type row struct {
		key     string
		version int64
	}
	rowsByID := map[int64]row{}
	versions := map[string][]int64{}
	current := map[string]int64{}
	rows, err := db.Query(ctx, `SELECT k.id::text, k.version, o.id, o.version FROM license_keys k LEFT JOIN outbox o ON o.license_key_id = k.id`)
	if err != nil {
		outbox.fail("query: %v", err)
		return []Check{outbox, stream}
	}
	for rows.Next() {
		var key string
		var kv int64
		var id, v *int64
		if err := rows.Scan(&key, &kv, &id, &v); err != nil {
			outbox.fail("scan: %v", err)
			rows.Close()
			return []Check{outbox, stream}
		}
		current[key] = kv
		if id != nil {
			rowsByID[*id] = row{key, *v}
			versions[key] = append(versions[key], *v)
		}
	}
	rows.Close()
	for key, n := range current {
		outbox.Checked++
		vs := versions[key]
		slices.Sort(vs)
		want := make([]int64, n)
		for i := range want {
			want[i] = int64(i + 1)
		}
		if !slices.Equal(vs, want) {
			outbox.fail("key %s at version %d: outbox versions %v", key, n, vs)
		}
	}

	msgs, err := readStream(ctx, c.t.NATSURL)
	if err != nil {
		stream.fail("read stream: %v", err)
		return []Check{outbox, stream}
	}
	seen := map[int64]int{}
	for _, m := range msgs {
		ch := m.Change
		if ch == nil {
			continue
		}
		seen[ch.ID]++
		r, ok := rowsByID[ch.ID]
		switch {
		case !ok:
			stream.fail("message for outbox row %d, which Postgres does not have", ch.ID)
		case r.key != ch.KeyID || r.version != ch.Version:
			stream.fail("outbox row %d: key %s v%d in Postgres, %s v%d in the stream", ch.ID, r.key, r.version, ch.KeyID, ch.Version)
		}
	}
	for id := range rowsByID {
		stream.Checked++
		if n := seen[id]; n != 1 {
			stream.fail("outbox row %d in the stream %d times", id, n)
		}
	}
	return []Check{outbox, stream}
}

// streamMsg is one message of the event stream.
type streamMsg struct {
	Seq    uint64
	Holder string        // the relay that published it (event.RelayHeader)
	Change *event.Change // nil for a heartbeat
}

// readStream reads every message of the event stream, in order.
func readStream(ctx context.Context, natsURL string) ([]streamMsg, error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, event.Stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	total := info.State.Msgs
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	var out []streamMsg
	deadline := time.Now().Add(2 * time.Minute)
	for uint64(len(out)) < total {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("read %d of %d messages", len(out), total)
		}
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			sm := streamMsg{Seq: meta.Sequence.Stream, Holder: m.Headers().Get(event.RelayHeader)}
			if m.Subject() != event.HeartbeatSubject {
				var ch event.Change
				if err := json.Unmarshal(m.Data(), &ch); err != nil {
					return nil, fmt.Errorf("message %s: %w", m.Subject(), err)
				}
				if want := event.MsgID(ch.ID); m.Headers().Get(jetstream.MsgIDHeader) != want {
					return nil, fmt.Errorf("message id %q for outbox row %d", m.Headers().Get(jetstream.MsgIDHeader), ch.ID)
				}
				sm.Change = &ch
			}
			out = append(out, sm)
		}
		if batch.Error() != nil {
			return nil, batch.Error()
		}
	}
	return out, nil
}

// edges: for every key the scenario touched, every edge answers the status the writer
// reads from the primary (fresh, not stale) — for the key, and for each product and
// instance the scenario changed — within a few seconds of the outbox draining.
func (c *Checker) edges(ctx context.Context, ops []*Op) Check {
	ch := Check{Name: "edges equal Postgres for every key touched"}
	type query struct{ key, product, instance string }
	qs := map[query]bool{}
	for _, o := range ops {
		if o.Key == "" || (o.Kind == "provision" && !o.Acked()) {
			continue
		}
		qs[query{key: o.Key}] = true
		if o.Instance != "" {
			qs[query{o.Key, o.Product, o.Instance}] = true
		}
	}
	pending := make([]query, 0, len(qs))
	for q := range qs {
		pending = append(pending, q)
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].key < pending[j].key })
	ch.Checked = len(pending) * len(c.t.EdgeURLs)
	deadline := time.Now().Add(c.Converge)
	var last map[query]string
	for len(pending) > 0 {
		last = map[query]string{}
		var still []query
		for _, q := range pending {
			v := url.Values{}
			if q.product != "" {
				v.Set("product", q.product)
				v.Set("instance", q.instance)
			}
			path := "/v1/public/" + c.t.Brand + "/licenses/" + url.PathEscape(q.key) + "/status?" + v.Encode()
			want, err := c.status(ctx, c.t.WriterURLs[0], path)
			if err != nil {
				last[q], still = "writer: "+err.Error(), append(still, q)
				continue
			}
			for _, e := range c.t.EdgeURLs {
				got, err := c.status(ctx, e, path)
				if err != nil || !reflect.DeepEqual(got, want) {
					last[q], still = fmt.Sprintf("%s answered %v (%v), the primary %v", e, got, err, want), append(still, q)
					break
				}
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, q := range pending {
		ch.fail("%s %s %s: %s", q.key, q.product, q.instance, last[q])
	}
	return ch
}

// status fetches a status answer without its check time; a stale answer is an error.
func (c *Checker) status(ctx context.Context, base, path string) (map[string]any, error) {
	var m map[string]any
	status, hdr, err := c.request(ctx, base, "GET", path, nil, "", &m)
	if err != nil {
		return nil, err
	}
	if status != 200 {
		return nil, fmt.Errorf("status %d", status)
	}
	if hdr.Get("X-Cache-Stale") == "true" {
		return nil, fmt.Errorf("stale answer")
	}
	delete(m, "checked_at")
	return m, nil
}

func (c *Checker) request(ctx context.Context, base, method, path string, body []byte, idem string, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	if !strings.HasPrefix(path, "/v1/public/") {
		req.Header.Set("Authorization", "Bearer "+c.t.APIKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, resp.Header, err
		}
	}
	return resp.StatusCode, resp.Header, nil
}
