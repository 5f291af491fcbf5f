package license

import (
	"time"

	"github.com/licensing/licensing/shared/resource"
)

// Snapshot is everything a status check needs to know about one license key, at one
// version. The writer's read path and every edge cache tier store and serve snapshots;
// the status itself is computed from a snapshot at serve time (Evaluate), so expiry is
// never frozen into a cache.
type Snapshot struct {
	BrandID  string            `json:"brand_id"`
	Brand    string            `json:"brand"`
	KeyID    string            `json:"key_id"`
	Key      string            `json:"key"`
	Version  int64             `json:"version"`
	Licenses []SnapshotLicense `json:"licenses"`
}

// SnapshotLicense is one license of a snapshot with its active instances.
type SnapshotLicense struct {
	Product   string     `json:"product"`
	Status    string     `json:"status"` // stored status
	ExpiresAt *time.Time `json:"expires_at"`
	SeatLimit *int       `json:"seat_limit"`
	SeatsUsed int        `json:"seats_used"`
	Instances []string   `json:"instances"`
}

// Evaluate answers a status check against the snapshot at now. product and instance are
// optional ("" when not asked); instance must already be normalized.
func (s *Snapshot) Evaluate(product, instance string, now time.Time) resource.Status {
	out := resource.Status{
		LicenseKey: s.Key,
		Brand:      s.Brand,
		Licenses:   make([]resource.StatusLicense, 0, len(s.Licenses)),
		CheckedAt:  now.UTC(),
	}
	var asked *SnapshotLicense
	anyValid, anyValidActivated := false, false
	best := ""
	for i := range s.Licenses {
		l := &s.Licenses[i]
		st := EffectiveStatus(l.Status, l.ExpiresAt, now)
		valid := st == StatusValid
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
			if instance != "" && l.hasInstance(instance) {
				anyValidActivated = true
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
	if instance != "" {
		// The instance counts only where it holds a seat of the license that answers:
		// the asked product's license, or (without product) a valid license. A seat left
		// on a cancelled license never makes a site look licensed.
		var activated bool
		if product != "" {
			activated = asked != nil && asked.hasInstance(instance)
		} else {
			activated = anyValidActivated
			if !activated {
				for i := range s.Licenses {
					if s.Licenses[i].hasInstance(instance) {
						activated = true
						break
					}
				}
			}
		}
		out.Instance = &resource.StatusInstance{ID: instance, Activated: activated}
		if out.Valid && !(activated && (product != "" || anyValidActivated)) {
			out.Valid = false
			out.Code = CodeInstanceNotActivated
		}
	}
	return out
}

func (l *SnapshotLicense) hasInstance(instance string) bool {
	for _, in := range l.Instances {
		if in == instance {
			return true
		}
	}
	return false
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
