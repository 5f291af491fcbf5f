package licensing

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// WebhookTx is what webhook endpoints and their delivery log need of a transaction
// (API.md "Webhooks"). Reads return not_found for a missing row.
type WebhookTx interface {
	InsertEndpoint(ctx context.Context, e EndpointRow) error
	EndpointByID(ctx context.Context, brandID, id string) (EndpointRow, error)
	// LockEndpoint reads an endpoint of the brand and locks it for the transaction.
	LockEndpoint(ctx context.Context, brandID, id string) (EndpointRow, error)
	ListEndpoints(ctx context.Context, brandID, after string, limit int) ([]EndpointRow, error)
	UpdateEndpoint(ctx context.Context, e EndpointRow) error
	// DeleteEndpoint deletes the endpoint and its deliveries.
	DeleteEndpoint(ctx context.Context, brandID, id string) error
	InsertWebhookEvent(ctx context.Context, e WebhookEventRow) error
	InsertDelivery(ctx context.Context, d DeliveryRow) error
	// LockDelivery reads a delivery of the brand and locks it for the transaction.
	LockDelivery(ctx context.Context, brandID, id string) (DeliveryRow, error)
	// RequeueDelivery marks a delivery pending again, to be attempted at at.
	RequeueDelivery(ctx context.Context, brandID, id string, at time.Time) error
	// ListDeliveries lists an endpoint's deliveries, newest first, before the cursor id.
	ListDeliveries(ctx context.Context, brandID, endpointID, before string, limit int) ([]DeliveryRow, error)
}

