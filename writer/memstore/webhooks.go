package memstore

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/writer/licensing"
)

func (t *Tx) InsertEndpoint(_ context.Context, e licensing.EndpointRow) error {
	if err := t.write(); err != nil {
		return err
	}
	if err := t.checkBrand(e.BrandID); err != nil {
		return err
	}
	if _, ok := t.d.endpoints[e.ID]; ok {
		return conflict()
	}
	e.Events = slices.Clone(e.Events)
	t.d.endpoints[e.ID] = e
	return nil
}

// LockEndpoint reads the endpoint: transactions here are serial, so the lock is implied.
func (t *Tx) LockEndpoint(ctx context.Context, brandID, id string) (licensing.EndpointRow, error) {
	if err := t.write(); err != nil {
		return licensing.EndpointRow{}, err
	}
	return t.EndpointByID(ctx, brandID, id)
}

func (t *Tx) EndpointByID(_ context.Context, brandID, id string) (licensing.EndpointRow, error) {
	if err := t.flush(); err != nil {
		return licensing.EndpointRow{}, err
	}
	e, ok := t.d.endpoints[id]
	if !ok || e.BrandID != brandID || !t.sees(brandID) {
		return licensing.EndpointRow{}, notFound()
	}
	e.Events = slices.Clone(e.Events)
	return e, nil
}

func (t *Tx) ListEndpoints(_ context.Context, brandID, after string, limit int) ([]licensing.EndpointRow, error) {
	var rows []licensing.EndpointRow
	for _, e := range t.d.endpoints {
		if e.BrandID == brandID && t.sees(brandID) {
			rows = append(rows, e)
		}
	}
	return sortedByID(rows, func(e licensing.EndpointRow) string { return e.ID }, after, limit), nil
}

func (t *Tx) UpdateEndpoint(ctx context.Context, e licensing.EndpointRow) error {
	if err := t.write(); err != nil {
		return err
	}
	if _, err := t.LockEndpoint(ctx, e.BrandID, e.ID); err != nil {
		return err
	}
	e.Events = slices.Clone(e.Events)
	t.d.endpoints[e.ID] = e
	return nil
}

func (t *Tx) DeleteEndpoint(ctx context.Context, brandID, id string) error {
	if err := t.write(); err != nil {
		return err
	}
	if _, err := t.LockEndpoint(ctx, brandID, id); err != nil {
		return err
	}
	delete(t.d.endpoints, id)
	for did, d := range t.d.deliveries {
		if d.EndpointID == id {
			delete(t.d.deliveries, did)
		}
	}
	return nil
}

func (t *Tx) InsertWebhookEvent(_ context.Context, e licensing.WebhookEventRow) error {
	if err := t.write(); err != nil {
		return err
	}
	if err := t.checkBrand(e.BrandID); err != nil {
		return err
	}
	if _, ok := t.d.webhookEvents[e.ID]; ok {
		return conflict()
	}
	t.d.webhookEvents[e.ID] = e
	return nil
}

func (t *Tx) InsertDelivery(_ context.Context, d licensing.DeliveryRow) error {
	if err := t.write(); err != nil {
		return err
	}
	if err := t.checkBrand(d.BrandID); err != nil {
		return err
	}
	if _, ok := t.d.webhookEvents[d.EventID]; !ok {
		return &problem.Error{Kind: problem.Internal, Detail: "foreign key: no such webhook event"}
	}
	if _, ok := t.d.endpoints[d.EndpointID]; !ok {
		return &problem.Error{Kind: problem.Internal, Detail: "foreign key: no such webhook endpoint"}
	}
	for _, x := range t.d.deliveries {
		if x.ID == d.ID || x.EventID == d.EventID && x.EndpointID == d.EndpointID {
			return conflict()
		}
	}
	t.d.deliveries[d.ID] = d
	return nil
}

func (t *Tx) LockDelivery(_ context.Context, brandID, id string) (licensing.DeliveryRow, error) {
	d, ok := t.d.deliveries[id]
	if !ok || d.BrandID != brandID || !t.sees(brandID) {
		return licensing.DeliveryRow{}, notFound()
	}
	return d, nil
}

func (t *Tx) RequeueDelivery(ctx context.Context, brandID, id string, at time.Time) error {
	if err := t.write(); err != nil {
		return err
	}
	d, err := t.LockDelivery(ctx, brandID, id)
	if err != nil {
		return err
	}
	d.Status, d.NextAttemptAt, d.UpdatedAt = licensing.DeliveryPending, &at, at
	t.d.deliveries[id] = d
	return nil
}

func (t *Tx) ListDeliveries(_ context.Context, brandID, endpointID, before string, limit int) ([]licensing.DeliveryRow, error) {
	var rows []licensing.DeliveryRow
	for _, d := range t.d.deliveries {
		if d.BrandID == brandID && d.EndpointID == endpointID && t.sees(brandID) && (before == "" || d.ID < before) {
			rows = append(rows, d)
		}
	}
	slices.SortFunc(rows, func(a, b licensing.DeliveryRow) int { return cmp.Compare(b.ID, a.ID) })
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return rows, nil
}

// Deliveries returns every delivery in the log (tests).
func (s *Store) Deliveries() []licensing.DeliveryRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []licensing.DeliveryRow
	for _, d := range s.d.deliveries {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b licensing.DeliveryRow) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ---------------------------------------------------------------- expiries

func (t *Tx) DueExpiries(_ context.Context, now time.Time, limit int) ([]licensing.LicenseRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	rows := t.licenses(func(l licensing.LicenseRow) bool {
		rec, ok := t.d.expiryRecorded[l.ID]
		return l.Status == license.StatusValid && l.ExpiresAt != nil && !l.ExpiresAt.After(now) &&
			(!ok || !rec.Equal(*l.ExpiresAt))
	})
	slices.SortFunc(rows, func(a, b licensing.LicenseRow) int { return a.ExpiresAt.Compare(*b.ExpiresAt) })
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return rows, nil
}

func (t *Tx) RecordExpiry(_ context.Context, brandID, licenseID string, expiresAt time.Time) (bool, error) {
	if err := t.write(); err != nil {
		return false, err
	}
	if err := t.flush(); err != nil {
		return false, err
	}
	l, ok := t.d.licenses[licenseID]
	if !ok || l.BrandID != brandID || !t.sees(brandID) || l.ExpiresAt == nil || !l.ExpiresAt.Equal(expiresAt) {
		return false, nil
	}
	if rec, ok := t.d.expiryRecorded[licenseID]; ok && rec.Equal(expiresAt) {
		return false, nil
	}
	t.d.expiryRecorded[licenseID] = expiresAt
	return true, nil
}
