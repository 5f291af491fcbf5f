// Package resource defines the JSON representations of the public API (API.md). The writer
// renders them, the edge renders the status answer, tests and the OpenAPI document describe
// exactly these shapes.
package resource

import "time"

// Brand is a tenant.
type Brand struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// RateLimit is the brand's own limit of requests per API key; null: the deployment's
	// default applies (API.md "Rate limits").
	RateLimit *RateLimit `json:"rate_limit"`
}

// RateLimit is a sustained rate with a burst.
type RateLimit struct {
	PerSecond int `json:"per_second"`
	Burst     int `json:"burst"`
}

// APIKey is a brand API key; Secret is present only in the response that created it.
type APIKey struct {
	ID     string   `json:"id"`
	Prefix string   `json:"prefix"`
	Secret string   `json:"secret,omitempty"`
	Scopes []string `json:"scopes"`
}

// BrandCreated is the answer to POST /v1/brands.
type BrandCreated struct {
	Brand  Brand  `json:"brand"`
	APIKey APIKey `json:"api_key"`
}

// Product is something a brand sells.
type Product struct {
	ID   string `json:"id"`
	Code string `json:"code"`
	Name string `json:"name"`
	// DevInstances: development instances of this product take no seat (API.md v1.1);
	// DevInstanceSuffixes are further host suffixes that mark one (normalized).
	DevInstances        bool      `json:"dev_instances"`
	DevInstanceSuffixes []string  `json:"dev_instance_suffixes"`
	CreatedAt           time.Time `json:"created_at"`
}

// Activation is one seat taken by an instance.
type Activation struct {
	ID          string    `json:"id"`
	LicenseID   string    `json:"license_id"`
	Instance    string    `json:"instance"`
	ActivatedAt time.Time `json:"activated_at"`
	// Development: a development instance, which takes no seat (classified at its first
	// activation).
	Development bool `json:"development"`
}

// License entitles a license key to one product.
type License struct {
	ID             string     `json:"id"`
	LicenseKey     string     `json:"license_key"`
	Product        string     `json:"product"`
	Status         string     `json:"status"`
	ExpiresAt      *time.Time `json:"expires_at"`
	SeatLimit      *int       `json:"seat_limit"`
	SeatsUsed      int        `json:"seats_used"`
	SeatsRemaining *int       `json:"seats_remaining"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	// Activations is present (possibly empty) only where the endpoint includes them: at
	// most the 100 most recent, oldest first, with ActivationsTruncated saying whether
	// there are more (GET /v1/licenses/{id}/activations lists them all).
	Activations          *[]Activation `json:"activations,omitempty"`
	ActivationsTruncated *bool         `json:"activations_truncated,omitempty"`
}

// LicenseKey is what a customer pastes into a plugin, with the licenses it unlocks.
type LicenseKey struct {
	Key           string    `json:"key"`
	Brand         string    `json:"brand"`
	CustomerEmail string    `json:"customer_email"`
	CreatedAt     time.Time `json:"created_at"`
	Licenses      []License `json:"licenses"`
}

// ActivationResult answers an activation.
type ActivationResult struct {
	Activation Activation `json:"activation"`
	License    License    `json:"license"`
}

// DeactivationResult answers a deactivation.
type DeactivationResult struct {
	License License `json:"license"`
}

// CustomerLicense is one entry of the cross-brand customer lookup. For the caller's own
// brand (or the operator) it is a full License plus the brand; for other brands only
// brand, product, status, expires_at and the masked key.
type CustomerLicense struct {
	Brand      string     `json:"brand"`
	ID         string     `json:"id,omitempty"`
	LicenseKey string     `json:"license_key"`
	Product    string     `json:"product"`
	Status     string     `json:"status"`
	ExpiresAt  *time.Time `json:"expires_at"`
	SeatLimit  *int       `json:"seat_limit,omitempty"`
	SeatsUsed  *int       `json:"seats_used,omitempty"`
	Masked     bool       `json:"masked"`
	// Activations and ActivationsTruncated as in License.
	Activations          *[]Activation `json:"activations,omitempty"`
	ActivationsTruncated *bool         `json:"activations_truncated,omitempty"`
}

// Event is one audit entry of a license.
type Event struct {
	ID        string    `json:"id"`
	Action    string    `json:"action"`
	Actor     string    `json:"actor"`
	RequestID string    `json:"request_id"`
	At        time.Time `json:"at"`
	Before    any       `json:"before"`
	After     any       `json:"after"`
}

// List is the envelope of every list.
type List[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// StatusLicense is one license in a status answer.
type StatusLicense struct {
	Product        string     `json:"product"`
	Status         string     `json:"status"`
	Valid          bool       `json:"valid"`
	ExpiresAt      *time.Time `json:"expires_at"`
	SeatLimit      *int       `json:"seat_limit"`
	SeatsUsed      int        `json:"seats_used"`
	SeatsRemaining *int       `json:"seats_remaining"`
}

// StatusInstance says whether the asked instance is activated.
type StatusInstance struct {
	ID        string `json:"id"`
	Activated bool   `json:"activated"`
	// Development: the activation that answers is a development instance's.
	Development bool `json:"development"`
}

// Status is the answer to a status check (US4).
type Status struct {
	LicenseKey string          `json:"license_key"`
	Brand      string          `json:"brand"`
	Valid      bool            `json:"valid"`
	Code       string          `json:"code"`
	Licenses   []StatusLicense `json:"licenses"`
	Instance   *StatusInstance `json:"instance,omitempty"`
	CheckedAt  time.Time       `json:"checked_at"`
}

// WebhookEndpoint is a URL a brand subscribed to events (API.md "Webhooks"). Secret is
// present only in the answer that created it.
type WebhookEndpoint struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"` // empty: every type
	Description string   `json:"description"`
	Status      string   `json:"status"` // enabled | disabled
	// DisabledReason says why a disabled endpoint is: "manual" (PATCH) or "failing"
	// (every delivery failed for 5 days); null while enabled.
	DisabledReason *string   `json:"disabled_reason"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	Secret         string    `json:"secret,omitempty"`
}

// WebhookSecret answers a secret rotation.
type WebhookSecret struct {
	Secret string `json:"secret"`
	// PreviousValidUntil is when the previous secret stops signing deliveries.
	PreviousValidUntil time.Time `json:"previous_valid_until"`
}

// WebhookDelivery is one event's delivery to one endpoint, with its latest attempt.
type WebhookDelivery struct {
	ID             string     `json:"id"`
	EndpointID     string     `json:"endpoint_id"`
	EventID        string     `json:"event_id"`
	Type           string     `json:"type"`
	Attempt        int        `json:"attempt"` // attempts made so far
	Status         string     `json:"status"`  // pending | succeeded | failed
	ResponseStatus *int       `json:"response_status"`
	Error          *string    `json:"error"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	CreatedAt      time.Time  `json:"created_at"`
}

// WebhookPayload is the body of a webhook delivery: the event type, when the change was
// committed, and the resource as the API returns it.
type WebhookPayload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// WebhookTestData is the data of a webhook.test event.
type WebhookTestData struct {
	EndpointID string `json:"endpoint_id"`
	Message    string `json:"message"`
}

// WebhookActivation is the data of activation.* events: the activation with its license.
type WebhookActivation struct {
	Activation
	License License `json:"license"`
}