// EndpointRow is a stored webhook endpoint. Secret and PreviousSecret are sealed.
type EndpointRow struct {
	ID, BrandID, URL string
	Events           []string
	Description      string
	Status           string // EndpointEnabled | EndpointDisabled
	DisabledReason   string // "" | DisabledManual | DisabledFailing
	Secret           []byte
	PreviousSecret   []byte
	PreviousUntil    *time.Time
	FailingSince     *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Endpoint states and the reasons of a disabled one.
const (
	EndpointEnabled  = "enabled"
	EndpointDisabled = "disabled"
	DisabledManual   = "manual"
	DisabledFailing  = "failing"
)

// WebhookEventRow is an event as the delivery log keeps it: the body every delivery of it
// sends. OutboxID is the outbox row it came from (0 for webhook.test).
type WebhookEventRow struct {
	ID, BrandID, Type string
	OutboxID          int64
	Body              []byte
	CreatedAt         time.Time
}

// DeliveryRow is one event's delivery to one endpoint.
type DeliveryRow struct {
	ID, BrandID, EventID, EndpointID, Type string
	Status                                 string // DeliveryPending | DeliverySucceeded | DeliveryFailed
	Attempt                                int
	ResponseStatus                         *int
	Error                                  *string
	NextAttemptAt                          *time.Time
	JobID                                  *int64
	CreatedAt, UpdatedAt                   time.Time
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// WebhookTest is the type of the event POST /v1/webhook-endpoints/{id}/test sends.
const WebhookTest = "webhook.test"

// Sealer seals webhook secrets at rest (internal/sealbox).
type Sealer interface {
	Seal(plain, ad []byte) []byte
	Open(sealed, ad []byte) ([]byte, error)
}

// DeliveryQueue schedules deliveries for the delivery workers, in the caller's
// transaction (writer/webhook: River jobs).
type DeliveryQueue interface {
	// Enqueue schedules the deliveries' first attempts now.
	Enqueue(ctx context.Context, tx Tx, ds []DeliveryRow) error
	// Retry schedules another attempt of d now (a manual retry).
	Retry(ctx context.Context, tx Tx, d DeliveryRow) error
}

// Webhooks is what the webhook endpoints need besides the store.
type Webhooks struct {
	Sealer Sealer
	// CheckURL refuses a URL the deployment may not deliver to (scheme, resolved
	// addresses: SSRF); it returns the URL to store.
	CheckURL func(ctx context.Context, raw string) (string, error)
	// Queue schedules deliveries; nil leaves them pending in the log (tests of the
	// domain alone).
	Queue DeliveryQueue
}

// SetWebhooks configures the webhook endpoints. Without it they answer 503.
func (s *Service) SetWebhooks(w Webhooks) { s.webhooks = w }

// WebhookEventTypes are the types an endpoint may subscribe to (API.md).
var WebhookEventTypes = []string{
	event.KeyCreated, event.LicenseCreated, event.LicenseRenewed, event.LicenseSuspended,
	event.LicenseResumed, event.LicenseCancelled, event.LicenseExpired,
	event.ActivationCreated, event.ActivationDeleted,
}

// Limits of an endpoint's fields.
const (
	MaxWebhookURLLength         = 2048
	MaxWebhookDescriptionLength = 255
	// SecretOverlap is how long a rotated secret keeps signing deliveries.
	SecretOverlap = 24 * time.Hour
)

// Subscribed reports whether an endpoint subscribed to events receives type typ.
func Subscribed(events []string, typ string) bool {
	return len(events) == 0 || slices.Contains(events, typ)
}

// NewWebhookSecret returns a signing secret: "whsec_" and the base64 of 32 random bytes
// (Standard Webhooks).
func NewWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// secretAD binds a sealed secret to its endpoint row.
func secretAD(endpointID string) []byte { return []byte("webhook-endpoint:" + endpointID) }

// OpenSecrets returns the endpoint's signing secrets at now: the current one, and the
// previous one while its overlap lasts.
func OpenSecrets(sealer Sealer, e EndpointRow, now time.Time) ([]string, error) {
	cur, err := sealer.Open(e.Secret, secretAD(e.ID))
	if err != nil {
		return nil, err
	}
	out := []string{string(cur)}
	if e.PreviousSecret != nil && e.PreviousUntil != nil && now.Before(*e.PreviousUntil) {
		prev, err := sealer.Open(e.PreviousSecret, secretAD(e.ID))
		if err != nil {
			return nil, err
		}
		out = append(out, string(prev))
	}
	return out, nil
}

func endpointResource(e EndpointRow) resource.WebhookEndpoint {
	out := resource.WebhookEndpoint{ID: e.ID, URL: e.URL, Events: e.Events, Description: e.Description,
		Status: e.Status, CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC()}
	if out.Events == nil {
		out.Events = []string{}
	}
	if e.DisabledReason != "" {
		r := e.DisabledReason
		out.DisabledReason = &r
	}
	return out
}

// DeliveryResource renders a delivery.
func DeliveryResource(d DeliveryRow) resource.WebhookDelivery {
	return resource.WebhookDelivery{ID: d.ID, EndpointID: d.EndpointID, EventID: d.EventID, Type: d.Type,
		Attempt: d.Attempt, Status: d.Status, ResponseStatus: d.ResponseStatus, Error: d.Error,
		NextAttemptAt: utcPtr(d.NextAttemptAt), CreatedAt: d.CreatedAt.UTC()}
}

func (s *Service) webhooksReady() error {
	if s.webhooks.Sealer == nil || s.webhooks.CheckURL == nil {
		return problem.New(problem.Unavailable, "webhooks are not configured on this deployment")
	}
	return nil
}

func (s *Service) checkEndpointURL(ctx context.Context, raw string) (string, error) {
	if raw == "" || utf8.RuneCountInString(raw) > MaxWebhookURLLength {
		return "", problem.Unacceptable("url", "must be 1 to %d characters", MaxWebhookURLLength)
	}
	return s.webhooks.CheckURL(ctx, raw)
}

func checkEvents(events []string) ([]string, error) {
	out := make([]string, 0, len(events))
	for i, e := range events {
		if !slices.Contains(WebhookEventTypes, e) {
			return nil, problem.Unacceptable("events["+strconv.Itoa(i)+"]", "must be one of %s", strings.Join(WebhookEventTypes, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out, nil
}

func checkDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	if utf8.RuneCountInString(d) > MaxWebhookDescriptionLength {
		return "", problem.Unacceptable("description", "must be at most %d characters", MaxWebhookDescriptionLength)
	}
	return d, nil
}

// CreateEndpoint subscribes url to events (all types when empty). The answer carries the
// signing secret, the only time it is shown; the idempotency record keeps it sealed.
func (s *Service) CreateEndpoint(ctx context.Context, m Meta, p Principal, url string, events []string, description string) (resource.WebhookEndpoint, error) {
	if err := s.webhooksReady(); err != nil {
		return resource.WebhookEndpoint{}, err
	}
	events, err := checkEvents(events)
	if err != nil {
		return resource.WebhookEndpoint{}, err
	}
	if description, err = checkDescription(description); err != nil {
		return resource.WebhookEndpoint{}, err
	}
	if url, err = s.checkEndpointURL(ctx, url); err != nil {
		return resource.WebhookEndpoint{}, err
	}
	return idempotentSealed(s, ctx, m, p, func(tx Tx) (resource.WebhookEndpoint, error) {
		now := s.Now()
		secret := NewWebhookSecret()
		row := EndpointRow{ID: newID(), BrandID: p.BrandID, URL: url, Events: events, Description: description,
			Status: EndpointEnabled, CreatedAt: now, UpdatedAt: now}
		row.Secret = s.webhooks.Sealer.Seal([]byte(secret), secretAD(row.ID))
		if err := tx.InsertEndpoint(ctx, row); err != nil {
			return resource.WebhookEndpoint{}, err
		}
		out := endpointResource(row)
		if err := tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, Action: "webhook_endpoint.created",
			Actor: m.Actor, Request: m.RequestID, At: now, After: out}); err != nil {
			return resource.WebhookEndpoint{}, err
		}
		out.Secret = secret
		return out, nil
	})
}

// ListEndpoints lists the brand's endpoints.
func (s *Service) ListEndpoints(ctx context.Context, p Principal, page Page) (resource.List[resource.WebhookEndpoint], error) {
	var out resource.List[resource.WebhookEndpoint]
	list := "webhook-endpoints:" + p.BrandID
	c, after, err := s.openCursor(ctx, list, page.Cursor)
	if err != nil {
		return out, err
	}
	err = s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		rows, err := tx.ListEndpoints(ctx, p.BrandID, after, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(c, list, rows, page.Limit, endpointResource, func(e EndpointRow) string { return e.ID })
		return nil
	})
	return out, err
}

// GetEndpoint reads one endpoint of the brand.
func (s *Service) GetEndpoint(ctx context.Context, p Principal, id string) (resource.WebhookEndpoint, error) {
	var out resource.WebhookEndpoint
	if !validID(id) {
		return out, problem.New(problem.NotFound, "webhook endpoint not found")
	}
	err := s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		e, err := tx.EndpointByID(ctx, p.BrandID, id)
		if err != nil {
			return notFound(err, problem.NotFound, "webhook endpoint not found")
		}
		out = endpointResource(e)
		return nil
	})
	return out, err
}

