package licensing

import (
	"context"
	"fmt"
	"time"

	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// LicenseTx is what license keys, licenses and their activations need of a transaction.
// Reads return not_found for a missing row.
type LicenseTx interface {
	InsertLicenseKey(ctx context.Context, k KeyRow) error
	KeyByString(ctx context.Context, brandID, key string) (KeyRow, error)
	// LockKeyByString takes the key row's lock (the only lock of a change, see store.go).
	LockKeyByString(ctx context.Context, brandID, key string) (KeyRow, error)
	// LockLicense takes the lock of the license's key row and reads both, in one round
	// trip.
	LockLicense(ctx context.Context, brandID, licenseID string) (KeyRow, LicenseRow, error)
	// InsertLicense returns conflict when the key already holds a live license of the
	// product.
	InsertLicense(ctx context.Context, l LicenseRow) error
	LicenseByID(ctx context.Context, brandID, id string) (LicenseRow, error)
	// LicensesOfKeys returns the licenses of the keys, by id.
	LicensesOfKeys(ctx context.Context, brandID string, keyIDs []string) ([]LicenseRow, error)
	// QueueLicenseUpdate queues writing l's status, expiry, seats and updated_at; its
	// error surfaces at commit.
	QueueLicenseUpdate(l LicenseRow)
	LicensesByEmail(ctx context.Context, brandID, email, after string, limit int) ([]LicenseRow, error)
	// CustomerLicenses lists, across all brands, the licenses of keys owned by email, by id.
	CustomerLicenses(ctx context.Context, email, after string, limit int) ([]LicenseRow, error)
	// RecentActivations returns, for each license, its perLicense most recent activations
	// (by id, which is time-ordered), oldest first within a license.
	RecentActivations(ctx context.Context, brandID string, licenseIDs []string, perLicense int) ([]ActivationRow, error)
	// ListActivations lists a license's activations by id after the cursor id.
	ListActivations(ctx context.Context, brandID, licenseID, after string, limit int) ([]ActivationRow, error)
	BrandTx
}

// LicenseSpec asks for one license on a key.
type LicenseSpec struct {
	Product   string
	ExpiresAt *time.Time
	SeatLimit *int
}

// MaxLicensesPerRequest bounds a provisioning request.
const MaxLicensesPerRequest = 50

// MaxEmbeddedActivations is how many activations (the most recent) a license embeds in
// GET /v1/licenses/{id} and GET /v1/license-keys/{key}; the rest are listed by
// GET /v1/licenses/{id}/activations.
const MaxEmbeddedActivations = 100

// MaxSeatLimit bounds seat_limit.
const MaxSeatLimit = 1_000_000

func (s *Service) validateSpec(field string, sp LicenseSpec) error {
	if sp.Product == "" {
		return problem.Unacceptable(field+".product", "is required")
	}
	if sp.SeatLimit != nil && (*sp.SeatLimit < 1 || *sp.SeatLimit > MaxSeatLimit) {
		return problem.Unacceptable(field+".seat_limit", "must be null (unlimited) or from 1 to %d", MaxSeatLimit)
	}
	if sp.ExpiresAt != nil && !sp.ExpiresAt.After(s.Now()) {
		return problem.Unacceptable(field+".expires_at", "must be in the future")
	}
	return nil
}

// Provision creates a license key for a customer with one or more licenses (US1), all or
// nothing: an unknown product creates nothing.
func (s *Service) Provision(ctx context.Context, m Meta, p Principal, email string, specs []LicenseSpec) (resource.LicenseKey, error) {
	email, err := license.NormalizeEmail(email)
	if err != nil {
		return resource.LicenseKey{}, problem.Unacceptable("customer_email", "%v", err)
	}
	if len(specs) < 1 || len(specs) > MaxLicensesPerRequest {
		return resource.LicenseKey{}, problem.Unacceptable("licenses", "must hold 1 to %d licenses", MaxLicensesPerRequest)
	}
	codes := make([]string, 0, len(specs))
	seen := map[string]bool{}
	for i, sp := range specs {
		f := fmt.Sprintf("licenses[%d]", i)
		if err := s.validateSpec(f, sp); err != nil {
			return resource.LicenseKey{}, err
		}
		if seen[sp.Product] {
			return resource.LicenseKey{}, problem.New(problem.ProductAlreadyLicensed, "%s.product: the product appears twice", f)
		}
		seen[sp.Product] = true
		codes = append(codes, sp.Product)
	}
	return idempotent(s, ctx, m, p, func(tx Tx) (resource.LicenseKey, error) {
		products, err := tx.ProductsByCode(ctx, p.BrandID, codes)
		if err != nil {
			return resource.LicenseKey{}, err
		}
		for i, c := range codes {
			if _, ok := products[c]; !ok {
				return resource.LicenseKey{}, problem.New(problem.UnknownProduct, "licenses[%d].product: unknown product %q", i, c)
			}
		}
		now := s.Now()
		k := KeyRow{ID: newID(), BrandID: p.BrandID, Key: license.NewKey(), CustomerEmail: email,
			Version: 0, CreatedAt: now, UpdatedAt: now, BrandSlug: p.BrandSlug}
		if err := tx.InsertLicenseKey(ctx, k); err != nil {
			return resource.LicenseKey{}, err
		}
		out := resource.LicenseKey{Key: k.Key, Brand: p.BrandSlug, CustomerEmail: email, CreatedAt: now, Licenses: []resource.License{}}
		ch := event.Change{Type: event.KeyCreated, CustomerEmail: email}
		for _, sp := range specs {
			l := LicenseRow{ID: newID(), BrandID: p.BrandID, KeyID: k.ID, ProductID: products[sp.Product].ID,
				Status: license.StatusValid, ExpiresAt: utcPtr(sp.ExpiresAt), SeatLimit: sp.SeatLimit,
				CreatedAt: now, UpdatedAt: now, Key: k.Key, ProductCode: sp.Product, BrandSlug: p.BrandSlug}
			if err := tx.InsertLicense(ctx, l); err != nil {
				return resource.LicenseKey{}, err
			}
			res := s.licenseResource(l)
			out.Licenses = append(out.Licenses, res)
			ch.Licenses = append(ch.Licenses, *licenseEvent(l))
			// one audit event per license: what GET /v1/licenses/{id}/events shows
			if err := tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, KeyID: k.ID, LicenseID: l.ID,
				Action: "license.created", Actor: m.Actor, Request: m.RequestID, At: now, After: res}); err != nil {
				return resource.LicenseKey{}, err
			}
		}
		if err := s.record(tx, &k, ch, nil); err != nil {
			return resource.LicenseKey{}, err
		}
		return out, nil
	})
}

