// Package licensing is the writer's domain logic: brands and their API keys, products,
// provisioning, the license lifecycle, seat activation, idempotency and customer look-ups.
// It knows nothing of HTTP: every operation takes plain data plus request metadata (Meta),
// so the HTTP API, the bootstrap CLI and background jobs share it. Each change runs in one
// transaction of the Store together with its audit event and its outbox event.
package licensing

import (
	"context"
	"time"
)

// Scope selects the row-level-security scope of a transaction: one brand's id, or
// ScopeAll for the operator and for resolving credentials and slugs.
type Scope string

// ScopeAll lets a transaction see every brand (operator, slug and credential look-ups).
const ScopeAll Scope = "all"

// BrandScope scopes a transaction to one brand.
func BrandScope(brandID string) Scope { return Scope(brandID) }

// Store runs transactions. Implementations map driver errors to problem kinds at their
// boundary: no rows → not_found (or the caller's more specific kind), unique violations →
// conflict.
type Store interface {
	// Tx runs fn in one transaction scoped to scope; fn's error rolls it back.
	Tx(ctx context.Context, scope Scope, fn func(Tx) error) error
	// ReadTx is Tx for read-only work.
	ReadTx(ctx context.Context, scope Scope, fn func(Tx) error) error
}

// Lock order, where one transaction locks more than one row: the license key row first
// (LockKey*), then license rows (LockLicense), then activation rows. Every change under a
// key therefore serializes on the key row, which also guards its version counter.

// Tx is the set of queries the domain needs inside one transaction. Methods return
// problem errors of kind not_found when a row does not exist (unless noted) and conflict on
// unique violations; anything else is internal.
type Tx interface {
	// Brands and credentials.
	InsertBrand(ctx context.Context, b BrandRow) error
	BrandBySlug(ctx context.Context, slug string) (BrandRow, error)
	BrandByID(ctx context.Context, id string) (BrandRow, error)
	ListBrands(ctx context.Context, after string, limit int) ([]BrandRow, error)
	InsertAPIKey(ctx context.Context, k APIKeyRow) error
	APIKeyByPrefix(ctx context.Context, prefix string) (APIKeyRow, error)
	RevokeAPIKey(ctx context.Context, brandID, id string, at time.Time) error

	// Products.
	InsertProduct(ctx context.Context, p ProductRow) error
	ListProducts(ctx context.Context, brandID, after string, limit int) ([]ProductRow, error)
	ProductsByCode(ctx context.Context, brandID string, codes []string) (map[string]ProductRow, error)

	// License keys and licenses.
	InsertLicenseKey(ctx context.Context, k KeyRow) error
	KeyByString(ctx context.Context, brandID, key string) (KeyRow, error)
	// LockKey* take the key row lock (FOR UPDATE).
	LockKeyByString(ctx context.Context, brandID, key string) (KeyRow, error)
	LockKeyByID(ctx context.Context, brandID, id string) (KeyRow, error)
	// LockKeyAndLicenses is LockKeyByString plus LicensesOfKeys in one round trip.
	LockKeyAndLicenses(ctx context.Context, brandID, key string) (KeyRow, []LicenseRow, error)
	InsertLicense(ctx context.Context, l LicenseRow) error
	LicenseByID(ctx context.Context, brandID, id string) (LicenseRow, error)
	// LockLicense takes the license row lock; call it after the key's lock.
	LockLicense(ctx context.Context, brandID, id string) (LicenseRow, error)
	// LockLicenseAndActivation is LockLicense plus ActivationByInstance in one round trip;
	// found is false when the instance holds no seat.
	LockLicenseAndActivation(ctx context.Context, brandID, id, instance string) (l LicenseRow, a ActivationRow, found bool, err error)
	LicensesOfKeys(ctx context.Context, brandID string, keyIDs []string) ([]LicenseRow, error)
	UpdateLicense(ctx context.Context, l LicenseRow) error
	// TakeSeat increments seats_used if a seat is free and returns the updated license;
	// ok is false when the license is full.
	TakeSeat(ctx context.Context, brandID, id string, at time.Time) (l LicenseRow, ok bool, err error)
	LicensesByEmail(ctx context.Context, brandID, email, after string, limit int) ([]LicenseRow, error)
	// CustomerLicenses lists, across all brands, the licenses of keys owned by email, by id.
	CustomerLicenses(ctx context.Context, email, after string, limit int) ([]LicenseRow, error)

	// Activations.
	Activations(ctx context.Context, brandID string, licenseIDs []string) ([]ActivationRow, error)
	// ActivationByInstance returns not_found when the instance holds no seat.
	ActivationByInstance(ctx context.Context, brandID, licenseID, instance string) (ActivationRow, error)
	ActivationByID(ctx context.Context, brandID, licenseID, id string) (ActivationRow, error)
	InsertActivation(ctx context.Context, a ActivationRow) error
	DeleteActivation(ctx context.Context, brandID, licenseID, id string) error

	// Record writes a change's effects in one round trip: the key's new version, the
	// audit event and the outbox event.
	Record(ctx context.Context, c ChangeRecord) error
	// InsertAudit writes an audit event that is not under a license key (brands, keys).
	InsertAudit(ctx context.Context, a AuditRow) error
	ListEvents(ctx context.Context, brandID, licenseID, after string, limit int) ([]AuditRow, error)

	// Idempotency records.
	// ClaimIdempotency inserts a running record, or replaces one created before
	// expiredBefore; ok is false when a live one exists, in which case existing holds it
	// (not_found when it vanished between the insert and the read).
	ClaimIdempotency(ctx context.Context, r IdemRow, expiredBefore time.Time) (existing IdemRow, ok bool, err error)
	// TakeOverIdempotency re-claims a running record whose lock is older than staleBefore
	// (its holder crashed); ok is false when it is not stale.
	TakeOverIdempotency(ctx context.Context, brandID, key string, fingerprint []byte, staleBefore, now time.Time) (bool, error)
	// CompleteIdempotency stores the response of the claim made at claimedAt; it returns
	// idempotency_in_progress when that claim is no longer held (taken over).
	CompleteIdempotency(ctx context.Context, brandID, key string, claimedAt time.Time, status int, body []byte) error
	// ReleaseIdempotency deletes the running claim made at claimedAt.
	ReleaseIdempotency(ctx context.Context, brandID, key string, claimedAt time.Time) error
	DeleteIdempotencyBefore(ctx context.Context, before time.Time) (int64, error)
}

