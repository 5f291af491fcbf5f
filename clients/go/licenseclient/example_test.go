package licenseclient_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/licensing/licensing/clients/go/licenseapi"
	"github.com/licensing/licensing/clients/go/licenseclient"
)

// A brand backend provisions a license key for an order, adds a product to it, and suspends
// a license. The README shows this example; it is compiled with the tests (it needs a
// running writer and a brand API key to run, which TestAgainstWriter provides for the same
// calls).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := licenseclient.New("http://127.0.0.1:8080", os.Getenv("LICENSE_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}

	// Provision: one key, two products. The client sends an Idempotency-Key and retries a
	// lost answer with it, so the key is created once. Pass your own (the order id) to make
	// a repeat of the whole call after a crash safe too.
	created, err := licenseclient.Expect[*licenseapi.LicenseKeyHeaders](c.CreateLicenseKey(ctx,
		&licenseapi.CreateLicenseKeyRequest{
			CustomerEmail: "jane@example.com",
			Licenses: []licenseapi.LicenseSpec{
				{Product: "seo", ExpiresAt: licenseapi.NewOptNilDateTime(time.Now().AddDate(1, 0, 0)), SeatLimit: licenseapi.NewOptNilInt(3)},
				{Product: "backup"},
			},
		},
		licenseapi.CreateLicenseKeyParams{IdempotencyKey: licenseapi.NewOptString("order-1042")}))
	if err != nil {
		log.Fatal(err)
	}
	key := created.Response
	fmt.Println("license key", key.Key, "with", len(key.Licenses), "licenses")

	// Errors of the service are *licenseclient.Error; branch on the code.
	_, err = licenseclient.Expect[*licenseapi.LicenseChangedHeaders](c.AddLicense(ctx,
		&licenseapi.LicenseSpec{Product: "seo"}, licenseapi.AddLicenseParams{Key: string(key.Key)}))
	switch licenseclient.CodeOf(err) {
	case "":
		if err != nil {
			log.Fatal(err) // not an answer of the service: network, decoding
		}
	case licenseapi.ErrorCodeProductAlreadyLicensed:
		fmt.Println("seo is already on this key")
	default:
		log.Fatal(err)
	}

	// Lifecycle: suspend, later resume (renew and cancel work the same way).
	suspended, err := licenseclient.Expect[*licenseapi.LicenseChangedHeaders](c.SuspendLicense(ctx,
		&licenseapi.SuspendLicenseReq{}, licenseapi.SuspendLicenseParams{ID: key.Licenses[0].ID}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(suspended.Response.Product, "is", suspended.Response.Status)
}