// AddLicense adds a license for another product to an existing key (US1).
func (s *Service) AddLicense(ctx context.Context, m Meta, p Principal, key string, sp LicenseSpec) (resource.License, error) {
	if err := s.validateSpec("license", sp); err != nil {
		return resource.License{}, err
	}
	key = license.NormalizeKey(key)
	if !license.ValidKey(key) {
		return resource.License{}, problem.New(problem.NotFound, "license key not found")
	}
	alreadyLicensed := problem.New(problem.ProductAlreadyLicensed, "the product is already licensed on this key")
	return idempotent(s, ctx, m, p, func(tx Tx) (resource.License, error) {
		k, err := tx.LockKeyByString(ctx, p.BrandID, key)
		if err != nil {
			return resource.License{}, notFound(err, problem.NotFound, "license key not found")
		}
		products, err := tx.ProductsByCode(ctx, p.BrandID, []string{sp.Product})
		if err != nil {
			return resource.License{}, err
		}
		prod, ok := products[sp.Product]
		if !ok {
			return resource.License{}, problem.New(problem.UnknownProduct, "product: unknown product %q", sp.Product)
		}
		existing, err := tx.LicensesOfKeys(ctx, p.BrandID, []string{k.ID})
		if err != nil {
			return resource.License{}, err
		}
		for _, l := range existing {
			if l.ProductID == prod.ID && l.Status != license.StatusCancelled {
				return resource.License{}, alreadyLicensed
			}
		}
		now := s.Now()
		l := LicenseRow{ID: newID(), BrandID: p.BrandID, KeyID: k.ID, ProductID: prod.ID,
			Status: license.StatusValid, ExpiresAt: utcPtr(sp.ExpiresAt), SeatLimit: sp.SeatLimit,
			CreatedAt: now, UpdatedAt: now, Key: k.Key, ProductCode: sp.Product, BrandSlug: p.BrandSlug}
		if err := tx.InsertLicense(ctx, l); err != nil {
			// the key's lock makes the check above authoritative; the unique index is the
			// last wall
			if problem.Is(err, problem.Conflict) {
				return resource.License{}, alreadyLicensed
			}
			return resource.License{}, err
		}
		out := s.licenseResource(l)
		err = s.record(tx, &k, event.Change{Type: event.LicenseCreated, License: licenseEvent(l)},
			&AuditRow{LicenseID: l.ID, Action: "license.created", Actor: m.Actor, Request: m.RequestID, At: now, After: out})
		return out, err
	})
}

