package license

import "time"

// Stored lifecycle states and the derived read-time states.
const (
	StatusValid     = "valid"
	StatusSuspended = "suspended"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
)

// Status codes answered by a status check besides the license states.
const (
	CodeProductNotLicensed   = "product_not_licensed"
	CodeInstanceNotActivated = "instance_not_activated"
)

// EffectiveStatus is the status a reader sees at now: a stored "valid" license whose
// expires_at has passed reads "expired". Every cache tier calls this at serve time.
func EffectiveStatus(stored string, expiresAt *time.Time, now time.Time) string {
	if stored == StatusValid && expiresAt != nil && !now.Before(*expiresAt) {
		return StatusExpired
	}
	return stored
}

// Transition names a lifecycle change.
type Transition string

// The lifecycle transitions of API.md.
const (
	Suspend Transition = "suspend"
	Resume  Transition = "resume"
	Renew   Transition = "renew"
	Cancel  Transition = "cancel"
)

// Next computes the stored status after t is applied to a license whose stored status is
// stored and effective status is effective. ok is false when the transition is not
// allowed; noop is true when nothing would change (a 200 that writes no event).
// Renew's expiry change is decided by the caller; Next only says what happens to status.
func Next(t Transition, stored, effective string) (next string, ok bool) {
	if stored == StatusCancelled {
		if t == Cancel {
			return StatusCancelled, true
		}
		return stored, false
	}
	switch t {
	case Suspend:
		if stored == StatusSuspended {
			return StatusSuspended, true
		}
		return StatusSuspended, effective == StatusValid || effective == StatusExpired
	case Resume:
		if effective == StatusValid {
			return StatusValid, true // already valid: a no-op
		}
		// from suspended only; an expired license needs a renew, not a resume
		return StatusValid, stored == StatusSuspended
	case Renew:
		return stored, true
	case Cancel:
		return StatusCancelled, true
	}
	return stored, false
}
