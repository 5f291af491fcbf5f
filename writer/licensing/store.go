package licensing

import (
	"context"
	"time"

	"github.com/licensing/licensing/shared/resource"
)

// Scope selects the row-level-security scope of a transaction: one brand's id, or
// ScopeAll for the operator and for resolving credentials and slugs.
type Scope string

// ScopeAll lets a transaction see every brand (operator, slug and credential look-ups).
const ScopeAll Scope = "all"

// BrandScope scopes a transaction to one brand.
func BrandScope(brandID string) Scope { return Scope(brandID) }

// Store is what the domain needs of its storage. Implementations (writer/postgres, and
// writer/memstore for tests) map driver errors to problem kinds at their boundary: no rows
// → not_found (callers replace it by a more specific kind), unique violation → conflict;
// any other error is internal and names the operation that failed.
type Store interface {
	// Tx runs fn in one transaction scoped to scope; fn's error rolls it back. Writes
	// queued by fn (the Queue* methods) are sent with the next read or at commit, and an
	// error of theirs is returned by Tx.
	Tx(ctx context.Context, scope Scope, fn func(Tx) error) error
	// ReadTx is Tx for read-only work, on one snapshot.
	ReadTx(ctx context.Context, scope Scope, fn func(Tx) error) error
	// SeatStatements run here each as a transaction of its own, in one round trip.
	SeatStatements
}

// Tx is one transaction: the union of what each part of the domain uses, each part
// declared beside the code that uses it.
type Tx interface {
	BrandTx        // brands.go: brands, API keys, products
	CursorTx       // pagination.go: the cursor key
	LicenseTx      // licenses.go: license keys, licenses, their activations
	SeatStatements // seats.go: activation and deactivation, one statement each
	AuditTx        // audit.go: audit events and the change record (version, audit, outbox)
	IdempotencyTx  // idempotency.go: idempotency records
	StatusTx       // status.go: the state a status check reads
	WebhookTx      // webhooks.go: webhook endpoints and their delivery log
	ExpiryTx       // expiry.go: recording expiries
}

// Lock order: every change under a license key locks the key row first and nothing else.
// The key row guards every row under it (its licenses and their activations, and the
// version counter that events and caches carry), so concurrent changes under one key
// serialize on it and no second lock is ever taken; the schema's
// CHECK (seats_used <= seat_limit) is the last wall behind the seat rule.

// BrandRow is a stored brand.
type BrandRow struct {
	ID, Slug, Name string
	CreatedAt      time.Time
	RateLimit      *resource.RateLimit // nil: the default
}

// APIKeyRow is a stored API key: only a hash of its secret.
type APIKeyRow struct {
	ID, BrandID, Prefix string
	SecretHash          []byte
	Scopes              []string
	CreatedAt           time.Time
	RevokedAt           *time.Time
	BrandSlug           string              // filled by APIKeyByPrefix
	BrandRateLimit      *resource.RateLimit // filled by APIKeyByPrefix
}

// ProductRow is a stored product.
type ProductRow struct {
	ID, BrandID, Code, Name string
	DevInstances            bool
	DevInstanceSuffixes     []string // normalized (license.NormalizeDevSuffix)
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

// ActivationRow is a seat held by an instance. Version is the key version at which it was
// made.
type ActivationRow struct {
	ID, BrandID, LicenseID, Instance string
	ActivatedAt                      time.Time
	Version                          int64
	Development                      bool // a development instance: holds no seat
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
// own rows: the key's new version, its audit event and its outbox event.
type ChangeRecord struct {
	KeyID      string
	NewVersion int64
	Audit      *AuditRow // nil when the caller wrote its audit events itself
	Subject    string
	Payload    []byte // the event.Change, JSON
}
