package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/riverqueue/river"
)

type deliveryWorker struct {
	river.WorkerDefaults[DeliveryArgs]
	w *Webhooks
}

// slots bounds concurrent attempts per endpoint in this writer.
type slots struct {
	mu    sync.Mutex
	max   int
	inUse map[string]int
}

func newSlots(n int) *slots { return &slots{max: n, inUse: map[string]int{}} }

func (s *slots) take(endpoint string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse[endpoint] >= s.max {
		return false
	}
	s.inUse[endpoint]++
	return true
}

func (s *slots) give(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse[endpoint]--; s.inUse[endpoint] <= 0 {
		delete(s.inUse, endpoint)
	}
}

// target is what one attempt needs: the delivery, its endpoint and the event's body.
type target struct {
	d        licensing.DeliveryRow
	endpoint licensing.EndpointRow
	body     []byte
}

// allBrands runs fn in a transaction of the webhooks' pool (whose sessions see every
// brand).
func (w *Webhooks) allBrands(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, w.pool, fn)
}

func (w *Webhooks) load(ctx context.Context, id string) (*target, error) {
	var t target
	err := w.pool.QueryRow(ctx, `SELECT d.id, d.brand_id, d.event_id, d.endpoint_id, d.type, d.status, d.attempt,
			e.url, e.status, e.secret, e.previous_secret, e.previous_until, ev.body
			FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN webhook_events ev ON ev.id = d.event_id
			WHERE d.id = $1`, id).Scan(&t.d.ID, &t.d.BrandID, &t.d.EventID, &t.d.EndpointID, &t.d.Type, &t.d.Status,
		&t.d.Attempt, &t.endpoint.URL, &t.endpoint.Status, &t.endpoint.Secret, &t.endpoint.PreviousSecret,
		&t.endpoint.PreviousUntil, &t.body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil // the endpoint was deleted, and its deliveries with it
	}
	t.endpoint.ID, t.endpoint.BrandID = t.d.EndpointID, t.d.BrandID
	return &t, err
}

// Work makes one attempt of a delivery.
func (dw *deliveryWorker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	w := dw.w
	t, err := w.load(ctx, job.Args.DeliveryID)
	if err != nil {
		return err
	}
	if t == nil || t.d.Status != licensing.DeliveryPending {
		return nil // deleted with its endpoint, or settled by an earlier run of this job
	}
	if t.endpoint.Status != licensing.EndpointEnabled && t.d.Type != licensing.WebhookTest {
		return w.settle(ctx, t, job, attempt{outcome: outcomeDisabled, err: "endpoint disabled"}, true)
	}
	if !w.slots.take(t.d.EndpointID) {
		// this endpoint already has PerEndpoint attempts running here: come back later,
		// without counting an attempt
		w.m.snoozed.Inc()
		return river.JobSnooze(time.Second + time.Duration(job.ID%500)*time.Millisecond)
	}
	a := w.attempt(ctx, t)
	w.slots.give(t.d.EndpointID)
	final := a.outcome == outcomeSucceeded || job.Attempt >= job.MaxAttempts
	if err := w.settle(ctx, t, job, a, final); err != nil {
		return err
	}
	if a.outcome != outcomeSucceeded {
		// the outcome only: the detail (which may name the endpoint's URL) is in the
		// delivery log, shown to the brand, not in the writer's logs
		detail := a.outcome
		if a.status != nil {
			detail += " " + strconv.Itoa(*a.status)
		}
		return fmt.Errorf("delivery %s attempt %d: %s", t.d.ID, t.d.Attempt+1, detail)
	}
	return nil
}

// attempt outcomes (metric label values)
const (
	outcomeSucceeded = "succeeded"
	outcomeHTTPError = "http_error"
	outcomeTimeout   = "timeout"
	outcomeNetwork   = "network_error"
	outcomeForbidden = "forbidden_address"
	outcomeDisabled  = "endpoint_disabled"
	outcomeInternal  = "internal_error"
)

type attempt struct {
	outcome string
	status  *int
	err     string
	took    time.Duration
}

