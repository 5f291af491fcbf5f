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

// LicenseSpec asks for one license on a key.
type LicenseSpec struct {
	Product   string
	ExpiresAt *time.Time
	SeatLimit *int
}

// MaxLicensesPerRequest bounds a provisioning request.
const MaxLicensesPerRequest = 50

func (s *Service) validateSpec(field string, sp LicenseSpec) error {
	if sp.Product == "" {
		return problem.Unprocessable(field+".product", "is required")
	}
	if sp.SeatLimit != nil && (*sp.SeatLimit < 1 || *sp.SeatLimit > 1_000_000) {
		return problem.Unprocessable(field+".seat_limit", "must be null (unlimited) or from 1 to 1000000")
	}
	if sp.ExpiresAt != nil && !sp.ExpiresAt.After(s.Now()) {
		return problem.Unprocessable(field+".expires_at", "must be in the future")
	}
	return nil
}

// Provision creates a license key for a customer with one or more licenses (US1), all or
// nothing: an unknown product creates nothing.
func (s *Service) Provision(ctx context.Context, m Meta, p Principal, email string, specs []LicenseSpec) (resource.LicenseKey, error) {
	email, err := license.NormalizeEmail(email)
	if err != nil {
		return resource.LicenseKey{}, problem.Unprocessable("customer_email", "%v", err)
	}
	if len(specs) < 1 || len(specs) > MaxLicensesPerRequest {
		return resource.LicenseKey{}, problem.Unprocessable("licenses", "must hold 1 to %d licenses", MaxLicensesPerRequest)
	}
	codes := make([]string, 0, len(specs))
	seen := map[string]bool{}
	for i, sp := range specs {
		f := fmt.Sprintf("licenses[%d]", i)
		if err := s.validateSpec(f, sp); err != nil {
			return resource.LicenseKey{}, err
		}
		if seen[sp.Product] {
			return resource.LicenseKey{}, problem.New(problem.ProductAlreadyLicensed, "%s.product: %q appears twice", f, sp.Product)
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
		for _, sp := range specs {
			l := LicenseRow{ID: newID(), BrandID: p.BrandID, KeyID: k.ID, ProductID: products[sp.Product].ID,
				Status: license.StatusValid, ExpiresAt: sp.ExpiresAt, SeatLimit: sp.SeatLimit,
				CreatedAt: now, UpdatedAt: now, Key: k.Key, ProductCode: sp.Product, BrandSlug: p.BrandSlug}
			if err := tx.InsertLicense(ctx, l); err != nil {
				return resource.LicenseKey{}, err
			}
			out.Licenses = append(out.Licenses, s.licenseResource(l))
		}
		// One audit event per license (what GET /v1/licenses/{id}/events shows), one
		// outbox event for the key.
		for i := range out.Licenses {
			if err := tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, KeyID: k.ID, LicenseID: out.Licenses[i].ID,
				Action: "license.created", Actor: m.Actor, Request: m.RequestID, At: now, After: out.Licenses[i]}); err != nil {
				return resource.LicenseKey{}, err
			}
		}
		after := map[string]any{"customer_email": email, "licenses": out.Licenses}
		if err := s.recordNoAudit(ctx, tx, m, &k, event.KeyCreated, after); err != nil {
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
				return resource.License{}, problem.New(problem.ProductAlreadyLicensed, "product %q is already licensed on this key", sp.Product)
			}
		}
		now := s.Now()
		l := LicenseRow{ID: newID(), BrandID: p.BrandID, KeyID: k.ID, ProductID: prod.ID,
			Status: license.StatusValid, ExpiresAt: sp.ExpiresAt, SeatLimit: sp.SeatLimit,
			CreatedAt: now, UpdatedAt: now, Key: k.Key, ProductCode: sp.Product, BrandSlug: p.BrandSlug}
		if err := tx.InsertLicense(ctx, l); err != nil {
			if problem.Is(err, problem.Conflict) {
				return resource.License{}, problem.New(problem.ProductAlreadyLicensed, "product %q is already licensed on this key", sp.Product)
			}
			return resource.License{}, err
		}
		out := s.licenseResource(l)
		if err := s.record(ctx, tx, m, &k, event.LicenseCreated, "license.created", &l, nil, out); err != nil {
			return resource.License{}, err
		}
		return out, nil
	})
}

// GetLicenseKey returns a key with its licenses and their activations.
func (s *Service) GetLicenseKey(ctx context.Context, p Principal, key string) (resource.LicenseKey, error) {
	key = license.NormalizeKey(key)
	var out resource.LicenseKey
	err := s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		k, err := tx.KeyByString(ctx, p.BrandID, key)
		if err != nil {
			return notFound(err, problem.NotFound, "license key not found")
		}
		ls, err := s.withActivations(ctx, tx, p.BrandID, []string{k.ID})
		if err != nil {
			return err
		}
		out = resource.LicenseKey{Key: k.Key, Brand: p.BrandSlug, CustomerEmail: k.CustomerEmail, CreatedAt: k.CreatedAt.UTC(), Licenses: ls}
		return nil
	})
	return out, err
}

func (s *Service) withActivations(ctx context.Context, tx Tx, brandID string, keyIDs []string) ([]resource.License, error) {
	rows, err := tx.LicensesOfKeys(ctx, brandID, keyIDs)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	acts, err := tx.Activations(ctx, brandID, ids)
	if err != nil {
		return nil, err
	}
	byLic := map[string][]resource.Activation{}
	for _, a := range acts {
		byLic[a.LicenseID] = append(byLic[a.LicenseID], activationResource(a))
	}
	out := make([]resource.License, 0, len(rows))
	for _, r := range rows {
		l := s.licenseResource(r)
		as := byLic[r.ID]
		if as == nil {
			as = []resource.Activation{}
		}
		l.Activations = &as
		out = append(out, l)
	}
	return out, nil
}

