package license

import (
	"time"

	"github.com/licensing/licensing/shared/resource"
)

// State is what a status check needs to know about one license key at one version: its
// licenses with their stored status, expiry and seat counts. It holds no activations, so
// its size does not grow with how many sites a license is activated on; the instance
// question is answered by an Instance, looked up on its own. The writer's read path and
// every edge cache tier store and serve States; the status itself is computed at serve
// time (Evaluate), so expiry is never frozen into a cache.
type State struct {
	BrandID  string         `json:"brand_id"`
	Brand    string         `json:"brand"`
	KeyID    string         `json:"key_id"`
	Key      string         `json:"key"`
	Version  int64          `json:"version"`
	Licenses []LicenseState `json:"licenses"`
}

// LicenseState is one license of a State.
type LicenseState struct {
	ID        string     `json:"id"`
	Product   string     `json:"product"`
	Status    string     `json:"status"` // stored status
	ExpiresAt *time.Time `json:"expires_at"`
	SeatLimit *int       `json:"seat_limit"`
	SeatsUsed int        `json:"seats_used"`
}

// Instance says on which licenses of a key one instance holds an activation. It is read at
// one key version (AsOf) and stays true until a change names this instance: change events
// of activations carry the instance, so an edge knows per instance the newest version that
// touched it and treats an entry read before that version as a miss. Changed is the key
// version at which the instance last gained an activation on the key (0 when it holds
// none); every key version from Changed to AsOf has the same answer for this instance.
type Instance struct {
	Instance    string               `json:"instance"`
	AsOf        int64                `json:"as_of"`
	Changed     int64                `json:"changed"`
	Activations []InstanceActivation `json:"activations"`
}

// InstanceActivation is one activation of an instance: the license it holds a seat of.
type InstanceActivation struct {
	LicenseID string `json:"license_id"`
	// Development: a development instance's activation, which holds no seat.
	Development bool `json:"development,omitempty"`
}

// On reports whether the instance holds an activation of license id.
func (in *Instance) On(licenseID string) bool {
	return in.activation(licenseID) != nil
}

func (in *Instance) activation(licenseID string) *InstanceActivation {
	if in == nil {
		return nil
	}
	for i := range in.Activations {
		if in.Activations[i].LicenseID == licenseID {
			return &in.Activations[i]
		}
	}
	return nil
}

// Evaluate answers a status check against the state at now. product is optional ("" when
// not asked); inst is the asked instance's entry (nil when no instance was asked) and its
// Instance field must be the normalized instance.
func (s *State) Evaluate(product string, inst *Instance, now time.Time) resource.Status {
	out := resource.Status{
		LicenseKey: s.Key,
		Brand:      s.Brand,
		Licenses:   make([]resource.StatusLicense, 0, len(s.Licenses)),
		CheckedAt:  now.UTC(),
	}
	var asked *LicenseState
	anyValid, anyValidActivated, anyActivated := false, false, false
	var validAct, anyAct *InstanceActivation // the first activation on a valid license, on any
	best := ""
	for i := range s.Licenses {
		l := &s.Licenses[i]
		st := EffectiveStatus(l.Status, l.ExpiresAt, now)
		valid := st == StatusValid
		act := inst.activation(l.ID)
		on := act != nil
		if on && anyAct == nil {
			anyAct = act
		}
		anyActivated = anyActivated || on
		if product != "" && l.Product != product {
			continue
		}
		sl := resource.StatusLicense{
			Product: l.Product, Status: st, Valid: valid,
			ExpiresAt: l.ExpiresAt, SeatLimit: l.SeatLimit, SeatsUsed: l.SeatsUsed,
		}
		if l.SeatLimit != nil {
			r := max(*l.SeatLimit-l.SeatsUsed, 0)
			sl.SeatsRemaining = &r
		}
		out.Licenses = append(out.Licenses, sl)
		if product != "" && (asked == nil || rank(st) < rank(EffectiveStatus(asked.Status, asked.ExpiresAt, now))) {
			asked = l
		}
		if valid {
			anyValid = true
			anyValidActivated = anyValidActivated || on
			if on && validAct == nil {
				validAct = act
			}
		}
		if best == "" || rank(st) < rank(best) {
			best = st
		}
	}
	switch {
	case product == "":
		out.Valid = anyValid
		out.Code = best
		if best == "" {
			out.Code = CodeProductNotLicensed
		}
	case asked == nil:
		out.Code = CodeProductNotLicensed
	default:
		st := EffectiveStatus(asked.Status, asked.ExpiresAt, now)
		out.Code = st
		out.Valid = st == StatusValid
	}
	if inst != nil {
		// The instance counts only where it holds a seat of the license that answers:
		// the asked product's license, or (without product) a valid license. A seat left
		// on a cancelled license never makes a site look licensed.
		// The development flag is the answering activation's.
		var act *InstanceActivation
		if product != "" {
			if asked != nil {
				act = inst.activation(asked.ID)
			}
		} else if act = validAct; act == nil {
			act = anyAct
		}
		activated := act != nil
		out.Instance = &resource.StatusInstance{ID: inst.Instance, Activated: activated, Development: activated && act.Development}
		if out.Valid && !(activated && (product != "" || anyValidActivated)) {
			out.Valid = false
			out.Code = CodeInstanceNotActivated
		}
	}
	return out
}

// rank orders statuses from most to least favourable, so a key with one valid and one
// cancelled license for the same product (the old one cancelled) answers valid.
func rank(st string) int {
	switch st {
	case StatusValid:
		return 0
	case StatusExpired:
		return 1
	case StatusSuspended:
		return 2
	case StatusCancelled:
		return 3
	}
	return 4
}

// Changed is one committed change under a key, as change events carry it: the key's new
// version and the state of the license it changed (or, for a new key, of all its
// licenses).
type Changed struct {
	Version  int64
	Licenses []LicenseState
	NewKey   bool
}

// Next returns the state after change c when s is the state just before it (version
// c.Version-1), so a cache can move to the new version without reading it again; ok is
// false otherwise (the caller must read the state anew).
func (s *State) Next(c Changed) (State, bool) {
	if c.NewKey || c.Version != s.Version+1 || len(c.Licenses) != 1 {
		return State{}, false
	}
	n := *s
	n.Version = c.Version
	n.Licenses = make([]LicenseState, 0, len(s.Licenses)+1)
	replaced := false
	for _, l := range s.Licenses {
		if l.ID == c.Licenses[0].ID {
			l, replaced = c.Licenses[0], true
		}
		n.Licenses = append(n.Licenses, l)
	}
	if !replaced {
		// a license added to the key: states list licenses by id, and ids are
		// time-ordered, so a new one goes last
		n.Licenses = append(n.Licenses, c.Licenses[0])
	}
	return n, true
}