// attempt sends the delivery once, signed now.
func (w *Webhooks) attempt(ctx context.Context, t *target) attempt {
	secrets, err := licensing.OpenSecrets(w.sealer, t.endpoint, w.now())
	if err != nil {
		w.log.Error("webhook secret does not open with the configured key", "endpoint", t.endpoint.ID, "err", err)
		return attempt{outcome: outcomeInternal, err: "the endpoint's secret could not be opened"}
	}
	ts := w.now().Unix()
	sig, err := Sign(secrets, t.d.EventID, ts, t.body)
	if err != nil {
		return attempt{outcome: outcomeInternal, err: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint.URL, bytes.NewReader(t.body))
	if err != nil {
		return attempt{outcome: outcomeInternal, err: "bad endpoint URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "license-service-webhooks/1")
	req.Header.Set("webhook-id", t.d.EventID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	start := time.Now()
	resp, err := w.http.Do(req)
	a := attempt{took: time.Since(start)}
	w.m.attemptSeconds.Observe(a.took.Seconds())
	if err != nil {
		switch {
		case IsForbidden(err):
			a.outcome = outcomeForbidden
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			a.outcome = outcomeTimeout
		default:
			a.outcome = outcomeNetwork
		}
		a.err = clip(err.Error())
		return a
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	a.status = &code
	if code >= 200 && code < 300 {
		a.outcome = outcomeSucceeded
		return a
	}
	a.outcome = outcomeHTTPError
	a.err = "HTTP " + strconv.Itoa(code)
	if code >= 300 && code < 400 {
		a.err += " (redirects are not followed)"
	}
	return a
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func clip(s string) string {
	const max = 300
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return s[:max]
}

// settle records the attempt on the delivery and its endpoint: the next attempt's time,
// or the final state; a success clears the endpoint's failure record, and a failure
// after DisableAfter of nothing but failures disables the endpoint (audited, actor
// system).
func (w *Webhooks) settle(ctx context.Context, t *target, job *river.Job[DeliveryArgs], a attempt, final bool) error {
	now := w.now().UTC()
	status := licensing.DeliveryPending
	var next *time.Time
	switch {
	case a.outcome == outcomeSucceeded:
		status = licensing.DeliverySucceeded
	case final:
		status = licensing.DeliveryFailed
	default:
		n := now.Add(retryPolicy{w.cfg.Schedule}.delay(job.ID, job.Attempt))
		next = &n
	}
	tried := 1
	if a.outcome == outcomeDisabled {
		tried = 0
	}
	var errText *string
	if a.err != "" {
		errText = &a.err
	}
	disabled := false
	var err error
	if a.outcome == outcomeSucceeded || a.outcome == outcomeDisabled || t.d.Type == licensing.WebhookTest {
		// one statement: the delivery, and a success clears the endpoint's failure record
		// (an attempt stopped by a disabled endpoint, or a test, says nothing of its health)
		// (a delivery stopped because its endpoint is disabled keeps its last attempt's
		// status and says why it stopped before that attempt's error)
		_, err = w.pool.Exec(ctx, `WITH d AS (UPDATE webhook_deliveries SET status = $2, attempt = attempt + $3,
				response_status = CASE WHEN $9 THEN response_status ELSE $4 END,
				error = CASE WHEN $9 THEN $5 || coalesce('; last attempt: ' || error, '') ELSE $5 END,
				next_attempt_at = $6, updated_at = $7 WHERE id = $1 RETURNING endpoint_id)
			UPDATE webhook_endpoints e SET failing_since = NULL FROM d
			WHERE $8 AND e.id = d.endpoint_id AND e.failing_since IS NOT NULL`,
			t.d.ID, status, tried, a.status, errText, next, now,
			a.outcome == outcomeSucceeded && t.d.Type != licensing.WebhookTest, a.outcome == outcomeDisabled)
	} else {
		err = w.recordFailure(ctx, t, status, tried, a, errText, next, now, &disabled)
	}
	if err != nil {
		return fmt.Errorf("record delivery attempt: %w", err)
	}
	w.m.attempts.WithLabelValues(a.outcome).Inc()
	if status != licensing.DeliveryPending {
		w.m.deliveries.WithLabelValues(status).Inc()
	}
	if disabled {
		w.m.autoDisabled.Inc()
		w.log.Warn("webhook endpoint disabled: every delivery failed", "endpoint", t.d.EndpointID, "brand", t.d.BrandID,
			"for", w.cfg.DisableAfter)
	}
	return nil
}

// recordFailure records a failed attempt and the endpoint's failure record, disabling
// the endpoint once it has failed for DisableAfter.
func (w *Webhooks) recordFailure(ctx context.Context, t *target, status string, tried int, a attempt, errText *string,
	next *time.Time, now time.Time, disabled *bool) error {
	return w.allBrands(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $2, attempt = attempt + $3, response_status = $4,
			error = $5, next_attempt_at = $6, updated_at = $7 WHERE id = $1`,
			t.d.ID, status, tried, a.status, errText, next, now); err != nil {
			return err
		}
		var epStatus, url string
		var since time.Time
		err := tx.QueryRow(ctx, `SELECT status, url, coalesce(failing_since, $2) FROM webhook_endpoints WHERE id = $1 FOR UPDATE`,
			t.d.EndpointID, now).Scan(&epStatus, &url, &since)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if epStatus != licensing.EndpointEnabled || since.After(now.Add(-w.cfg.DisableAfter)) {
			_, err = tx.Exec(ctx, `UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1`, t.d.EndpointID, since)
			return err
		}
		*disabled = true
		if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET failing_since = $2, status = 'disabled',
			disabled_reason = 'failing', updated_at = $3 WHERE id = $1`, t.d.EndpointID, since, now); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_events (id, brand_id, action, actor, at, before, after)
			VALUES ($1, $2, 'webhook_endpoint.disabled', 'system', $3,
				jsonb_build_object('id', $4::uuid, 'url', $5::text, 'status', 'enabled', 'failing_since', $6::timestamptz),
				jsonb_build_object('id', $4::uuid, 'url', $5::text, 'status', 'disabled', 'disabled_reason', 'failing'))`,
			uuid.Must(uuid.NewV7()), t.d.BrandID, now, t.d.EndpointID, url, since)
		return err
	})
}
