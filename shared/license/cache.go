package license

import (
	"time"

	"github.com/licensing/licensing/shared/resource"
)

// CacheMaxAge is how many seconds a client may cache a status answer: the ceiling,
// shortened so that no cached answer outlives the expiry of a license it reports valid.
func CacheMaxAge(ceiling time.Duration, st resource.Status, now time.Time) int {
	d := ceiling
	for _, l := range st.Licenses {
		if l.Valid && l.ExpiresAt != nil {
			if until := l.ExpiresAt.Sub(now); until < d {
				d = until
			}
		}
	}
	return max(int(d/time.Second), 0)
}
