package licensing

import (
	"context"
	"fmt"
	"time"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// SeatStatements are the seat changes, each one statement that holds the key row's lock
// for its own time only (writer/postgres: the license_activate and license_deactivate
// functions of migrations/). The seat rules live there; writer/memstore implements the
// same rules and writer/storetest's conformance table runs both, so they cannot drift.
// An error is returned only when the statement could not run; rule outcomes are in the
// result.
type SeatStatements interface {
	// Activate applies the activation rules (see SeatOutcome) and, when a seat is taken,
	// writes the activation, the seat count, the key's version, the audit event and the
	// outbox event.
	Activate(ctx context.Context, c ActivateCmd) (SeatResult, error)
	// Deactivate frees a seat: by key, product and instance (public), or by license and
	// activation id (support desk), writing the same records.
	Deactivate(ctx context.Context, c DeactivateCmd) (SeatResult, error)
}

// ActivateCmd asks for a seat of the key's license for Product on Instance (normalized).
// ActivationID and AuditID are the ids the new rows get. DevBuiltin and DevHost are the
// instance as sent classified by license.ClassifyInstance: a new activation is a
// development instance when the product allows them (dev_instances) and DevBuiltin is
// set or DevHost lies under one of the product's dev_instance_suffixes.
type ActivateCmd struct {
	BrandID, Brand         string
	Key, Product, Instance string
	DevBuiltin             bool
	DevHost                string
	ActivationID, AuditID  string
	Now                    time.Time
	Actor, RequestID       string
}

// DeactivateCmd frees a seat, either by (Key, Product, Instance) or, when LicenseID is
// set, by (LicenseID, ActivationID).
type DeactivateCmd struct {
	BrandID, Brand          string
	Key, Product, Instance  string
	LicenseID, ActivationID string
	AuditID                 string
	Now                     time.Time
	Actor, RequestID        string
}

// SeatOutcome is what a seat statement did.
type SeatOutcome string

// The outcomes, in the order the activation rules are applied.
const (
	// SeatLicenseNotFound: unknown key, or the product is not licensed on it (by id:
	// no such license).
	SeatLicenseNotFound SeatOutcome = "license_not_found"
	// SeatSuspended, SeatCancelled, SeatExpired: the product's license (the live one,
	// else the newest cancelled one) is not valid at Now.
	SeatSuspended SeatOutcome = "license_suspended"
	SeatCancelled SeatOutcome = "license_cancelled"
	SeatExpired   SeatOutcome = "license_expired"
	// SeatExisting: the instance already holds a seat (nothing written).
	SeatExisting SeatOutcome = "existing"
	// SeatLimitReached: every seat is taken.
	SeatLimitReached SeatOutcome = "seat_limit_reached"
	// SeatDevLimitReached: a new development instance, and the license has
	// MaxDevInstances of them.
	SeatDevLimitReached SeatOutcome = "dev_instance_limit_reached"
	// SeatActivated: a seat was taken.
	SeatActivated SeatOutcome = "activated"
	// SeatActivationNotFound: nothing to deactivate.
	SeatActivationNotFound SeatOutcome = "activation_not_found"
	// SeatDeactivated: a seat was freed.
	SeatDeactivated SeatOutcome = "deactivated"
)

// MaxDevInstances is how many development instances one license may have (API.md; the
// schema holds licenses.dev_instances_used to it).
const MaxDevInstances = 20

// SeatResult is a seat statement's outcome with the rows it read or wrote: the license
// (with its key and product) after the statement, and the activation taken, found or
// freed. Rows are zero when the outcome has none.
type SeatResult struct {
	Outcome    SeatOutcome
	Version    int64 // the key's version after the statement
	License    LicenseRow
	Activation ActivationRow
}

// Activation outcome codes reported to Observe (metrics), besides the problem kinds.
const (
	ResultActivated = "activated"
	ResultExisting  = "already_active"
)

// ActivateResult is the answer to an activation; Created is false when the instance
// already held a seat (a reinstall never costs a seat).
type ActivateResult struct {
	resource.ActivationResult
	Created bool
}

// Activate takes a seat of the key's license for product on instance (US3), in one
// statement of the store.
func (s *Service) Activate(ctx context.Context, m Meta, brandSlug, key, product, instance string) (res ActivateResult, err error) {
	defer func() { s.observe(err, res.Created) }()
	inst, err := license.NormalizeInstance(instance)
	if err != nil {
		return res, problem.Unacceptable("instance", "%v", err)
	}
	if product == "" {
		return res, problem.Unacceptable("product", "is required")
	}
	notFoundErr := problem.New(problem.LicenseNotFound, "license not found")
	key = license.NormalizeKey(key)
	b, err := s.brand(ctx, brandSlug)
	if err != nil {
		return res, notFound(err, problem.LicenseNotFound, "license not found")
	}
	if !license.ValidKey(key) {
		return res, notFoundErr
	}
	devHost, devBuiltin := license.ClassifyInstance(instance)
	r, err := s.store.Activate(ctx, ActivateCmd{BrandID: b.ID, Brand: b.Slug, Key: key, Product: product, Instance: inst,
		DevBuiltin: devBuiltin, DevHost: devHost, ActivationID: newID(), AuditID: newID(), Now: s.Now(), Actor: m.Actor, RequestID: m.RequestID})
	if err != nil {
		return res, err
	}
	switch r.Outcome {
	case SeatActivated, SeatExisting:
		res.ActivationResult = resource.ActivationResult{Activation: activationResource(r.Activation), License: s.licenseResource(r.License)}
		res.Created = r.Outcome == SeatActivated
		return res, nil
	case SeatLimitReached:
		lim := 0
		if r.License.SeatLimit != nil {
			lim = *r.License.SeatLimit
		}
		return res, problem.New(problem.SeatLimitReached, "all %d seats of this license are in use", lim)
	case SeatDevLimitReached:
		return res, problem.New(problem.DevInstanceLimitReached,
			"this license already has %d development instances; deactivate one first", MaxDevInstances)
	}
	return res, s.seatProblem(r)
}

// seatProblem is the error of a refused seat statement.
func (s *Service) seatProblem(r SeatResult) error {
	switch r.Outcome {
	case SeatLicenseNotFound:
		return problem.New(problem.LicenseNotFound, "license not found")
	case SeatActivationNotFound:
		return problem.New(problem.ActivationNotFound, "no activation of this instance for this license")
	case SeatSuspended:
		return problem.New(problem.LicenseSuspended, "the license is suspended")
	case SeatCancelled:
		return problem.New(problem.LicenseCancelled, "the license is cancelled")
	case SeatExpired:
		exp := ""
		if r.License.ExpiresAt != nil {
			exp = " at " + r.License.ExpiresAt.UTC().Format(time.RFC3339)
		}
		return problem.New(problem.LicenseExpired, "the license expired%s", exp)
	}
	return fmt.Errorf("seat statement: unexpected outcome %q", r.Outcome)
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
		return resource.DeactivationResult{}, problem.Unacceptable("instance", "%v", err)
	}
	if product == "" {
		return resource.DeactivationResult{}, problem.Unacceptable("product", "is required")
	}
	notFoundErr := problem.New(problem.ActivationNotFound, "no activation of this instance for this license")
	key = license.NormalizeKey(key)
	b, err := s.brand(ctx, brandSlug)
	if err != nil {
		return resource.DeactivationResult{}, notFound(err, problem.ActivationNotFound, "no activation of this instance for this license")
	}
	if !license.ValidKey(key) {
		return resource.DeactivationResult{}, notFoundErr
	}
	r, err := s.store.Deactivate(ctx, DeactivateCmd{BrandID: b.ID, Brand: b.Slug, Key: key, Product: product, Instance: inst,
		AuditID: newID(), Now: s.Now(), Actor: m.Actor, RequestID: m.RequestID})
	if err != nil {
		return resource.DeactivationResult{}, err
	}
	if r.Outcome != SeatDeactivated {
		return resource.DeactivationResult{}, notFoundErr
	}
	return resource.DeactivationResult{License: s.licenseResource(r.License)}, nil
}

// RemoveActivation frees a seat by activation id (support desk, US5).
func (s *Service) RemoveActivation(ctx context.Context, m Meta, p Principal, licenseID, activationID string) error {
	if !validID(licenseID) {
		return problem.New(problem.NotFound, "license not found")
	}
	if !validID(activationID) {
		return problem.New(problem.ActivationNotFound, "activation not found")
	}
	_, err := idempotent(s, ctx, m, p, func(tx Tx) (struct{}, error) {
		r, err := tx.Deactivate(ctx, DeactivateCmd{BrandID: p.BrandID, Brand: p.BrandSlug, LicenseID: licenseID,
			ActivationID: activationID, AuditID: newID(), Now: s.Now(), Actor: m.Actor, RequestID: m.RequestID})
		switch {
		case err != nil:
			return struct{}{}, err
		case r.Outcome == SeatLicenseNotFound:
			return struct{}{}, problem.New(problem.NotFound, "license not found")
		case r.Outcome == SeatActivationNotFound:
			return struct{}{}, problem.New(problem.ActivationNotFound, "activation not found")
		}
		return struct{}{}, nil
	})
	return err
}