// EndpointPatch is a PATCH of an endpoint: nil fields stay as they are.
type EndpointPatch struct {
	URL         *string
	Events      *[]string
	Description *string
	Status      *string
}

// UpdateEndpoint changes an endpoint. Enabling it again clears its failure record.
func (s *Service) UpdateEndpoint(ctx context.Context, m Meta, p Principal, id string, patch EndpointPatch) (resource.WebhookEndpoint, error) {
	var out resource.WebhookEndpoint
	if err := s.webhooksReady(); err != nil {
		return out, err
	}
	if !validID(id) {
		return out, problem.New(problem.NotFound, "webhook endpoint not found")
	}
	var err error
	if patch.Events != nil {
		ev, err := checkEvents(*patch.Events)
		if err != nil {
			return out, err
		}
		patch.Events = &ev
	}
	if patch.Description != nil {
		d, err := checkDescription(*patch.Description)
		if err != nil {
			return out, err
		}
		patch.Description = &d
	}
	if patch.Status != nil && *patch.Status != EndpointEnabled && *patch.Status != EndpointDisabled {
		return out, problem.Unacceptable("status", "must be enabled or disabled")
	}
	if patch.URL != nil {
		u, err := s.checkEndpointURL(ctx, *patch.URL)
		if err != nil {
			return out, err
		}
		patch.URL = &u
	}
	err = s.store.Tx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		e, err := tx.LockEndpoint(ctx, p.BrandID, id)
		if err != nil {
			return notFound(err, problem.NotFound, "webhook endpoint not found")
		}
		before := endpointResource(e)
		if patch.URL != nil {
			e.URL = *patch.URL
		}
		if patch.Events != nil {
			e.Events = *patch.Events
		}
		if patch.Description != nil {
			e.Description = *patch.Description
		}
		if patch.Status != nil && *patch.Status != e.Status {
			e.Status = *patch.Status
			if e.Status == EndpointEnabled {
				e.DisabledReason, e.FailingSince = "", nil
			} else {
				e.DisabledReason = DisabledManual
			}
		}
		e.UpdatedAt = s.Now()
		out = endpointResource(e)
		if err := tx.UpdateEndpoint(ctx, e); err != nil {
			return err
		}
		return tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, Action: "webhook_endpoint.updated",
			Actor: m.Actor, Request: m.RequestID, At: e.UpdatedAt, Before: before, After: out})
	})
	return out, err
}

