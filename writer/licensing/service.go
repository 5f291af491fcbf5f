package licensing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// Meta describes who asks and under which request.
type Meta struct {
	Actor     string // "operator", "api_key:<id>", "public", "cli", ...
	RequestID string
	// Idempotency, when set, makes a brand POST replay its first response.
	Idempotency *Idempotency
}

// Principal is an authenticated caller.
type Principal struct {
	Operator  bool
	BrandID   string
	BrandSlug string
	KeyID     string
	Scopes    []string
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
	// SeatStrategy selects the seat guard of Activate (SeatLock by default).
	SeatStrategy SeatStrategy

	brandMu    sync.RWMutex
	brandCache map[string]BrandRow
}

// New returns a service over store. now is the clock.
func New(store Store, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now, log: log, brandCache: map[string]BrandRow{}}
}

// Now is the service clock.
func (s *Service) Now() time.Time { return s.now().UTC() }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// validID reports whether s is a UUID in its canonical 36-character form; uuid.Parse alone
// also accepts braces, "urn:uuid:" and other spellings Postgres would refuse.
func validID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && len(s) == 36 && u.String() == strings.ToLower(s)
}

// ---------------------------------------------------------------- brands and credentials

// CreateBrand creates a brand and its first API key (the key's secret is returned once).
func (s *Service) CreateBrand(ctx context.Context, m Meta, slug, name string) (resource.BrandCreated, error) {
	if !license.ValidSlug(slug) {
		return resource.BrandCreated{}, problem.Unprocessable("slug", "must match ^[a-z0-9][a-z0-9-]{1,62}$")
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return resource.BrandCreated{}, problem.Unprocessable("name", "must be 1 to 200 characters")
	}
	var out resource.BrandCreated
	err := s.store.Tx(ctx, ScopeAll, func(tx Tx) error {
		b := BrandRow{ID: newID(), Slug: slug, Name: name, CreatedAt: s.Now()}
		if err := tx.InsertBrand(ctx, b); err != nil {
			if problem.Is(err, problem.Conflict) {
				return problem.New(problem.Conflict, "brand %q already exists", slug)
			}
			return err
		}
		k, err := s.issueKey(ctx, tx, m, b, nil)
		if err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: b.ID, Action: "brand.created",
			Actor: m.Actor, Request: m.RequestID, At: b.CreatedAt, After: brandResource(b)}); err != nil {
			return err
		}
		out = resource.BrandCreated{Brand: brandResource(b), APIKey: k}
		return nil
	})
	return out, err
}

// ListBrands lists brands (operator).
func (s *Service) ListBrands(ctx context.Context, page Page) (resource.List[resource.Brand], error) {
	var out resource.List[resource.Brand]
	err := s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		rows, err := tx.ListBrands(ctx, page.After, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(rows, page.Limit, brandResource, func(b BrandRow) string { return b.ID })
		return nil
	})
	return out, err
}

// CreateAPIKey issues a new API key for the brand slug.
func (s *Service) CreateAPIKey(ctx context.Context, m Meta, slug string, scopes []string) (resource.APIKey, error) {
	for i, sc := range scopes {
		if !slices.Contains(KnownScopes, sc) {
			return resource.APIKey{}, problem.Unprocessable(fmt.Sprintf("scopes[%d]", i), "unknown scope %q; known: %s", sc, strings.Join(KnownScopes, ", "))
		}
	}
	var out resource.APIKey
	err := s.store.Tx(ctx, ScopeAll, func(tx Tx) error {
		b, err := tx.BrandBySlug(ctx, slug)
		if err != nil {
			return notFound(err, problem.NotFound, "brand %q not found", slug)
		}
		out, err = s.issueKey(ctx, tx, m, b, scopes)
		if err != nil {
			return err
		}
		return tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: b.ID, Action: "api_key.created",
			Actor: m.Actor, Request: m.RequestID, At: s.Now(), After: map[string]any{"id": out.ID, "prefix": out.Prefix, "scopes": out.Scopes}})
	})
	return out, err
}

// RevokeAPIKey revokes a brand API key; it stops authenticating at once.
func (s *Service) RevokeAPIKey(ctx context.Context, m Meta, slug, id string) error {
	if !validID(id) {
		return problem.New(problem.NotFound, "api key not found")
	}
	return s.store.Tx(ctx, ScopeAll, func(tx Tx) error {
		b, err := tx.BrandBySlug(ctx, slug)
		if err != nil {
			return notFound(err, problem.NotFound, "brand %q not found", slug)
		}
		if err := tx.RevokeAPIKey(ctx, b.ID, id, s.Now()); err != nil {
			return notFound(err, problem.NotFound, "api key not found")
		}
		return tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: b.ID, Action: "api_key.revoked",
			Actor: m.Actor, Request: m.RequestID, At: s.Now(), After: map[string]any{"id": id}})
	})
}

