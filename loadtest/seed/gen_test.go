package seed

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/licensing/licensing/shared/apikey"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
)

func testPlan(t testing.TB, acts int64) *Plan {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Activations = acts
	cfg.Now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cfg.Workers = 2
	cfg.Sample = 200
	cfg.OutboxWindow = 30 * 24 * time.Hour // enough rows to check
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func keysOf(p *Plan) []Key {
	var out []Key
	for w := 0; w < p.Config.Workers; w++ {
		g := NewGenerator(p, w)
		for !g.Done() {
			out = append(out, g.Next())
		}
	}
	return out
}

func TestGeneratedDataFollowsTheWritersRules(t *testing.T) {
	p := testPlan(t, 30000)
	keys := keysOf(p)
	now := p.Config.Now
	var acts int64
	seenKey := map[string]bool{}
	mix := map[string]int{}
	limits := map[string]int{}
	nearFull, multi, devInstances := 0, 0, 0
	for _, k := range keys {
		if !license.ValidKey(k.Key) {
			t.Fatalf("key %q has not the format of license.NewKey", k.Key)
		}
		if seenKey[k.Key] {
			t.Fatalf("duplicate key %s", k.Key)
		}
		seenKey[k.Key] = true
		if _, err := license.NormalizeEmail(k.Email); err != nil {
			t.Fatalf("email %q: %v", k.Email, err)
		}
		if len(k.Licenses) > 1 {
			multi++
		}
		changes := int64(0)
		products := map[int]bool{}
		for _, l := range k.Licenses {
			if products[l.Product] {
				t.Fatalf("key %s licenses product %d twice", k.Key, l.Product)
			}
			products[l.Product] = true
			dev := 0
			for _, a := range l.Activations {
				if a.Development != license.IsDevelopmentInstance(a.Raw, nil) {
					t.Fatalf("activation %q: development %v", a.Raw, a.Development)
				}
				if a.Development {
					dev++
				}
			}
			devInstances += dev
			if l.SeatsUsed != len(l.Activations)-dev || l.DevUsed != dev || dev > 20 {
				t.Fatalf("seats_used %d, dev %d: %d activations of which %d development", l.SeatsUsed, l.DevUsed, len(l.Activations), dev)
			}
			if l.SeatLimit != nil && l.SeatsUsed > *l.SeatLimit {
				t.Fatalf("seats_used %d exceeds seat_limit %d", l.SeatsUsed, *l.SeatLimit)
			}
			if l.SeatLimit == nil {
				limits["unlimited"]++
			} else {
				limits[map[int]string{1: "1", 3: "3", 5: "5"}[*l.SeatLimit]]++
				if *l.SeatLimit-l.SeatsUsed <= 1 {
					nearFull++
				}
			}
			mix[license.EffectiveStatus(l.Status, l.ExpiresAt, now)]++
			if l.ExpiresAt != nil && !l.ExpiresAt.After(l.CreatedAt) {
				t.Fatalf("expires_at %v not after created_at %v: the API refuses that", l.ExpiresAt, l.CreatedAt)
			}
			inst := map[string]bool{}
			for _, a := range l.Activations {
				n, err := license.NormalizeInstance(a.Raw)
				if err != nil || n != a.Instance {
					t.Fatalf("instance %q stored as %q, want normalized %q (%v)", a.Raw, a.Instance, n, err)
				}
				if again, _ := license.NormalizeInstance(a.Instance); again != a.Instance {
					t.Fatalf("stored instance %q is not a fixed point of normalization", a.Instance)
				}
				if inst[a.Instance] {
					t.Fatalf("instance %q twice on one license", a.Instance)
				}
				inst[a.Instance] = true
				if a.ActivatedAt.Before(l.CreatedAt) || a.ActivatedAt.After(now) {
					t.Fatalf("activation at %v outside [%v, %v]", a.ActivatedAt, l.CreatedAt, now)
				}
				if l.ExpiresAt != nil && a.ActivatedAt.After(*l.ExpiresAt) && l.ExpiresAt.Before(now) {
					t.Fatalf("activation at %v after expiry %v", a.ActivatedAt, l.ExpiresAt)
				}
				if l.Transition != "" && a.ActivatedAt.After(l.TransitionAt) {
					t.Fatalf("activation after the license was %sed", l.Transition)
				}
			}
			changes += int64(len(l.Activations))
			if l.Transition != "" {
				changes++
			}
			acts += int64(len(l.Activations))
		}
		if k.Version != 1+changes {
			t.Fatalf("version %d, want 1 + %d changes", k.Version, changes)
		}
	}
	if acts < p.Config.Activations {
		t.Fatalf("generated %d activations, want at least %d", acts, p.Config.Activations)
	}
	// the data mix has development instances: one license in ten, 1–3 each
	if devInstances < len(keys)/40 {
		t.Fatalf("%d development activations over %d keys, want about one license in ten with 1–3", devInstances, len(keys))
	}
	for _, st := range []string{"valid", "expired", "suspended", "cancelled"} {
		if mix[st] == 0 {
			t.Errorf("no %s license in the mix %v", st, mix)
		}
	}
	for _, l := range []string{"1", "3", "5", "unlimited"} {
		if limits[l] == 0 {
			t.Errorf("no license with seat limit %s: %v", l, limits)
		}
	}
	if nearFull == 0 || multi == 0 {
		t.Errorf("near-full licenses %d, multi-product keys %d: want some of each", nearFull, multi)
	}
}

func TestEventsMatchTheWriter(t *testing.T) {
	p := testPlan(t, 5000)
	horizon := p.Config.Now.Add(-p.Config.OutboxWindow)
	var outboxRows int
	for _, k := range keysOf(p) {
		audit, outbox := p.Events(&k, nil, nil)
		created := 0
		for _, a := range audit {
			if a.Action == "license.created" {
				created++
			}
			if a.Action == "license.activated" {
				t.Fatal("activation audit rows written although AuditActivations is off")
			}
		}
		if created != len(k.Licenses) {
			t.Fatalf("%d license.created audit rows for %d licenses", created, len(k.Licenses))
		}
		last := int64(0)
		for _, o := range outbox {
			outboxRows++
			if o.At.Before(horizon) {
				t.Fatalf("outbox row at %v older than the retention horizon %v", o.At, horizon)
			}
			if o.Version <= last || o.Version > k.Version {
				t.Fatalf("outbox versions not increasing within 1..%d: %d after %d", k.Version, o.Version, last)
			}
			last = o.Version
			var ev event.Change
			if err := json.Unmarshal(o.Payload, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Version != o.Version || ev.LicenseKey != k.Key || o.Subject != event.Subject(ev.BrandID, ev.KeyID) {
				t.Fatalf("payload %+v does not match row (version %d, subject %s)", ev, o.Version, o.Subject)
			}
			switch ev.Type {
			case event.KeyCreated:
				if len(ev.Licenses) != len(k.Licenses) || ev.CustomerEmail != k.Email {
					t.Fatalf("key created event %+v", ev)
				}
			case event.ActivationCreated:
				if ev.License == nil || ev.Activation == nil || ev.Activation.Version != ev.Version || ev.Activation.LicenseID != ev.License.ID {
					t.Fatalf("activation event %+v", ev)
				}
				if !slices.ContainsFunc(k.Licenses, func(l License) bool {
					return slices.ContainsFunc(l.Activations, func(a Activation) bool {
						return a.Instance == ev.Activation.Instance && a.Version == ev.Version
					})
				}) {
					t.Fatalf("activation event %+v names no activation of that version", ev.Activation)
				}
			case event.LicenseSuspended, event.LicenseCancelled:
				if ev.License == nil || ev.Activation != nil {
					t.Fatalf("lifecycle event %+v", ev)
				}
			default:
				t.Fatalf("unexpected event type %q", ev.Type)
			}
		}
		if len(outbox) > 0 && outbox[len(outbox)-1].At.Equal(k.UpdatedAt) && last != k.Version {
			t.Fatalf("latest change carries version %d, the key has %d", last, k.Version)
		}
	}
	if outboxRows == 0 {
		t.Fatal("no outbox rows inside a 30-day window")
	}
}

func TestAPIKeyFormat(t *testing.T) {
	p := testPlan(t, 10)
	for _, b := range p.Brands {
		k := b.APIKey
		if len(k.Prefix) != 8 || len(k.Token) != len("lsk_")+8+1+52 {
			t.Fatalf("token %q / prefix %q have not the writer's shape", k.Token, k.Prefix)
		}
		prefix, secret, ok := apikey.Parse(k.Token)
		if !ok || prefix != k.Prefix || !apikey.Matches(secret, k.SecretHash) {
			t.Fatal("the token does not match its stored hash as the writer checks it")
		}
	}
}

func TestManifestSamples(t *testing.T) {
	p := testPlan(t, 20000)
	s := newSampler(1, 0, 100)
	for _, k := range keysOf(p) {
		s.Observe(p, &k)
	}
	m := merge(p, []*sampler{s}, 100)
	if len(m.Status) != 100 || len(m.Free) != 100 || len(m.NearFull) != 100 || len(m.Active) != 100 || len(m.Lifecycle) != 100 || len(m.Unlimited) == 0 {
		t.Fatalf("sample sizes status %d free %d near %d active %d life %d unl %d", len(m.Status), len(m.Free), len(m.NearFull), len(m.Active), len(m.Lifecycle), len(m.Unlimited))
	}
	for _, x := range m.NearFull {
		if x.SeatLimit == nil || *x.SeatLimit-x.SeatsUsed > 1 || x.Status != "valid" {
			t.Fatalf("near_full entry %+v", x)
		}
	}
	for _, x := range m.Free {
		if x.SeatLimit != nil && *x.SeatLimit-x.SeatsUsed < 2 {
			t.Fatalf("free entry %+v", x)
		}
	}
	for _, x := range m.Active {
		if n, _ := license.NormalizeInstance(x.Raw); n != x.Instance || x.Instance == "" {
			t.Fatalf("active entry %+v", x)
		}
	}
	for _, k := range m.UnknownKeys {
		if !license.ValidKey(k) {
			t.Fatalf("unknown key %q is not well-formed", k)
		}
	}
	if len(m.Brands) != p.Config.Brands || m.Brands[0].APIKey == "" {
		t.Fatalf("brands %+v", m.Brands)
	}
}

func TestUUIDv7(t *testing.T) {
	p := testPlan(t, 10)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	u := uuidV7(NewGenerator(p, 0).r, at)
	s := UUIDString(u)
	if s[14] != '7' || (s[19] != '8' && s[19] != '9' && s[19] != 'a' && s[19] != 'b') {
		t.Fatalf("%s is not a version 7 RFC 9562 UUID", s)
	}
	ms := int64(u[0])<<40 | int64(u[1])<<32 | int64(u[2])<<24 | int64(u[3])<<16 | int64(u[4])<<8 | int64(u[5])
	if ms != at.UnixMilli() {
		t.Fatalf("timestamp %d, want %d", ms, at.UnixMilli())
	}
}

func BenchmarkGenerate(b *testing.B) {
	p := testPlan(b, int64(b.N)*3+100)
	p.Config.OutboxWindow = time.Hour
	g := NewGenerator(p, 0)
	var audit []AuditRow
	var outbox []OutboxRow
	b.ResetTimer()
	acts := 0
	for i := 0; i < b.N; i++ {
		k := g.Next()
		audit, outbox = p.Events(&k, audit[:0], outbox[:0])
		for _, l := range k.Licenses {
			acts += len(l.Activations)
		}
	}
	b.ReportMetric(float64(acts)/b.Elapsed().Seconds(), "acts/s")
}

func TestLicenseJSONMatchesEncodingJSON(t *testing.T) {
	p := testPlan(t, 3000)
	n := 0
	for _, k := range keysOf(p) {
		for i := range k.Licenses {
			l := &k.Licenses[i]
			for _, used := range []int{0, l.SeatsUsed} {
				res := LicenseResource(&k, l, &p.Brands[k.Brand].Products[l.Product], l.Status, used, l.UpdatedAt)
				want, _ := json.Marshal(res)
				if got := appendLicenseJSON(nil, res); string(got) != string(want) {
					t.Fatalf("fast JSON\n%s\nencoding/json\n%s", got, want)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing compared")
	}
}

func TestBigLicenses(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Activations, cfg.Workers, cfg.Prefix, cfg.Sample = 300, 2, "bigt", 50
	cfg.BigLicenses, cfg.BigActivations = 2, 10000
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGenerator(p, 0)
	s := newSampler(1, 0, cfg.Sample)
	for i := range 3 {
		if g.Done() {
			t.Fatalf("stream done after %d keys, before its big keys and its budget", i)
		}
		k := g.Next()
		s.Observe(p, &k)
		if k.Big != (i < 2) {
			t.Fatalf("key %d big = %v", i, k.Big)
		}
		if !k.Big {
			continue
		}
		l := k.Licenses[0]
		if len(k.Licenses) != 1 || len(l.Activations) != 10000 || l.SeatsUsed != 10000 || l.SeatLimit != nil || k.Version != 10001 {
			t.Fatalf("big key: %d licenses, %d activations, seats %d, version %d", len(k.Licenses), len(l.Activations), l.SeatsUsed, k.Version)
		}
		seen := map[string]bool{}
		for j, a := range l.Activations {
			if seen[a.Instance] || a.Version != int64(j)+2 {
				t.Fatalf("activation %d: instance %q repeated or version %d", j, a.Instance, a.Version)
			}
			seen[a.Instance] = true
		}
	}
	if len(s.big) != 2*cfg.Sample || len(s.list["unlimited"]) == 0 && len(s.list["status"]) == 0 {
		t.Fatalf("big sample %d, want %d", len(s.big), 2*cfg.Sample)
	}
	for _, tg := range s.big {
		if tg.Instance == "" || tg.Key == "" {
			t.Fatalf("big target %+v", tg)
		}
	}
}
