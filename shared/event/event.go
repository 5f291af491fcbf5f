// Package event defines the change events the writer publishes through its outbox to NATS
// JetStream, and the stream and subject names both binaries agree on.
package event

import (
	"fmt"
	"time"
)

// Stream is the JetStream stream holding every change event.
const Stream = "LICENSE_EVENTS"

// SubjectPrefix prefixes every event subject: license.events.<brand_id>.<key_id>.
const SubjectPrefix = "license.events"

// Subject is the subject of a change to the license key keyID of brand brandID. One
// subject per key keeps per-key order within the stream.
func Subject(brandID, keyID string) string {
	return fmt.Sprintf("%s.%s.%s", SubjectPrefix, brandID, keyID)
}

// SubjectAll matches every event.
const SubjectAll = SubjectPrefix + ".>"

// Types of change.
const (
	KeyCreated         = "license_key.created"
	LicenseCreated     = "license.created"
	LicenseRenewed     = "license.renewed"
	LicenseSuspended   = "license.suspended"
	LicenseResumed     = "license.resumed"
	LicenseCancelled   = "license.cancelled"
	LicenseActivated   = "license.activated"
	LicenseDeactivated = "license.deactivated"
)

// Change is the envelope of one committed change under a license key. ID is the outbox
// row id and the JetStream message id (deduplication); Version is the license key's
// version after the change, so consumers can drop anything older than what they know.
type Change struct {
	ID         int64     `json:"id"`
	Type       string    `json:"type"`
	BrandID    string    `json:"brand_id"`
	Brand      string    `json:"brand"`
	KeyID      string    `json:"key_id"`
	LicenseKey string    `json:"license_key"`
	Version    int64     `json:"version"`
	LicenseID  string    `json:"license_id,omitempty"`
	Product    string    `json:"product,omitempty"`
	Before     any       `json:"before,omitempty"`
	After      any       `json:"after,omitempty"`
	CommitTime time.Time `json:"commit_time"`
}

// MsgID is the JetStream deduplication id of an outbox row.
func MsgID(outboxID int64) string { return fmt.Sprintf("outbox-%d", outboxID) }