var keyEnc = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

func (s *Service) issueKey(ctx context.Context, tx Tx, m Meta, b BrandRow, scopes []string) (resource.APIKey, error) {
	raw := make([]byte, 5+32)
	if _, err := rand.Read(raw); err != nil {
		return resource.APIKey{}, err
	}
	prefix := keyEnc.EncodeToString(raw[:5])
	secret := keyEnc.EncodeToString(raw[5:])
	if scopes == nil {
		scopes = []string{}
	}
	row := APIKeyRow{ID: newID(), BrandID: b.ID, Prefix: prefix, SecretHash: hashSecret(secret), Scopes: scopes, CreatedAt: s.Now()}
	if err := tx.InsertAPIKey(ctx, row); err != nil {
		return resource.APIKey{}, err
	}
	return resource.APIKey{ID: row.ID, Prefix: prefix, Secret: "lsk_" + prefix + "_" + secret, Scopes: scopes}, nil
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte("lsk-v1:" + secret))
	return h[:]
}

// Authenticate resolves a bearer token. The operator token is compared in constant time;
// API keys are looked up by their public prefix and their secret hash compared in
// constant time. Unknown, malformed and revoked credentials are all unauthorized.
func (s *Service) Authenticate(ctx context.Context, token, operatorToken string) (Principal, error) {
	unauth := problem.New(problem.Unauthorized, "missing, invalid or revoked credentials")
	if token == "" {
		return Principal{}, unauth
	}
	if operatorToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(operatorToken)) == 1 {
		return Principal{Operator: true}, nil
	}
	rest, ok := strings.CutPrefix(token, "lsk_")
	if !ok {
		return Principal{}, unauth
	}
	prefix, secret, ok := strings.Cut(rest, "_")
	if !ok || prefix == "" || secret == "" {
		return Principal{}, unauth
	}
	var k APIKeyRow
	err := s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		var err error
		k, err = tx.APIKeyByPrefix(ctx, prefix)
		return err
	})
	if err != nil {
		if problem.Is(err, problem.NotFound) {
			return Principal{}, unauth
		}
		return Principal{}, err
	}
	if subtle.ConstantTimeCompare(hashSecret(secret), k.SecretHash) != 1 || k.RevokedAt != nil {
		return Principal{}, unauth
	}
	return Principal{BrandID: k.BrandID, BrandSlug: k.BrandSlug, KeyID: k.ID, Scopes: k.Scopes}, nil
}

// brand resolves a public slug, caching it (brands are never deleted or renamed).
func (s *Service) brand(ctx context.Context, slug string) (BrandRow, error) {
	s.brandMu.RLock()
	b, ok := s.brandCache[slug]
	s.brandMu.RUnlock()
	if ok {
		return b, nil
	}
	if !license.ValidSlug(slug) {
		return BrandRow{}, problem.New(problem.LicenseNotFound, "license not found")
	}
	err := s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		var err error
		b, err = tx.BrandBySlug(ctx, slug)
		return err
	})
	if err != nil {
		return BrandRow{}, notFound(err, problem.LicenseNotFound, "license not found")
	}
	s.brandMu.Lock()
	s.brandCache[slug] = b
	s.brandMu.Unlock()
	return b, nil
}

// ---------------------------------------------------------------- products

// CreateProduct adds a product to the brand; 409 conflict when the code exists.
func (s *Service) CreateProduct(ctx context.Context, m Meta, p Principal, code, name string) (resource.Product, error) {
	if !license.ValidSlug(code) {
		return resource.Product{}, problem.Unprocessable("code", "must match ^[a-z0-9][a-z0-9-]{1,62}$")
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return resource.Product{}, problem.Unprocessable("name", "must be 1 to 200 characters")
	}
	return idempotent(s, ctx, m, p, func(tx Tx) (resource.Product, error) {
		row := ProductRow{ID: newID(), BrandID: p.BrandID, Code: code, Name: name, CreatedAt: s.Now()}
		if err := tx.InsertProduct(ctx, row); err != nil {
			if problem.Is(err, problem.Conflict) {
				return resource.Product{}, problem.New(problem.Conflict, "product %q already exists", code)
			}
			return resource.Product{}, err
		}
		out := productResource(row)
		err := tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, Action: "product.created",
			Actor: m.Actor, Request: m.RequestID, At: row.CreatedAt, After: out})
		return out, err
	})
}

