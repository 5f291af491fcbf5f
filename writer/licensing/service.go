// Package licensing is the writer's domain logic: brands and their API keys, products,
// provisioning, the license lifecycle, seat activation, idempotency and customer look-ups.
// It knows nothing of HTTP, SQL drivers or NATS: every operation takes plain data plus
// request metadata (Meta) and returns resources or problem errors (shared/problem kinds),
// so the HTTP API, the bootstrap CLI and background jobs share it. Each change runs in one
// transaction of the Store together with its audit event and its outbox event. The store
// interfaces are declared beside the code that uses them (brands.go, licenses.go,
// seats.go, audit.go, idempotency.go, status.go); writer/postgres implements them, and
// writer/memstore is the in-memory fake the domain's tests run on.
package licensing

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// Meta describes who asks and under which request.
type Meta struct {
	Actor     string // "operator", "api_key:<id>", "public:<ip>", "cli", "system", ...
	RequestID string
	// Idempotency, when set, makes a brand POST replay its first outcome.
	Idempotency *Idempotency
}

// Principal is an authenticated caller.
type Principal struct {
	Operator  bool
	BrandID   string
	BrandSlug string
	KeyID     string
	Scopes    []string
	// RateLimit is the brand's own limit (nil: the default).
	RateLimit *resource.RateLimit
}

// Has reports whether the principal holds scope s (the operator holds every scope).
func (p Principal) Has(s string) bool { return p.Operator || slices.Contains(p.Scopes, s) }

// Scopes a brand API key may hold.
const (
	ScopeCustomersReadAll = "customers:read-all"
)

// KnownScopes are the scopes that can be granted.
var KnownScopes = []string{ScopeCustomersReadAll}

// Service is the domain API.
type Service struct {
	store Store
	now   func() time.Time
	log   *slog.Logger
	// Observe, when set, is told the outcome code of every activation attempt.
	Observe func(result string)

	brandMu    sync.RWMutex
	brandCache map[string]BrandRow
	cursors    atomic.Pointer[cursors] // read from the store at first use
	webhooks   Webhooks
}

// New returns a service over store. now is the clock.
func New(store Store, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now, log: log, brandCache: map[string]BrandRow{}}
}

// Now is the service clock, in UTC with the microsecond precision Postgres keeps (so a
// time the service hands out compares equal after a round trip).
func (s *Service) Now() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// validID reports whether s is a UUID in its canonical 36-character form; uuid.Parse alone
// also accepts braces, "urn:uuid:" and other spellings Postgres would refuse.
func validID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && len(s) == 36 && u.String() == strings.ToLower(s)
}

// ---------------------------------------------------------------- conversions

func brandResource(b BrandRow) resource.Brand {
	return resource.Brand{ID: b.ID, Slug: b.Slug, Name: b.Name, CreatedAt: b.CreatedAt.UTC(), RateLimit: b.RateLimit}
}

func productResource(p ProductRow) resource.Product {
	sfx := p.DevInstanceSuffixes
	if sfx == nil {
		sfx = []string{}
	}
	return resource.Product{ID: p.ID, Code: p.Code, Name: p.Name, DevInstances: p.DevInstances,
		DevInstanceSuffixes: sfx, CreatedAt: p.CreatedAt.UTC()}
}

func (s *Service) licenseResource(l LicenseRow) resource.License {
	out := resource.License{
		ID: l.ID, LicenseKey: l.Key, Product: l.ProductCode,
		Status:    license.EffectiveStatus(l.Status, l.ExpiresAt, s.Now()),
		ExpiresAt: utcPtr(l.ExpiresAt), SeatLimit: l.SeatLimit, SeatsUsed: l.SeatsUsed,
		CreatedAt: l.CreatedAt.UTC(), UpdatedAt: l.UpdatedAt.UTC(),
	}
	if l.SeatLimit != nil {
		r := max(*l.SeatLimit-l.SeatsUsed, 0)
		out.SeatsRemaining = &r
	}
	return out
}

func activationResource(a ActivationRow) resource.Activation {
	return resource.Activation{ID: a.ID, LicenseID: a.LicenseID, Instance: a.Instance, ActivatedAt: a.ActivatedAt.UTC(),
		Development: a.Development}
}

func licenseEvent(l LicenseRow) *event.License {
	return &event.License{ID: l.ID, Product: l.ProductCode, Status: l.Status, ExpiresAt: utcPtr(l.ExpiresAt),
		SeatLimit: l.SeatLimit, SeatsUsed: l.SeatsUsed, CreatedAt: l.CreatedAt.UTC(), UpdatedAt: l.UpdatedAt.UTC()}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// notFound replaces a not_found error by one of kind k with a safe message; other errors
// pass through.
func notFound(err error, k problem.Kind, format string, args ...any) error {
	if problem.Is(err, problem.NotFound) {
		return problem.New(k, format, args...)
	}
	return err
}

// record queues the change's effects under key k: the version bump, the audit event (nil
// audit: the caller wrote its own) and the outbox event ch, whose version and identity
// fields it fills. Their errors surface when the transaction commits.
func (s *Service) record(tx Tx, k *KeyRow, ch event.Change, audit *AuditRow) error {
	k.Version++
	ch.BrandID, ch.Brand, ch.KeyID, ch.LicenseKey, ch.Version = k.BrandID, k.BrandSlug, k.ID, k.Key, k.Version
	if ch.CommitTime.IsZero() {
		ch.CommitTime = s.Now()
	}
	payload, err := json.Marshal(ch)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", ch.Type, err)
	}
	if audit != nil {
		audit.ID, audit.BrandID, audit.KeyID = newID(), k.BrandID, k.ID
	}
	tx.QueueChange(ChangeRecord{KeyID: k.ID, NewVersion: k.Version, Audit: audit,
		Subject: event.Subject(k.BrandID, k.ID), Payload: payload})
	return nil
}