// GetLicenseKey returns a key with its licenses, each with its most recent activations.
func (s *Service) GetLicenseKey(ctx context.Context, p Principal, key string) (resource.LicenseKey, error) {
	key = license.NormalizeKey(key)
	if !license.ValidKey(key) {
		return resource.LicenseKey{}, problem.New(problem.NotFound, "license key not found")
	}
	var out resource.LicenseKey
	err := s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		k, err := tx.KeyByString(ctx, p.BrandID, key)
		if err != nil {
			return notFound(err, problem.NotFound, "license key not found")
		}
		rows, err := tx.LicensesOfKeys(ctx, p.BrandID, []string{k.ID})
		if err != nil {
			return err
		}
		ls, err := s.withActivations(ctx, tx, p.BrandID, rows)
		if err != nil {
			return err
		}
		out = resource.LicenseKey{Key: k.Key, Brand: p.BrandSlug, CustomerEmail: k.CustomerEmail, CreatedAt: k.CreatedAt.UTC(), Licenses: ls}
		return nil
	})
	return out, err
}

// embedded reads the most recent activations of licenses: per license at most
// MaxEmbeddedActivations, and whether there are more.
func embedded(ctx context.Context, tx LicenseTx, brandID string, licenseIDs []string) (map[string][]resource.Activation, map[string]bool, error) {
	acts := map[string][]resource.Activation{}
	more := map[string]bool{}
	if len(licenseIDs) == 0 {
		return acts, more, nil
	}
	rows, err := tx.RecentActivations(ctx, brandID, licenseIDs, MaxEmbeddedActivations+1)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range rows {
		acts[a.LicenseID] = append(acts[a.LicenseID], activationResource(a))
	}
	for id, as := range acts {
		if len(as) > MaxEmbeddedActivations {
			acts[id], more[id] = as[len(as)-MaxEmbeddedActivations:], true // oldest first: drop the oldest
		}
	}
	return acts, more, nil
}

func (s *Service) withActivations(ctx context.Context, tx LicenseTx, brandID string, rows []LicenseRow) ([]resource.License, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	acts, more, err := embedded(ctx, tx, brandID, ids)
	if err != nil {
		return nil, err
	}
	out := make([]resource.License, 0, len(rows))
	for _, r := range rows {
		l := s.licenseResource(r)
		l.Activations, l.ActivationsTruncated = embed(acts[r.ID], more[r.ID])
		out = append(out, l)
	}
	return out, nil
}

func embed(as []resource.Activation, more bool) (*[]resource.Activation, *bool) {
	if as == nil {
		as = []resource.Activation{}
	}
	return &as, &more
}

// GetLicense returns one license with its most recent activations.
func (s *Service) GetLicense(ctx context.Context, p Principal, id string) (resource.License, error) {
	if !validID(id) {
		return resource.License{}, problem.New(problem.NotFound, "license not found")
	}
	var out resource.License
	err := s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		l, err := tx.LicenseByID(ctx, p.BrandID, id)
		if err != nil {
			return notFound(err, problem.NotFound, "license not found")
		}
		ls, err := s.withActivations(ctx, tx, p.BrandID, []LicenseRow{l})
		if err != nil {
			return err
		}
		out = ls[0]
		return nil
	})
	return out, err
}

// ListActivations lists all of a license's activations, a keyset page at a time.
func (s *Service) ListActivations(ctx context.Context, p Principal, licenseID string, page Page) (resource.List[resource.Activation], error) {
	if !validID(licenseID) {
		return resource.List[resource.Activation]{}, problem.New(problem.NotFound, "license not found")
	}
	var out resource.List[resource.Activation]
	list := "activations:" + p.BrandID + ":" + licenseID
	c, after, err := s.openCursor(ctx, list, page.Cursor)
	if err != nil {
		return out, err
	}
	err = s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		if _, err := tx.LicenseByID(ctx, p.BrandID, licenseID); err != nil {
			return notFound(err, problem.NotFound, "license not found")
		}
		rows, err := tx.ListActivations(ctx, p.BrandID, licenseID, after, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(c, list, rows, page.Limit, activationResource, func(a ActivationRow) string { return a.ID })
		return nil
	})
	return out, err
}

var transitionEvents = map[license.Transition]string{
	license.Suspend: event.LicenseSuspended, license.Resume: event.LicenseResumed,
	license.Renew: event.LicenseRenewed, license.Cancel: event.LicenseCancelled,
}