// ListProducts lists the brand's products.
func (s *Service) ListProducts(ctx context.Context, p Principal, page Page) (resource.List[resource.Product], error) {
	var out resource.List[resource.Product]
	err := s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		rows, err := tx.ListProducts(ctx, p.BrandID, page.After, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(rows, page.Limit, productResource, func(r ProductRow) string { return r.ID })
		return nil
	})
	return out, err
}

// ---------------------------------------------------------------- pagination

// Page is a keyset page request.
type Page struct {
	Limit int
	After string // decoded cursor: the id of the last row of the previous page
}

// DefaultLimit and MaxLimit bound list pages.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ParsePage validates limit and cursor query values.
func ParsePage(limit, cursor string) (Page, error) {
	p := Page{Limit: DefaultLimit}
	if limit != "" {
		var n int
		if _, err := fmt.Sscanf(limit, "%d", &n); err != nil || fmt.Sprint(n) != limit || n < 1 || n > MaxLimit {
			return p, problem.Invalid("limit", "must be an integer from 1 to %d", MaxLimit)
		}
		p.Limit = n
	}
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil {
			return p, problem.Invalid("cursor", "is not a cursor this API returned")
		}
		if !validID(string(b)) {
			return p, problem.Invalid("cursor", "is not a cursor this API returned")
		}
		p.After = string(b)
	}
	return p, nil
}

func pageOf[R, T any](rows []R, limit int, conv func(R) T, id func(R) string) resource.List[T] {
	out := resource.List[T]{Data: make([]T, 0, min(len(rows), limit))}
	for i, r := range rows {
		if i == limit {
			c := base64.RawURLEncoding.EncodeToString([]byte(id(rows[i-1])))
			out.NextCursor = &c
			break
		}
		out.Data = append(out.Data, conv(r))
	}
	return out
}

// ---------------------------------------------------------------- conversions

func brandResource(b BrandRow) resource.Brand {
	return resource.Brand{ID: b.ID, Slug: b.Slug, Name: b.Name, CreatedAt: b.CreatedAt.UTC()}
}

func productResource(p ProductRow) resource.Product {
	return resource.Product{ID: p.ID, Code: p.Code, Name: p.Name, CreatedAt: p.CreatedAt.UTC()}
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
	return resource.Activation{ID: a.ID, LicenseID: a.LicenseID, Instance: a.Instance, ActivatedAt: a.ActivatedAt.UTC()}
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

// record writes the audit and outbox events of a change under key k and bumps its version.
func (s *Service) record(ctx context.Context, tx Tx, m Meta, k *KeyRow, typ, action string, l *LicenseRow, before, after any) error {
	k.Version++
	now := s.Now()
	licID, product := "", ""
	if l != nil {
		licID, product = l.ID, l.ProductCode
	}
	ch := event.Change{
		Type: typ, BrandID: k.BrandID, Brand: k.BrandSlug, KeyID: k.ID, LicenseKey: k.Key,
		Version: k.Version, LicenseID: licID, Product: product, Before: before, After: after, CommitTime: now,
	}
	return tx.Record(ctx, ChangeRecord{
		KeyID: k.ID, NewVersion: k.Version,
		Audit: &AuditRow{ID: newID(), BrandID: k.BrandID, KeyID: k.ID, LicenseID: licID,
			Action: action, Actor: m.Actor, Request: m.RequestID, At: now, Before: before, After: after},
		Subject: event.Subject(k.BrandID, k.ID),
		Event:   ch,
	})
}

// recordNoAudit is record for changes whose audit events the caller wrote itself.
func (s *Service) recordNoAudit(ctx context.Context, tx Tx, m Meta, k *KeyRow, typ string, after any) error {
	k.Version++
	ch := event.Change{Type: typ, BrandID: k.BrandID, Brand: k.BrandSlug, KeyID: k.ID, LicenseKey: k.Key,
		Version: k.Version, After: after, CommitTime: s.Now()}
	return tx.Record(ctx, ChangeRecord{KeyID: k.ID, NewVersion: k.Version, Subject: event.Subject(k.BrandID, k.ID), Event: ch})
}