// DeleteEndpoint deletes an endpoint with its delivery log; pending deliveries are not
// sent.
func (s *Service) DeleteEndpoint(ctx context.Context, m Meta, p Principal, id string) error {
	if !validID(id) {
		return problem.New(problem.NotFound, "webhook endpoint not found")
	}
	return s.store.Tx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		e, err := tx.LockEndpoint(ctx, p.BrandID, id)
		if err != nil {
			return notFound(err, problem.NotFound, "webhook endpoint not found")
		}
		if err := tx.DeleteEndpoint(ctx, p.BrandID, id); err != nil {
			return err
		}
		return tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, Action: "webhook_endpoint.deleted",
			Actor: m.Actor, Request: m.RequestID, At: s.Now(), Before: endpointResource(e)})
	})
}

// RotateSecret gives the endpoint a new signing secret; for SecretOverlap every delivery
// is signed with both (two signatures in webhook-signature).
func (s *Service) RotateSecret(ctx context.Context, m Meta, p Principal, id string) (resource.WebhookSecret, error) {
	if err := s.webhooksReady(); err != nil {
		return resource.WebhookSecret{}, err
	}
	if !validID(id) {
		return resource.WebhookSecret{}, problem.New(problem.NotFound, "webhook endpoint not found")
	}
	return idempotentSealed(s, ctx, m, p, func(tx Tx) (resource.WebhookSecret, error) {
		e, err := tx.LockEndpoint(ctx, p.BrandID, id)
		if err != nil {
			return resource.WebhookSecret{}, notFound(err, problem.NotFound, "webhook endpoint not found")
		}
		now := s.Now()
		until := now.Add(SecretOverlap)
		secret := NewWebhookSecret()
		e.PreviousSecret, e.PreviousUntil = e.Secret, &until
		e.Secret = s.webhooks.Sealer.Seal([]byte(secret), secretAD(e.ID))
		e.UpdatedAt = now
		if err := tx.UpdateEndpoint(ctx, e); err != nil {
			return resource.WebhookSecret{}, err
		}
		err = tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, Action: "webhook_endpoint.secret_rotated",
			Actor: m.Actor, Request: m.RequestID, At: now, After: map[string]any{"id": e.ID, "previous_valid_until": until}})
		return resource.WebhookSecret{Secret: secret, PreviousValidUntil: until}, err
	})
}

// TestEndpoint sends a webhook.test event to the endpoint, whatever its events filter
// (also when it is disabled: the test is how a brand checks a fixed receiver).
func (s *Service) TestEndpoint(ctx context.Context, m Meta, p Principal, id string) (resource.WebhookDelivery, error) {
	if err := s.webhooksReady(); err != nil {
		return resource.WebhookDelivery{}, err
	}
	if !validID(id) {
		return resource.WebhookDelivery{}, problem.New(problem.NotFound, "webhook endpoint not found")
	}
	return idempotent(s, ctx, m, p, func(tx Tx) (resource.WebhookDelivery, error) {
		e, err := tx.LockEndpoint(ctx, p.BrandID, id)
		if err != nil {
			return resource.WebhookDelivery{}, notFound(err, problem.NotFound, "webhook endpoint not found")
		}
		now := s.Now()
		body, err := json.Marshal(resource.WebhookPayload{Type: WebhookTest, Timestamp: now,
			Data: resource.WebhookTestData{EndpointID: e.ID, Message: "a test event sent on request"}})
		if err != nil {
			return resource.WebhookDelivery{}, err
		}
		ev := WebhookEventRow{ID: newID(), BrandID: p.BrandID, Type: WebhookTest, Body: body, CreatedAt: now}
		if err := tx.InsertWebhookEvent(ctx, ev); err != nil {
			return resource.WebhookDelivery{}, err
		}
		d := DeliveryRow{ID: newID(), BrandID: p.BrandID, EventID: ev.ID, EndpointID: e.ID, Type: WebhookTest,
			Status: DeliveryPending, NextAttemptAt: &now, CreatedAt: now, UpdatedAt: now}
		if err := tx.InsertDelivery(ctx, d); err != nil {
			return resource.WebhookDelivery{}, err
		}
		if q := s.webhooks.Queue; q != nil {
			if err := q.Enqueue(ctx, tx, []DeliveryRow{d}); err != nil {
				return resource.WebhookDelivery{}, err
			}
		}
		return DeliveryResource(d), nil
	})
}

