package licensing

import (
	"context"

	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// AuditTx is what the audit log and the outbox need of a transaction.
type AuditTx interface {
	// InsertAudit writes an audit event that is not part of a change record (brands,
	// credentials, products, the per-license events of a provisioning).
	InsertAudit(ctx context.Context, a AuditRow) error
	// QueueChange queues a change's effects under a locked key: the key's new version,
	// its audit event (if any) and its outbox event. It is sent with the next read or at
	// commit; its error (a key that vanished, a constraint) is returned by the Store's Tx.
	QueueChange(c ChangeRecord)
	// ListEvents lists a license's audit events, oldest first, after the cursor id.
	ListEvents(ctx context.Context, brandID, licenseID, after string, limit int) ([]AuditRow, error)
}

// Events lists a license's audit events, oldest first.
func (s *Service) Events(ctx context.Context, p Principal, licenseID string, page Page) (resource.List[resource.Event], error) {
	if !validID(licenseID) {
		return resource.List[resource.Event]{}, problem.New(problem.NotFound, "license not found")
	}
	var out resource.List[resource.Event]
	list := "events:" + p.BrandID + ":" + licenseID
	c, after, err := s.openCursor(ctx, list, page.Cursor)
	if err != nil {
		return out, err
	}
	err = s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		if _, err := tx.LicenseByID(ctx, p.BrandID, licenseID); err != nil {
			return notFound(err, problem.NotFound, "license not found")
		}
		rows, err := tx.ListEvents(ctx, p.BrandID, licenseID, after, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(c, list, rows, page.Limit, func(a AuditRow) resource.Event {
			return resource.Event{ID: a.ID, Action: a.Action, Actor: a.Actor, RequestID: a.Request, At: a.At.UTC(), Before: a.Before, After: a.After}
		}, func(a AuditRow) string { return a.ID })
		return nil
	})
	return out, err
}
