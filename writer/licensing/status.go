package licensing

import (
	"context"

	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// StatusTx is what a status check reads: the key's state and one instance's activations,
// each a point look-up whose cost does not depend on how many activations a license holds.
// Both read the transaction's snapshot, so they agree on the key version.
type StatusTx interface {
	// KeyState reads the state of brand's (slug) key: its licenses and seat counts, no
	// activations; not_found for an unknown key.
	KeyState(ctx context.Context, brand, key string) (license.State, error)
	// InstanceState reads on which licenses of the key the (normalized) instance holds an
	// activation, as of the key's current version; not_found for an unknown key.
	InstanceState(ctx context.Context, brand, key, instance string) (license.Instance, error)
}

// Status answers a status check (US4) from the primary, as every edge answers it from its
// tiers: the key's state evaluated now, with the asked instance's activations.
func (s *Service) Status(ctx context.Context, brandSlug, key, product, instance string) (resource.Status, error) {
	if instance != "" {
		n, err := license.NormalizeInstance(instance)
		if err != nil {
			return resource.Status{}, problem.Invalid("instance", "%v", err)
		}
		instance = n
	}
	notFoundErr := problem.New(problem.LicenseNotFound, "license not found")
	key = license.NormalizeKey(key)
	b, err := s.brand(ctx, brandSlug)
	if err != nil {
		return resource.Status{}, notFound(err, problem.LicenseNotFound, "license not found")
	}
	if !license.ValidKey(key) {
		return resource.Status{}, notFoundErr
	}
	var st license.State
	var inst *license.Instance
	err = s.store.ReadTx(ctx, BrandScope(b.ID), func(tx Tx) error {
		var err error
		if st, err = tx.KeyState(ctx, b.Slug, key); err != nil {
			return notFound(err, problem.LicenseNotFound, "license not found")
		}
		if instance == "" {
			return nil
		}
		in, err := tx.InstanceState(ctx, b.Slug, key, instance)
		inst = &in
		return err
	})
	if err != nil {
		return resource.Status{}, err
	}
	return st.Evaluate(product, inst, s.Now()), nil
}
