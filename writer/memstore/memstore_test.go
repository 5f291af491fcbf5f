package memstore_test

import (
	"testing"

	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/memstore"
	"github.com/licensing/licensing/writer/storetest"
)

type inspector struct{ s *memstore.Store }

func (i inspector) Events(_ testing.TB, keyID string) []event.Change {
	var out []event.Change
	for _, o := range i.s.Outbox() {
		if o.KeyID == keyID {
			out = append(out, o.Change)
		}
	}
	return out
}

func (i inspector) KeyID(t testing.TB, key string) string {
	for _, o := range i.s.Outbox() {
		if o.Change.LicenseKey == key {
			return o.KeyID
		}
	}
	t.Fatalf("no events of key %s", key)
	return ""
}

// TestSeatConformance runs the seat statements' conformance table against the fake
// (writer/postgres runs the same table against the SQL functions).
func TestSeatConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) (licensing.Store, storetest.Inspector) {
		s := memstore.New()
		return s, inspector{s}
	})
}
