package seed

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/licensing/licensing/shared/license"
)

// Manifest tells the load scripts (k6 and the Go harness) what the seeder created. Each
// list is a uniform sample of its kind. Keys are secrets of test data only.
type Manifest struct {
	CreatedAt time.Time       `json:"created_at"`
	Prefix    string          `json:"prefix"`
	Seed      uint64          `json:"seed"`
	Counts    Counts          `json:"counts"`
	Brands    []ManifestBrand `json:"brands"`
	// Status: any license (every lifecycle state), with one of its active instances when
	// it has some: what plugins ask.
	Status []Target `json:"status"`
	// Free: valid licenses with at least two free seats, or unlimited.
	Free []Target `json:"free"`
	// NearFull: valid limited licenses with at most one free seat (contention).
	NearFull []Target `json:"near_full"`
	// Unlimited: valid licenses without a seat limit (writer throughput baselines).
	Unlimited []Target `json:"unlimited"`
	// Active: an active activation of a valid license, with the raw spelling the plugin
	// sent (normalization is exercised by sending Raw).
	Active []Target `json:"active"`
	// Lifecycle: valid licenses for suspend/resume cycles (brand API).
	Lifecycle []Target `json:"lifecycle"`
	// UnknownKeys are well-formed keys that do not exist (negative caching).
	UnknownKeys []string `json:"unknown_keys"`
	// Big: instances of the big licenses (Config.BigLicenses), a sample per license.
	Big []Target `json:"big,omitempty"`
}

// ManifestBrand is a brand with the API key the seeder issued for it.
type ManifestBrand struct {
	ID       string   `json:"id"`
	Slug     string   `json:"slug"`
	APIKey   string   `json:"api_key"`
	Products []string `json:"products"`
}

// Target is one license (and maybe one instance) to aim requests at.
type Target struct {
	Brand     string `json:"b"`
	Key       string `json:"k"`
	Product   string `json:"p"`
	LicenseID string `json:"l"`
	Status    string `json:"s"` // effective status at seeding time
	SeatLimit *int   `json:"limit"`
	SeatsUsed int    `json:"used"`
	Instance  string `json:"i,omitempty"`
	Raw       string `json:"raw,omitempty"`
}

// Counts are the rows a run wrote.
type Counts struct {
	Brands      int   `json:"brands"`
	Products    int   `json:"products"`
	LicenseKeys int64 `json:"license_keys"`
	Licenses    int64 `json:"licenses"`
	Activations int64 `json:"activations"`
	AuditEvents int64 `json:"audit_events"`
	Outbox      int64 `json:"outbox"`
}

// Add sums counts.
func (c *Counts) Add(o Counts) {
	c.LicenseKeys += o.LicenseKeys
	c.Licenses += o.Licenses
	c.Activations += o.Activations
	c.AuditEvents += o.AuditEvents
	c.Outbox += o.Outbox
}

// sampler keeps uniform reservoirs of the manifest lists for one worker stream.
type sampler struct {
	r    *rand.Rand
	size int
	seen map[string]int
	list map[string][]Target
	big  []Target // every big license's sample, whole
}

func newSampler(seed uint64, w, size int) *sampler {
	return &sampler{r: rand.New(rand.NewPCG(seed, uint64(w)+1000)), size: size, seen: map[string]int{}, list: map[string][]Target{}}
}

func (s *sampler) offer(name string, t Target) {
	n := s.seen[name]
	s.seen[name] = n + 1
	if n < s.size {
		s.list[name] = append(s.list[name], t)
		return
	}
	if j := s.r.IntN(n + 1); j < s.size {
		s.list[name][j] = t
	}
}

// Observe offers every license of k to the lists it qualifies for.
func (s *sampler) Observe(p *Plan, k *Key) {
	now := p.Config.Now
	b := &p.Brands[k.Brand]
	if k.Big {
		// kept out of the other lists: every scenario aimed at them would hit one license
		l := &k.Licenses[0]
		for _, j := range s.r.Perm(len(l.Activations))[:min(len(l.Activations), s.size)] {
			a := l.Activations[j]
			s.big = append(s.big, Target{Brand: b.Slug, Key: k.Key, Product: b.Products[l.Product].Code, LicenseID: UUIDString(l.ID),
				Status: license.StatusValid, SeatsUsed: l.SeatsUsed, Instance: a.Instance, Raw: a.Raw})
		}
		return
	}
	for i := range k.Licenses {
		l := &k.Licenses[i]
		st := license.EffectiveStatus(l.Status, l.ExpiresAt, now)
		t := Target{Brand: b.Slug, Key: k.Key, Product: b.Products[l.Product].Code, LicenseID: UUIDString(l.ID),
			Status: st, SeatLimit: l.SeatLimit, SeatsUsed: l.SeatsUsed}
		withInst := t
		if n := len(l.Activations); n > 0 {
			a := l.Activations[s.r.IntN(n)]
			withInst.Instance, withInst.Raw = a.Instance, a.Raw
		}
		s.offer("status", withInst)
		// expiring within the hour would make a "valid" sample go stale during a run
		if st != license.StatusValid || (l.ExpiresAt != nil && l.ExpiresAt.Before(now.Add(24*time.Hour))) {
			continue
		}
		s.offer("lifecycle", t)
		if withInst.Instance != "" {
			s.offer("active", withInst)
		}
		switch {
		case l.SeatLimit == nil:
			s.offer("unlimited", t)
			s.offer("free", t)
		case *l.SeatLimit-l.SeatsUsed >= 2:
			s.offer("free", t)
		default:
			s.offer("near_full", t)
		}
	}
}

// merge combines worker samplers into the manifest lists, size entries each at most.
func merge(p *Plan, ss []*sampler, size int) Manifest {
	m := Manifest{Prefix: p.Config.Prefix, Seed: p.Config.Seed, CreatedAt: p.Config.Now}
	r := rand.New(rand.NewPCG(p.rseed, 99))
	pick := func(name string) []Target {
		var all []Target
		for _, s := range ss {
			all = append(all, s.list[name]...)
		}
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		if len(all) > size {
			all = all[:size]
		}
		if all == nil {
			all = []Target{}
		}
		return all
	}
	m.Status, m.Free, m.NearFull = pick("status"), pick("free"), pick("near_full")
	m.Unlimited, m.Active, m.Lifecycle = pick("unlimited"), pick("active"), pick("lifecycle")
	for _, s := range ss {
		m.Big = append(m.Big, s.big...)
	}
	for i := 0; i < min(size, 1000); i++ {
		m.UnknownKeys = append(m.UnknownKeys, licenseKey(r))
	}
	for _, b := range p.Brands {
		mb := ManifestBrand{ID: UUIDString(b.ID), Slug: b.Slug, APIKey: b.APIKey.Token}
		for _, pr := range b.Products {
			mb.Products = append(mb.Products, pr.Code)
		}
		m.Brands = append(m.Brands, mb)
	}
	return m
}

// Write stores the manifest as indented JSON, readable only by its owner (it holds API
// keys), creating the directory.
func (m *Manifest) Write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// ReadManifest loads a manifest written by Write.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
