package api

import (
	"time"

	"github.com/licensing/licensing/shared/resource"
)

// maxAge is how long a client may cache a status answer: the configured ceiling, shortened
// so that no cached answer outlives the next expiry of a license it reports as valid.
func maxAge(ceiling time.Duration, ls []resource.StatusLicense, now time.Time) int {
	d := ceiling
	for _, l := range ls {
		if l.Valid && l.ExpiresAt != nil {
			if until := l.ExpiresAt.Sub(now); until < d {
				d = until
			}
		}
	}
	return max(int(d/time.Second), 0)
}