// ListDeliveries lists an endpoint's deliveries, newest first.
func (s *Service) ListDeliveries(ctx context.Context, p Principal, endpointID string, page Page) (resource.List[resource.WebhookDelivery], error) {
	var out resource.List[resource.WebhookDelivery]
	if !validID(endpointID) {
		return out, problem.New(problem.NotFound, "webhook endpoint not found")
	}
	list := "webhook-deliveries:" + p.BrandID + ":" + endpointID
	c, before, err := s.openCursor(ctx, list, page.Cursor)
	if err != nil {
		return out, err
	}
	err = s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		if _, err := tx.EndpointByID(ctx, p.BrandID, endpointID); err != nil {
			return notFound(err, problem.NotFound, "webhook endpoint not found")
		}
		rows, err := tx.ListDeliveries(ctx, p.BrandID, endpointID, before, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(c, list, rows, page.Limit, DeliveryResource, func(d DeliveryRow) string { return d.ID })
		return nil
	})
	return out, err
}

// RetryDelivery attempts a delivery again now, whatever its state (a succeeded one is
// sent again: the receiver asked for it).
func (s *Service) RetryDelivery(ctx context.Context, m Meta, p Principal, id string) (resource.WebhookDelivery, error) {
	if err := s.webhooksReady(); err != nil {
		return resource.WebhookDelivery{}, err
	}
	if !validID(id) {
		return resource.WebhookDelivery{}, problem.New(problem.NotFound, "webhook delivery not found")
	}
	return idempotent(s, ctx, m, p, func(tx Tx) (resource.WebhookDelivery, error) {
		d, err := tx.LockDelivery(ctx, p.BrandID, id)
		if err != nil {
			return resource.WebhookDelivery{}, notFound(err, problem.NotFound, "webhook delivery not found")
		}
		now := s.Now()
		if err := tx.RequeueDelivery(ctx, p.BrandID, id, now); err != nil {
			return resource.WebhookDelivery{}, err
		}
		d.Status, d.NextAttemptAt, d.UpdatedAt = DeliveryPending, &now, now
		if q := s.webhooks.Queue; q != nil {
			if err := q.Retry(ctx, tx, d); err != nil {
				return resource.WebhookDelivery{}, err
			}
		}
		out := DeliveryResource(d)
		err = tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, Action: "webhook_delivery.retried",
			Actor: m.Actor, Request: m.RequestID, At: now, After: out})
		return out, err
	})
}

// ---------------------------------------------------------------- payloads

// WebhookBody renders the delivery body of a committed change: its contract type, the
// commit time, and the resource as the API returns it (statuses evaluated at the commit
// time, so a license.expired event says "expired"). It is rendered once per event; every
// delivery and retry sends the same bytes.
func WebhookBody(c *event.Change) ([]byte, error) {
	at := c.CommitTime.UTC()
	lic := func(l *event.License) resource.License {
		out := resource.License{ID: l.ID, LicenseKey: c.LicenseKey, Product: l.Product,
			Status:    license.EffectiveStatus(l.Status, l.ExpiresAt, at),
			ExpiresAt: utcPtr(l.ExpiresAt), SeatLimit: l.SeatLimit, SeatsUsed: l.SeatsUsed,
			CreatedAt: l.CreatedAt.UTC(), UpdatedAt: l.UpdatedAt.UTC()}
		if l.SeatLimit != nil {
			r := max(*l.SeatLimit-l.SeatsUsed, 0)
			out.SeatsRemaining = &r
		}
		return out
	}
	var data any
	switch {
	case c.Type == event.KeyCreated:
		k := resource.LicenseKey{Key: c.LicenseKey, Brand: c.Brand, CustomerEmail: c.CustomerEmail,
			CreatedAt: at, Licenses: make([]resource.License, 0, len(c.Licenses))}
		for i := range c.Licenses {
			k.Licenses = append(k.Licenses, lic(&c.Licenses[i]))
			if i == 0 {
				k.CreatedAt = c.Licenses[i].CreatedAt.UTC()
			}
		}
		data = k
	case c.Activation != nil && c.License != nil:
		a := c.Activation
		data = resource.WebhookActivation{
			Activation: resource.Activation{ID: a.ID, LicenseID: a.LicenseID, Instance: a.Instance, ActivatedAt: a.ActivatedAt.UTC()},
			License:    lic(c.License)}
	case c.License != nil:
		data = lic(c.License)
	default:
		return nil, problem.New(problem.Internal, "event %d of type %s carries no resource", c.ID, c.Type)
	}
	return json.Marshal(resource.WebhookPayload{Type: c.Type, Timestamp: at, Data: data})
}
