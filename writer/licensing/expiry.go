package licensing

import (
	"context"
	"time"

	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
)

// ExpiryTx is what recording expiries needs of a transaction.
type ExpiryTx interface {
	// DueExpiries lists, across brands (ScopeAll), valid licenses whose expires_at passed
	// at now and whose passing is not recorded yet, soonest expiry first.
	DueExpiries(ctx context.Context, now time.Time, limit int) ([]LicenseRow, error)
	// RecordExpiry marks the passing of the license's expires_at (which must still be
	// expiresAt) as recorded; false when it already was, or the license changed since.
	RecordExpiry(ctx context.Context, brandID, licenseID string, expiresAt time.Time) (bool, error)
}

// RecordExpiries records, as changes, the expiries that passed and are not recorded yet
// (at most limit of them): for each, under the key's lock, a version bump, an audit
// event by actor "system" and a license.expired outbox event (API.md). Each expiry is
// recorded once, however many writers run this concurrently: the key lock serializes
// them and RecordExpiry admits one. A renewal sets a new expires_at, whose passing is
// recorded again. It returns how many it recorded.
func (s *Service) RecordExpiries(ctx context.Context, limit int) (int, error) {
	var due []LicenseRow
	err := s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		var err error
		due, err = tx.DueExpiries(ctx, s.Now(), limit)
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		recorded := false
		err := s.store.Tx(ctx, BrandScope(d.BrandID), func(tx Tx) error {
			k, l, err := tx.LockLicense(ctx, d.BrandID, d.ID)
			if problem.Is(err, problem.NotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			now := s.Now()
			if l.Status != license.StatusValid || l.ExpiresAt == nil || l.ExpiresAt.After(now) {
				return nil // changed since the scan: resumed, suspended, renewed, cancelled
			}
			ok, err := tx.RecordExpiry(ctx, d.BrandID, d.ID, *l.ExpiresAt)
			if err != nil || !ok {
				return err
			}
			after := s.licenseResource(l)
			before := after
			before.Status = license.StatusValid
			recorded = true
			return s.record(tx, &k, event.Change{Type: event.LicenseExpired, License: licenseEvent(l), CommitTime: now},
				&AuditRow{LicenseID: l.ID, Action: "license.expired", Actor: "system", At: now, Before: before, After: after})
		})
		if err != nil {
			return n, err
		}
		if recorded {
			n++
		}
	}
	return n, nil
}
