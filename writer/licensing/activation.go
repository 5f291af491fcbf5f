package licensing

import (
	"context"
	"time"

	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// Activation outcome codes reported to Observe (metrics).
const (
	ResultActivated = "activated"
	ResultExisting  = "already_active"
)

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// SeatStrategy selects how Activate guards the seat limit. Both are correct under any
// concurrency (the license key row is locked first in both, for its version counter);
// they differ in round trips. See README "Seat activation" for the measurement.
type SeatStrategy int

const (
	// SeatLock locks the license row (SELECT ... FOR UPDATE), checks, inserts the
	// activation and writes the new count.
	SeatLock SeatStrategy = iota
	// SeatConditional increments seats_used with a conditional UPDATE
	// (WHERE seat_limit IS NULL OR seats_used < seat_limit) and inserts the activation.
	SeatConditional
)

// ActivateResult is the answer to an activation; Created is false when the instance
// already held a seat (a reinstall never costs a seat).
type ActivateResult struct {
	resource.ActivationResult
	Created bool
}

// pickLicense chooses the license of product on the key: the live (non-cancelled) one if
// any, else the most recent cancelled one.
func pickLicense(ls []LicenseRow, product string) (LicenseRow, bool) {
	var found LicenseRow
	ok := false
	for _, l := range ls {
		if l.ProductCode != product {
			continue
		}
		if !ok || (found.Status == license.StatusCancelled && l.Status != license.StatusCancelled) {
			found, ok = l, true
		}
	}
	return found, ok
}

// Activate takes a seat of the key's license for product on instance (US3). The key row is
// locked, then the license row, so concurrent activations on one license serialize and the
// seat check cannot be overrun; the schema's CHECK (seats_used <= seat_limit) is the last
// wall.
func (s *Service) Activate(ctx context.Context, m Meta, brandSlug, key, product, instance string) (res ActivateResult, err error) {
	defer func() { s.observe(err, res.Created) }()
	inst, err := license.NormalizeInstance(instance)
	if err != nil {
		return res, problem.Unprocessable("instance", "%v", err)
	}
	if product == "" {
		return res, problem.Unprocessable("product", "is required")
	}
	key = license.NormalizeKey(key)
	b, err := s.brand(ctx, brandSlug)
	if err != nil {
		return res, err
	}
	notFoundErr := problem.New(problem.LicenseNotFound, "license not found")
	if !license.ValidKey(key) {
		return res, notFoundErr
	}
	err = s.store.Tx(ctx, BrandScope(b.ID), func(tx Tx) error {
		k, ls, err := tx.LockKeyAndLicenses(ctx, b.ID, key)
		if err != nil {
			return notFound(err, problem.LicenseNotFound, "license not found")
		}
		l, ok := pickLicense(ls, product)
		if !ok {
			return notFoundErr
		}
		var a ActivationRow
		var active bool
		if s.SeatStrategy == SeatConditional {
			a, err = tx.ActivationByInstance(ctx, b.ID, l.ID, inst)
			active = err == nil
			if err != nil && !problem.Is(err, problem.NotFound) {
				return err
			}
		} else if l, a, active, err = tx.LockLicenseAndActivation(ctx, b.ID, l.ID, inst); err != nil {
			return err
		}
		switch license.EffectiveStatus(l.Status, l.ExpiresAt, s.Now()) {
		case license.StatusSuspended:
			return problem.New(problem.LicenseSuspended, "the license is suspended")
		case license.StatusCancelled:
			return problem.New(problem.LicenseCancelled, "the license is cancelled")
		case license.StatusExpired:
			return problem.New(problem.LicenseExpired, "the license expired at %s", l.ExpiresAt.UTC().Format(time.RFC3339))
		}
		if active {
			res.ActivationResult = resource.ActivationResult{Activation: activationResource(a), License: s.licenseResource(l)}
			return nil
		}
		seatsFull := problem.New(problem.SeatLimitReached, "all %d seats of this license are in use", deref(l.SeatLimit))
		if l.SeatLimit != nil && l.SeatsUsed >= *l.SeatLimit {
			return seatsFull
		}
		before := s.licenseResource(l)
		a = ActivationRow{ID: newID(), BrandID: b.ID, LicenseID: l.ID, Instance: inst, ActivatedAt: s.Now()}
		if s.SeatStrategy == SeatConditional {
			// the seat check is the UPDATE's own WHERE clause
			var ok bool
			if l, ok, err = tx.TakeSeat(ctx, b.ID, l.ID, a.ActivatedAt); err != nil {
				return err
			} else if !ok {
				return seatsFull
			}
			if err := tx.InsertActivation(ctx, a); err != nil {
				return err
			}
		} else {
			if err := tx.InsertActivation(ctx, a); err != nil {
				return err
			}
			l.SeatsUsed++
			l.UpdatedAt = a.ActivatedAt
			if err := tx.UpdateLicense(ctx, l); err != nil {
				return err
			}
		}
		after := s.licenseResource(l)
		res.ActivationResult = resource.ActivationResult{Activation: activationResource(a), License: after}
		res.Created = true
		return s.record(ctx, tx, m, &k, event.LicenseActivated, "license.activated", &l, before,
			map[string]any{"license": after, "activation": res.Activation})
	})
	return res, err
}

func (s *Service) observe(err error, created bool) {
	if s.Observe == nil {
		return
	}
	switch {
	case err != nil:
		s.Observe(string(problem.KindOf(err)))
	case created:
		s.Observe(ResultActivated)
	default:
		s.Observe(ResultExisting)
	}
}

// Deactivate frees the seat instance holds on the key's license for product (US5).
func (s *Service) Deactivate(ctx context.Context, m Meta, brandSlug, key, product, instance string) (resource.DeactivationResult, error) {
	inst, err := license.NormalizeInstance(instance)
	if err != nil {
		return resource.DeactivationResult{}, problem.Unprocessable("instance", "%v", err)
	}
	if product == "" {
		return resource.DeactivationResult{}, problem.Unprocessable("product", "is required")
	}
	key = license.NormalizeKey(key)
	b, err := s.brand(ctx, brandSlug)
	if err != nil {
		if problem.Is(err, problem.LicenseNotFound) {
			return resource.DeactivationResult{}, problem.New(problem.ActivationNotFound, "no activation of this instance for this license")
		}
		return resource.DeactivationResult{}, err
	}
	notFoundErr := problem.New(problem.ActivationNotFound, "no activation of this instance for this license")
	if !license.ValidKey(key) {
		return resource.DeactivationResult{}, notFoundErr
	}
	var out resource.DeactivationResult
	err = s.store.Tx(ctx, BrandScope(b.ID), func(tx Tx) error {
		k, ls, err := tx.LockKeyAndLicenses(ctx, b.ID, key)
		if err != nil {
			return notFound(err, problem.ActivationNotFound, "no activation of this instance for this license")
		}
		// the instance may hold a seat on a live or on a cancelled license of the product
		for _, cand := range ls {
			if cand.ProductCode != product {
				continue
			}
			l, a, found, err := tx.LockLicenseAndActivation(ctx, b.ID, cand.ID, inst)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			out.License, err = s.freeSeat(ctx, tx, m, &k, l, a)
			return err
		}
		return notFoundErr
	})
	return out, err
}

func (s *Service) freeSeat(ctx context.Context, tx Tx, m Meta, k *KeyRow, l LicenseRow, a ActivationRow) (resource.License, error) {
	before := s.licenseResource(l)
	if err := tx.DeleteActivation(ctx, l.BrandID, l.ID, a.ID); err != nil {
		return resource.License{}, err
	}
	l.SeatsUsed--
	l.UpdatedAt = s.Now()
	if err := tx.UpdateLicense(ctx, l); err != nil {
		return resource.License{}, err
	}
	after := s.licenseResource(l)
	return after, s.record(ctx, tx, m, k, event.LicenseDeactivated, "license.deactivated", &l, before,
		map[string]any{"license": after, "activation": activationResource(a)})
}

// RemoveActivation frees a seat by activation id (support desk, US5).
func (s *Service) RemoveActivation(ctx context.Context, m Meta, p Principal, licenseID, activationID string) error {
	if !validID(activationID) {
		return problem.New(problem.ActivationNotFound, "activation not found")
	}
	_, err := idempotent(s, ctx, m, p, func(tx Tx) (struct{}, error) {
		k, l, err := s.lockLicense(ctx, tx, p.BrandID, licenseID)
		if err != nil {
			return struct{}{}, err
		}
		a, err := tx.ActivationByID(ctx, p.BrandID, l.ID, activationID)
		if err != nil {
			return struct{}{}, notFound(err, problem.ActivationNotFound, "activation not found")
		}
		_, err = s.freeSeat(ctx, tx, m, &k, l, a)
		return struct{}{}, err
	})
	return err
}

// Snapshot reads the cacheable state of a license key of a brand (status checks).
func (s *Service) Snapshot(ctx context.Context, brandSlug, key string) (license.Snapshot, error) {
	key = license.NormalizeKey(key)
	b, err := s.brand(ctx, brandSlug)
	if err != nil {
		return license.Snapshot{}, err
	}
	if !license.ValidKey(key) {
		return license.Snapshot{}, problem.New(problem.LicenseNotFound, "license not found")
	}
	var out license.Snapshot
	err = s.store.ReadTx(ctx, BrandScope(b.ID), func(tx Tx) error {
		k, err := tx.KeyByString(ctx, b.ID, key)
		if err != nil {
			return notFound(err, problem.LicenseNotFound, "license not found")
		}
		ls, err := tx.LicensesOfKeys(ctx, b.ID, []string{k.ID})
		if err != nil {
			return err
		}
		ids := make([]string, len(ls))
		for i, l := range ls {
			ids[i] = l.ID
		}
		acts, err := tx.Activations(ctx, b.ID, ids)
		if err != nil {
			return err
		}
		inst := map[string][]string{}
		for _, a := range acts {
			inst[a.LicenseID] = append(inst[a.LicenseID], a.Instance)
		}
		out = license.Snapshot{BrandID: b.ID, Brand: b.Slug, KeyID: k.ID, Key: k.Key, Version: k.Version}
		for _, l := range ls {
			out.Licenses = append(out.Licenses, license.SnapshotLicense{Product: l.ProductCode, Status: l.Status,
				ExpiresAt: utcPtr(l.ExpiresAt), SeatLimit: l.SeatLimit, SeatsUsed: l.SeatsUsed, Instances: inst[l.ID]})
		}
		return nil
	})
	return out, err
}

// Status answers a status check (US4) from the primary.
func (s *Service) Status(ctx context.Context, brandSlug, key, product, instance string) (resource.Status, error) {
	if instance != "" {
		n, err := license.NormalizeInstance(instance)
		if err != nil {
			return resource.Status{}, problem.Invalid("instance", "%v", err)
		}
		instance = n
	}
	snap, err := s.Snapshot(ctx, brandSlug, key)
	if err != nil {
		return resource.Status{}, err
	}
	return snap.Evaluate(product, instance, s.Now()), nil
}