// BrandRow is a stored brand.
type BrandRow struct {
	ID, Slug, Name string
	CreatedAt      time.Time
}

// APIKeyRow is a stored API key: only a hash of its secret.
type APIKeyRow struct {
	ID, BrandID, Prefix string
	SecretHash          []byte
	Scopes              []string
	CreatedAt           time.Time
	RevokedAt           *time.Time
	BrandSlug           string // filled by APIKeyByPrefix
}

// ProductRow is a stored product.
type ProductRow struct {
	ID, BrandID, Code, Name string
	CreatedAt               time.Time
}

// KeyRow is a stored license key.
type KeyRow struct {
	ID, BrandID, Key, CustomerEmail string
	Version                         int64
	CreatedAt, UpdatedAt            time.Time
	BrandSlug                       string // filled by reads
}

// LicenseRow is a stored license, joined with its key and product for reading.
type LicenseRow struct {
	ID, BrandID, KeyID, ProductID string
	Status                        string
	ExpiresAt                     *time.Time
	SeatLimit                     *int
	SeatsUsed                     int
	CreatedAt, UpdatedAt          time.Time
	// Joined.
	Key, ProductCode, BrandSlug string
}

// ActivationRow is a seat held by an instance.
type ActivationRow struct {
	ID, BrandID, LicenseID, Instance string
	ActivatedAt                      time.Time
}

// AuditRow is an append-only audit event.
type AuditRow struct {
	ID, BrandID            string
	KeyID, LicenseID       string // "" when not applicable
	Action, Actor, Request string
	At                     time.Time
	Before, After          any
}

// ChangeRecord is everything a committed change under a license key writes besides its
// own rows.
type ChangeRecord struct {
	KeyID      string
	NewVersion int64
	Audit      *AuditRow // nil when the caller wrote its audit events itself
	Subject    string
	Event      any
}

// IdemRow is a stored idempotency record.
type IdemRow struct {
	BrandID, Key   string
	Fingerprint    []byte
	State          string // "running" or "done"
	ResponseStatus int
	ResponseBody   []byte
	CreatedAt      time.Time
	LockedAt       time.Time
}