// Transition applies a lifecycle change (US2). expiresAt is required for Renew. A
// transition to the state the license is already in is a no-op that writes no event.
func (s *Service) Transition(ctx context.Context, m Meta, p Principal, id string, t license.Transition, expiresAt *time.Time) (resource.License, error) {
	if _, ok := transitionEvents[t]; !ok {
		return resource.License{}, fmt.Errorf("transition: unknown transition %q", t)
	}
	if t == license.Renew {
		if expiresAt == nil {
			return resource.License{}, problem.Unacceptable("expires_at", "is required")
		}
		if !expiresAt.After(s.Now()) {
			return resource.License{}, problem.Unacceptable("expires_at", "must be in the future")
		}
	}
	if !validID(id) {
		return resource.License{}, problem.New(problem.NotFound, "license not found")
	}
	return idempotent(s, ctx, m, p, func(tx Tx) (resource.License, error) {
		k, l, err := tx.LockLicense(ctx, p.BrandID, id)
		if err != nil {
			return resource.License{}, notFound(err, problem.NotFound, "license not found")
		}
		before := s.licenseResource(l)
		eff := license.EffectiveStatus(l.Status, l.ExpiresAt, s.Now())
		next, ok := license.Next(t, l.Status, eff)
		if !ok {
			return resource.License{}, problem.New(problem.InvalidTransition, "cannot %s a license that is %s", t, eff)
		}
		changed := next != l.Status
		l.Status = next
		if t == license.Renew && (l.ExpiresAt == nil || !l.ExpiresAt.Equal(*expiresAt)) {
			e := expiresAt.UTC()
			l.ExpiresAt = &e
			changed = true
		}
		if !changed {
			return before, nil
		}
		l.UpdatedAt = s.Now()
		// no status ever leaves "cancelled", so this cannot collide with the one-live-
		// license-per-product index
		tx.QueueLicenseUpdate(l)
		after := s.licenseResource(l)
		err = s.record(tx, &k, event.Change{Type: transitionEvents[t], License: licenseEvent(l)},
			&AuditRow{LicenseID: l.ID, Action: "license." + string(t), Actor: m.Actor, Request: m.RequestID,
				At: l.UpdatedAt, Before: before, After: after})
		return after, err
	})
}

// ListByEmail lists the brand's licenses of a customer (US6).
func (s *Service) ListByEmail(ctx context.Context, p Principal, email string, page Page) (resource.List[resource.License], error) {
	email, err := license.NormalizeEmail(email)
	if err != nil {
		return resource.List[resource.License]{}, problem.Invalid("customer_email", "%v", err)
	}
	var out resource.List[resource.License]
	list := "licenses:" + p.BrandID + ":" + email
	c, after, err := s.openCursor(ctx, list, page.Cursor)
	if err != nil {
		return out, err
	}
	err = s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		rows, err := tx.LicensesByEmail(ctx, p.BrandID, email, after, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(c, list, rows, page.Limit, s.licenseResource, func(r LicenseRow) string { return r.ID })
		return nil
	})
	return out, err
}

// CustomerLicenses lists a customer's licenses across all brands (US6), a keyset page at a
// time. Only the operator and keys holding customers:read-all may call it; entries of other
// brands are reduced to brand, product, status, expiry and a masked key.
func (s *Service) CustomerLicenses(ctx context.Context, p Principal, email string, page Page) (resource.List[resource.CustomerLicense], error) {
	var out resource.List[resource.CustomerLicense]
	if !p.Has(ScopeCustomersReadAll) {
		return out, problem.New(problem.InsufficientScope, "this call needs scope %s", ScopeCustomersReadAll)
	}
	email, err := license.NormalizeEmail(email)
	if err != nil {
		return out, problem.Invalid("email", "%v", err)
	}
	caller := "operator"
	if !p.Operator {
		caller = p.BrandID
	}
	list := "customer:" + caller + ":" + email
	c, after, err := s.openCursor(ctx, list, page.Cursor)
	if err != nil {
		return out, err
	}
	err = s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		rows, err := tx.CustomerLicenses(ctx, email, after, page.Limit+1)
		if err != nil {
			return err
		}
		visible := func(r LicenseRow) bool { return p.Operator || r.BrandID == p.BrandID }
		// activations are read per brand, under that brand's id, for visible entries only
		byBrand := map[string][]string{}
		for i, r := range rows {
			if i < page.Limit && visible(r) {
				byBrand[r.BrandID] = append(byBrand[r.BrandID], r.ID)
			}
		}
		acts, more := map[string][]resource.Activation{}, map[string]bool{}
		for b, ids := range byBrand {
			a, m, err := embedded(ctx, tx, b, ids)
			if err != nil {
				return err
			}
			for id, as := range a {
				acts[id], more[id] = as, m[id]
			}
		}
		out = pageOf(c, list, rows, page.Limit, func(r LicenseRow) resource.CustomerLicense {
			c := resource.CustomerLicense{Brand: r.BrandSlug, Product: r.ProductCode,
				Status: license.EffectiveStatus(r.Status, r.ExpiresAt, s.Now()), ExpiresAt: utcPtr(r.ExpiresAt)}
			if !visible(r) {
				c.LicenseKey, c.Masked = license.MaskKey(r.Key), true
				return c
			}
			used := r.SeatsUsed
			c.ID, c.LicenseKey, c.SeatLimit, c.SeatsUsed = r.ID, r.Key, r.SeatLimit, &used
			c.Activations, c.ActivationsTruncated = embed(acts[r.ID], more[r.ID])
			return c
		}, func(r LicenseRow) string { return r.ID })
		return nil
	})
	return out, err
}
