// Package event defines the change events the writer publishes through its outbox to NATS
// JetStream, and the stream and subject names both binaries agree on. An event is typed:
// it carries the state its consumers need (edges: the key and version, and the instance an
// activation changed; webhooks: the license or activation as the API shows it), never an
// activation list.
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

// SubjectAll matches every event, heartbeats included.
const SubjectAll = SubjectPrefix + ".>"

// HeartbeatSubject carries the relay's heartbeats, in the same stream as the changes.
const HeartbeatSubject = SubjectPrefix + ".heartbeat"

// RelayHeader names, on every message, the outbox relay that published it (its lease
// holder), so the stream shows which leader stored what.
const RelayHeader = "Licensing-Relay"

// HeartbeatType is the type of a heartbeat message.
const HeartbeatType = "heartbeat"

// Heartbeat certifies that every outbox row committed before CertifiedAt has been
// published before it in the stream: a consumer that applied it has applied them.
type Heartbeat struct {
	Type        string    `json:"type"`
	CertifiedAt time.Time `json:"certified_at"`
	Holder      string    `json:"holder"`
}

// Types of change: exactly the event types of API.md's webhooks.
const (
	KeyCreated        = "license_key.created"
	LicenseCreated    = "license.created"
	LicenseRenewed    = "license.renewed"
	LicenseSuspended  = "license.suspended"
	LicenseResumed    = "license.resumed"
	LicenseCancelled  = "license.cancelled"
	LicenseExpired    = "license.expired"
	ActivationCreated = "activation.created"
	ActivationDeleted = "activation.deleted"
)

// Change is the envelope of one committed change under a license key. ID is the outbox
// row id and the JetStream message id (deduplication); Version is the license key's
// version after the change, so consumers can drop anything older than what they know.
type Change struct {
	ID         int64  `json:"id"`
	Type       string `json:"type"`
	BrandID    string `json:"brand_id"`
	Brand      string `json:"brand"`
	KeyID      string `json:"key_id"`
	LicenseKey string `json:"license_key"`
	Version    int64  `json:"version"`
	// CustomerEmail is set on license_key.created.
	CustomerEmail string `json:"customer_email,omitempty"`
	// License is the changed license after the change (every type but
	// license_key.created, which carries Licenses).
	License *License `json:"license,omitempty"`
	// Licenses are the licenses a license_key.created event created.
	Licenses []License `json:"licenses,omitempty"`
	// Activation is the activation an activation.* event created or deleted; its
	// Instance names the one instance whose answer changed.
	Activation *Activation `json:"activation,omitempty"`
	CommitTime time.Time   `json:"commit_time"`
}

// License is a license's stored state in an event.
type License struct {
	ID        string     `json:"id"`
	Product   string     `json:"product"`
	Status    string     `json:"status"` // stored status; expiry is evaluated by the reader
	ExpiresAt *time.Time `json:"expires_at"`
	SeatLimit *int       `json:"seat_limit"`
	SeatsUsed int        `json:"seats_used"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Activation is an activation in an event. Version is the key version at which it was
// made.
type Activation struct {
	ID          string    `json:"id"`
	LicenseID   string    `json:"license_id"`
	Instance    string    `json:"instance"`
	ActivatedAt time.Time `json:"activated_at"`
	Version     int64     `json:"version"`
	Development bool      `json:"development"`
}

// Instance is the instance whose activation the change created or deleted ("" for other
// changes).
func (c *Change) Instance() string {
	if c.Activation == nil {
		return ""
	}
	return c.Activation.Instance
}

// MsgID is the JetStream deduplication id of an outbox row.
func MsgID(outboxID int64) string { return fmt.Sprintf("outbox-%d", outboxID) }