// GetLicense returns one license with its activations.
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
		acts, err := tx.Activations(ctx, p.BrandID, []string{l.ID})
		if err != nil {
			return err
		}
		out = s.licenseResource(l)
		as := make([]resource.Activation, 0, len(acts))
		for _, a := range acts {
			as = append(as, activationResource(a))
		}
		out.Activations = &as
		return nil
	})
	return out, err
}

// lockLicense locks a license's key, then the license (the documented lock order).
func (s *Service) lockLicense(ctx context.Context, tx Tx, brandID, id string) (KeyRow, LicenseRow, error) {
	if !validID(id) {
		return KeyRow{}, LicenseRow{}, problem.New(problem.NotFound, "license not found")
	}
	l, err := tx.LicenseByID(ctx, brandID, id)
	if err != nil {
		return KeyRow{}, LicenseRow{}, notFound(err, problem.NotFound, "license not found")
	}
	k, err := tx.LockKeyByID(ctx, brandID, l.KeyID)
	if err != nil {
		return KeyRow{}, LicenseRow{}, err
	}
	l, err = tx.LockLicense(ctx, brandID, id)
	if err != nil {
		return KeyRow{}, LicenseRow{}, err
	}
	return k, l, nil
}

// Transition applies a lifecycle change (US2). expiresAt is required for Renew. A
// transition to the state the license is already in is a no-op that writes no event.
func (s *Service) Transition(ctx context.Context, m Meta, p Principal, id string, t license.Transition, expiresAt *time.Time) (resource.License, error) {
	if t == license.Renew {
		if expiresAt == nil {
			return resource.License{}, problem.Unprocessable("expires_at", "is required")
		}
		if !expiresAt.After(s.Now()) {
			return resource.License{}, problem.Unprocessable("expires_at", "must be in the future")
		}
	}
	return idempotent(s, ctx, m, p, func(tx Tx) (resource.License, error) {
		k, l, err := s.lockLicense(ctx, tx, p.BrandID, id)
		if err != nil {
			return resource.License{}, err
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
		if err := tx.UpdateLicense(ctx, l); err != nil {
			if problem.Is(err, problem.Conflict) {
				return resource.License{}, problem.New(problem.InvalidTransition, "another live license for this product exists on the key")
			}
			return resource.License{}, err
		}
		after := s.licenseResource(l)
		typ := map[license.Transition]string{license.Suspend: event.LicenseSuspended, license.Resume: event.LicenseResumed,
			license.Renew: event.LicenseRenewed, license.Cancel: event.LicenseCancelled}[t]
		if err := s.record(ctx, tx, m, &k, typ, "license."+string(t), &l, before, after); err != nil {
			return resource.License{}, err
		}
		return after, nil
	})
}

// ListByEmail lists the brand's licenses of a customer (US6).
func (s *Service) ListByEmail(ctx context.Context, p Principal, email string, page Page) (resource.List[resource.License], error) {
	email, err := license.NormalizeEmail(email)
	if err != nil {
		return resource.List[resource.License]{}, problem.Invalid("customer_email", "%v", err)
	}
	var out resource.List[resource.License]
	err = s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		rows, err := tx.LicensesByEmail(ctx, p.BrandID, email, page.After, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(rows, page.Limit, s.licenseResource, func(r LicenseRow) string { return r.ID })
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
	err = s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		rows, err := tx.CustomerLicenses(ctx, email, page.After, page.Limit+1)
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
		acts := map[string][]resource.Activation{}
		for b, ids := range byBrand {
			as, err := tx.Activations(ctx, b, ids)
			if err != nil {
				return err
			}
			for _, a := range as {
				acts[a.LicenseID] = append(acts[a.LicenseID], activationResource(a))
			}
		}
		out = pageOf(rows, page.Limit, func(r LicenseRow) resource.CustomerLicense {
			c := resource.CustomerLicense{Brand: r.BrandSlug, Product: r.ProductCode,
				Status: license.EffectiveStatus(r.Status, r.ExpiresAt, s.Now()), ExpiresAt: utcPtr(r.ExpiresAt)}
			if !visible(r) {
				c.LicenseKey, c.Masked = license.MaskKey(r.Key), true
				return c
			}
			used := r.SeatsUsed
			c.ID, c.LicenseKey, c.SeatLimit, c.SeatsUsed = r.ID, r.Key, r.SeatLimit, &used
			as := acts[r.ID]
			if as == nil {
				as = []resource.Activation{}
			}
			c.Activations = &as
			return c
		}, func(r LicenseRow) string { return r.ID })
		return nil
	})
	return out, err
}

// Events lists a license's audit events, oldest first.
func (s *Service) Events(ctx context.Context, p Principal, licenseID string, page Page) (resource.List[resource.Event], error) {
	if !validID(licenseID) {
		return resource.List[resource.Event]{}, problem.New(problem.NotFound, "license not found")
	}
	var out resource.List[resource.Event]
	err := s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		if _, err := tx.LicenseByID(ctx, p.BrandID, licenseID); err != nil {
			return notFound(err, problem.NotFound, "license not found")
		}
		rows, err := tx.ListEvents(ctx, p.BrandID, licenseID, page.After, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(rows, page.Limit, func(a AuditRow) resource.Event {
			return resource.Event{ID: a.ID, Action: a.Action, Actor: a.Actor, RequestID: a.Request, At: a.At.UTC(), Before: a.Before, After: a.After}
		}, func(a AuditRow) string { return a.ID })
		return nil
	})
	return out, err
}
