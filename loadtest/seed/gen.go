// Package seed generates realistic licensing data, exactly as the writer's API would have
// left it, and loads it into Postgres with COPY (see Load). Generation is pure and
// deterministic for a given Config (Generator), so its rules are unit-tested without a
// database: seats_used equals the active activations and never exceeds seat_limit,
// instances are stored normalized, every change bumps the key's version once.
//
// The history simulated per license key follows writer/licensing: provisioning (one
// "license.created" audit row per license, one outbox event for the key, version 1), then
// activations (one version each), then at most one lifecycle change per license (suspend or
// cancel, one version, one audit row). Licenses whose expires_at has passed stay stored as
// "valid" and read as "expired", as the API evaluates expiry at read time.
package seed

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/licensing/licensing/shared/apikey"
	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/resource"
)

// Config describes one seeding run.
type Config struct {
	// Activations is the number of activation rows to create (the run stops at the first
	// key that reaches it, so it may be exceeded by a few).
	Activations int64
	// Brands and ProductsPerBrand size the tenants (at most 8 products per brand).
	Brands           int
	ProductsPerBrand int
	// Prefix starts every brand slug ("lt" → "lt-acme"); use a new one per run on the same
	// database.
	Prefix string
	// Seed makes the run reproducible.
	Seed uint64
	// Now is the clock of the simulated history: every change happened before it.
	Now time.Time
	// History is how far back the first license key was created.
	History time.Duration
	// OutboxWindow: changes newer than this get their (already sent) outbox row; older
	// ones were deleted by the relay's retention long ago (writer/outbox Config.Retention).
	OutboxWindow time.Duration
	// AuditActivations also writes the "license.activated" audit row of every activation
	// (the API does; off by default because it triples the bytes written).
	AuditActivations bool
	// Workers splits the run into independent generator streams (one COPY stream each).
	Workers int
	// Sample is how many entries each manifest list keeps.
	Sample int
	// BigLicenses keys of the first stream each hold one unlimited license with
	// BigActivations activations (agency and unlimited plans: the status of such a
	// license must cost what a one-site license's costs), on top of Activations.
	BigLicenses    int
	BigActivations int
}

// DefaultConfig is one million activations over four brands.
func DefaultConfig() Config {
	return Config{
		Activations: 1_000_000, Brands: 4, ProductsPerBrand: 4, Prefix: "lt", Seed: 1,
		Now: time.Now().UTC().Truncate(time.Second), History: 2 * 365 * 24 * time.Hour,
		OutboxWindow: time.Hour, Workers: 3, Sample: 2000,
	}
}

var (
	brandWords   = []string{"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne", "soylent", "oscorp"}
	productCodes = []string{"pro", "business", "agency", "seo-suite", "cache-plus", "forms", "backup", "analytics"}
	siteWords    = []string{"shop", "blog", "studio", "news", "agency", "travel", "foodie", "fitness", "photo", "dev", "garden", "music"}
	tlds         = []string{"com", "net", "org", "io", "de", "co.uk", "fr", "shop"}
	mailDomains  = []string{"example.com", "example.net", "example.org", "mail.example", "corp.example"}
)

// Brand is a tenant with its products and one API key.
type Brand struct {
	ID        [16]byte
	Slug      string
	Name      string
	CreatedAt time.Time
	Products  []Product
	APIKey    APIKey
}

// Product is a product of a brand.
type Product struct {
	ID        [16]byte
	Code      string
	Name      string
	CreatedAt time.Time
}

// APIKey is a brand API key in the format of shared/apikey (what the writer issues),
// drawn from the seeded generator.
type APIKey struct {
	ID         [16]byte
	Prefix     string
	SecretHash []byte
	Token      string
}

// Key is a generated license key with its licenses.
type Key struct {
	// Big marks a key with one big license (Config.BigLicenses).
	Big       bool
	ID        [16]byte
	Brand     int // index into the plan's brands
	Key       string
	Email     string
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Licenses  []License
}

// License is one license on a key.
type License struct {
	ID          [16]byte
	Product     int // index into the brand's products
	Status      string
	ExpiresAt   *time.Time
	SeatLimit   *int
	SeatsUsed   int
	DevUsed     int // development activations (API.md v1.1: no seat)
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Activations []Activation
	// Transition is "" or the lifecycle change applied after the activations.
	Transition   license.Transition
	TransitionAt time.Time
}

// Activation is one active seat.
type Activation struct {
	ID          [16]byte
	Raw         string // as a plugin sent it
	Instance    string // normalized, as stored
	ActivatedAt time.Time
	// Version is the key version the activation made (set by Generator.Next).
	Version int64
	// Development: a staging copy of a site, which takes no seat.
	Development bool
}

// Plan holds the small tables of a run.
type Plan struct {
	Config Config
	Brands []Brand
	// rseed seeds every generator: Seed mixed with Prefix, so two runs with different
	// prefixes never draw the same keys.
	rseed uint64
}

// NewPlan makes the brands, products and API keys of cfg.
func NewPlan(cfg Config) (*Plan, error) {
	if cfg.Brands < 1 || cfg.Brands > len(brandWords) {
		return nil, fmt.Errorf("brands must be from 1 to %d", len(brandWords))
	}
	if cfg.ProductsPerBrand < 1 || cfg.ProductsPerBrand > len(productCodes) {
		return nil, fmt.Errorf("products per brand must be from 1 to %d", len(productCodes))
	}
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.Prefix))
	p := &Plan{Config: cfg, rseed: cfg.Seed ^ h.Sum64()}
	r := rand.New(rand.NewPCG(p.rseed, 0x5eed))
	start := cfg.Now.Add(-cfg.History - 24*time.Hour)
	for i := 0; i < cfg.Brands; i++ {
		slug := cfg.Prefix + "-" + brandWords[i]
		if !license.ValidSlug(slug) {
			return nil, fmt.Errorf("prefix %q makes the invalid slug %q", cfg.Prefix, slug)
		}
		b := Brand{ID: uuidV7(r, start), Slug: slug, Name: strings.ToUpper(brandWords[i][:1]) + brandWords[i][1:] + " (load test)", CreatedAt: start}
		b.APIKey = newAPIKey(r, start)
		for j := 0; j < cfg.ProductsPerBrand; j++ {
			b.Products = append(b.Products, Product{ID: uuidV7(r, start), Code: productCodes[j],
				Name: strings.ToUpper(productCodes[j][:1]) + productCodes[j][1:], CreatedAt: start})
		}
		p.Brands = append(p.Brands, b)
	}
	return p, nil
}

func newAPIKey(r *rand.Rand, at time.Time) APIKey {
	var raw [apikey.PrefixBytes + apikey.SecretBytes]byte
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	k := apikey.FromBytes(raw)
	return APIKey{ID: uuidV7(r, at), Prefix: k.Prefix, SecretHash: k.Hash, Token: k.Token}
}

// uuidV7 returns a version 7 UUID whose timestamp is at, as uuid.NewV7 would have made
// it at that moment.
func uuidV7(r *rand.Rand, at time.Time) [16]byte {
	var u [16]byte
	ms := uint64(at.UnixMilli())
	binary.BigEndian.PutUint64(u[8:], r.Uint64())
	binary.BigEndian.PutUint16(u[6:], uint16(r.Uint32()))
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	return u
}

// UUIDString formats a UUID.
func UUIDString(u [16]byte) string {
	const hx = "0123456789abcdef"
	b := make([]byte, 36)
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hx[c>>4], hx[c&15]
		j += 2
	}
	return string(b)
}

// licenseKey draws a key in the format of shared/license NewKey (5 groups of 5 symbols of
// KeyAlphabet, uniform) from the seeded generator.
func licenseKey(r *rand.Rand) string {
	b := make([]byte, 0, license.KeyLength)
	for i := 0; i < 25; i++ {
		if i > 0 && i%5 == 0 {
			b = append(b, '-')
		}
		b = append(b, license.KeyAlphabet[r.IntN(len(license.KeyAlphabet))])
	}
	return string(b)
}

// Generator produces the license keys of one worker stream, oldest first.
type Generator struct {
	plan   *Plan
	big    int // big keys still to make (stream 0)
	r      *rand.Rand
	budget int64 // activations this stream must create
	done   int64
	emails int
	start  time.Time
	span   time.Duration
	siteN  uint64
}

// NewGenerator returns stream w of plan's run (0 <= w < Workers).
func NewGenerator(plan *Plan, w int) *Generator {
	cfg := plan.Config
	workers := max(cfg.Workers, 1)
	budget := cfg.Activations / int64(workers)
	if w < int(cfg.Activations%int64(workers)) {
		budget++
	}
	// about 0.7 customers per key: some customers hold several keys, across brands too
	emails := max(int(cfg.Activations/4), 10)
	g := &Generator{
		plan: plan, r: rand.New(rand.NewPCG(plan.rseed, uint64(w)+1)), budget: budget, emails: emails,
		start: cfg.Now.Add(-cfg.History), span: cfg.History - time.Hour,
	}
	if w == 0 && cfg.BigActivations > 0 {
		g.big = cfg.BigLicenses
	}
	return g
}

// Done reports whether the stream created its share of activations (and its big keys).
func (g *Generator) Done() bool { return g.done >= g.budget && g.big == 0 }

// Next generates one license key with its licenses and history.
func (g *Generator) Next() Key {
	r := g.r
	now := g.plan.Config.Now
	// keys are created in time order as the stream progresses
	progress := float64(g.done) / float64(max(g.budget, 1))
	created := g.start.Add(time.Duration(progress*float64(g.span)) + time.Duration(r.Int64N(int64(time.Minute)))).Truncate(time.Microsecond)
	if !created.Before(now) {
		created = now.Add(-time.Minute)
	}
	bi := r.IntN(len(g.plan.Brands))
	brand := g.plan.Brands[bi]
	k := Key{ID: uuidV7(r, created), Brand: bi, Key: licenseKey(r), CreatedAt: created, Version: 1}
	k.Email = fmt.Sprintf("customer%d@%s", r.IntN(g.emails), mailDomains[r.IntN(len(mailDomains))])

	if g.big > 0 {
		g.big--
		return g.bigKey(k, created)
	}
	// multi-product keys: 60 % one product, 30 % two, 10 % three
	n := 1
	switch x := r.IntN(100); {
	case x >= 90:
		n = 3
	case x >= 60:
		n = 2
	}
	n = min(n, len(brand.Products))
	prods := r.Perm(len(brand.Products))[:n]
	last := created
	for _, pi := range prods {
		l := g.license(created, pi)
		if l.UpdatedAt.After(last) {
			last = l.UpdatedAt
		}
		g.done += int64(len(l.Activations))
		k.Licenses = append(k.Licenses, l)
	}
	k.UpdatedAt = last
	numberChanges(&k)
	return k
}

// bigKey makes a key with one valid, perpetual, unlimited license holding
// BigActivations activations.
func (g *Generator) bigKey(k Key, created time.Time) Key {
	r := g.r
	now := g.plan.Config.Now
	n := g.plan.Config.BigActivations
	k.Big = true
	l := License{ID: uuidV7(r, created), Product: 0, Status: license.StatusValid, CreatedAt: created, UpdatedAt: created}
	base := g.siteN
	g.siteN += uint64(n)
	l.Activations = make([]Activation, 0, n)
	for j := 0; j < n; j++ {
		raw := rawInstance(r, base+uint64(j))
		inst, err := license.NormalizeInstance(raw)
		if err != nil {
			panic("seed: generated an invalid instance " + raw)
		}
		at := between(r, created, now.Add(-time.Minute))
		l.Activations = append(l.Activations, Activation{ID: uuidV7(r, at), Raw: raw, Instance: inst, ActivatedAt: at})
	}
	slices.SortFunc(l.Activations, func(a, b Activation) int { return a.ActivatedAt.Compare(b.ActivatedAt) })
	l.SeatsUsed = n
	if n > 0 {
		l.UpdatedAt = l.Activations[n-1].ActivatedAt
	}
	k.Licenses = []License{l}
	k.UpdatedAt = l.UpdatedAt
	numberChanges(&k) // not counted in g.done: big keys come on top of the budget
	return k
}

// change is one change under a key after its creation: an activation (act >= 0) or a
// license's lifecycle change (act < 0).
type change struct {
	at   time.Time
	lic  int
	act  int
	used int // seats used after an activation
}

// changes lists k's changes in commit order: the key's version after change i is i+2
// (creation is version 1).
func changes(k *Key) []change {
	var cs []change
	for i := range k.Licenses {
		l := &k.Licenses[i]
		used := 0
		for j, a := range l.Activations {
			if !a.Development {
				used++
			}
			cs = append(cs, change{at: a.ActivatedAt, lic: i, act: j, used: used})
		}
		if l.Transition != "" {
			cs = append(cs, change{at: l.TransitionAt, lic: i, act: -1})
		}
	}
	slices.SortStableFunc(cs, func(x, y change) int { return x.at.Compare(y.at) })
	return cs
}

// numberChanges sets the key's version and each activation's version.
func numberChanges(k *Key) {
	cs := changes(k)
	for i, c := range cs {
		if c.act >= 0 {
			k.Licenses[c.lic].Activations[c.act].Version = int64(i) + 2
		}
	}
	k.Version = int64(len(cs)) + 1
}

// license draws one license created at created and its history up to Now.
func (g *Generator) license(created time.Time, product int) License {
	r := g.r
	now := g.plan.Config.Now
	l := License{ID: uuidV7(r, created), Product: product, Status: license.StatusValid, CreatedAt: created, UpdatedAt: created}

	// seat limits: 1 (30 %), 3 (30 %), 5 (25 %), unlimited (15 %)
	switch x := r.IntN(100); {
	case x < 30:
		l.SeatLimit = intp(1)
	case x < 60:
		l.SeatLimit = intp(3)
	case x < 85:
		l.SeatLimit = intp(5)
	}

	// lifecycle: 88 % valid, 5 % expired, 4 % suspended, 3 % cancelled
	end := now // activations happen before this
	life := r.IntN(100)
	age := now.Sub(created)
	switch {
	case life < 88:
		if r.IntN(100) < 70 { // 30 % perpetual
			e := now.Add(time.Duration(1+r.IntN(365)) * 24 * time.Hour).Truncate(time.Second)
			l.ExpiresAt = &e
		}
	case life < 93 && age > 2*time.Hour:
		// expired: had a term that ended between creation and now
		e := created.Add(time.Duration(r.Int64N(int64(age-time.Hour))) + time.Hour).Truncate(time.Second)
		if !e.After(created) || !e.Before(now) {
			e = now.Add(-time.Minute).Truncate(time.Second)
		}
		l.ExpiresAt = &e
		end = e
	case life < 97:
		l.Transition = license.Suspend
	default:
		l.Transition = license.Cancel
	}
	if l.Transition != "" && r.IntN(2) == 0 {
		e := now.Add(time.Duration(1+r.IntN(365)) * 24 * time.Hour).Truncate(time.Second)
		l.ExpiresAt = &e
	}

	// activations
	var n int
	if l.SeatLimit == nil {
		if r.IntN(100) < 2 { // agencies
			n = 20 + r.IntN(180)
		} else {
			n = int(r.ExpFloat64() * 4)
		}
	} else {
		lim := *l.SeatLimit
		switch x := r.IntN(100); {
		case x < 20: // full
			n = lim
		case x < 35: // one seat left
			n = max(lim-1, 0)
		case x < 50:
			n = 0
		default:
			n = r.IntN(lim + 1)
		}
	}
	// transition time: after the activations, before now
	var tAt time.Time
	if l.Transition != "" {
		tAt = between(r, created, end)
		end = tAt
		l.TransitionAt = tAt
	}
	base := g.siteN
	g.siteN += uint64(n)
	for j := 0; j < n; j++ {
		raw := rawInstance(r, base+uint64(j))
		inst, err := license.NormalizeInstance(raw)
		if err != nil {
			panic("seed: generated an invalid instance " + raw)
		}
		at := between(r, created, end)
		l.Activations = append(l.Activations, Activation{ID: uuidV7(r, at), Raw: raw, Instance: inst, ActivatedAt: at})
		if at.After(l.UpdatedAt) {
			l.UpdatedAt = at
		}
	}
	// development instances: one license in ten also runs on 1–3 staging copies of a
	// site, which take no seat (API.md v1.1)
	if r.IntN(10) == 0 {
		d := 1 + r.IntN(3)
		base := g.siteN
		g.siteN += uint64(d)
		for j := 0; j < d; j++ {
			raw := devInstance(r, base+uint64(j))
			inst, err := license.NormalizeInstance(raw)
			if err != nil || !license.IsDevelopmentInstance(raw, nil) {
				panic("seed: generated an invalid development instance " + raw)
			}
			at := between(r, created, end)
			l.Activations = append(l.Activations, Activation{ID: uuidV7(r, at), Raw: raw, Instance: inst, ActivatedAt: at, Development: true})
			if at.After(l.UpdatedAt) {
				l.UpdatedAt = at
			}
		}
		l.DevUsed = d
	}
	slices.SortFunc(l.Activations, func(a, b Activation) int { return a.ActivatedAt.Compare(b.ActivatedAt) })
	l.SeatsUsed = n
	if l.Transition != "" {
		if l.Transition == license.Suspend {
			l.Status = license.StatusSuspended
		} else {
			l.Status = license.StatusCancelled
		}
		l.UpdatedAt = tAt
	}
	return l
}

// between draws a time in (a, b], to the microsecond (what Postgres keeps).
func between(r *rand.Rand, a, b time.Time) time.Time {
	d := b.Sub(a)
	if d <= time.Microsecond {
		return b
	}
	return a.Add(time.Duration(r.Int64N(int64(d))) + time.Microsecond).Truncate(time.Microsecond)
}

// rawInstance is how plugins report a site: URLs in various spellings (scheme, www.,
// default port, upper-case host, trailing slash, sub-site paths) and plain machine ids.
// seq makes it unique within the run, so instances never repeat on one license.
func rawInstance(r *rand.Rand, seq uint64) string {
	word := siteWords[r.IntN(len(siteWords))]
	host := word + strconv.FormatUint(seq, 36) + "." + tlds[r.IntN(len(tlds))]
	switch r.IntN(10) {
	case 0:
		return "https://www." + host + "/"
	case 1:
		return "http://" + strings.ToUpper(host[:1]) + host[1:]
	case 2:
		return "https://" + host + ":443/blog/"
	case 3:
		return "machine-" + strconv.FormatUint(seq, 16) + "-" + strconv.FormatUint(uint64(r.Uint32()), 16)
	case 4:
		return "  https://" + host + "/shop  "
	default:
		return "https://" + host
	}
}

// devInstance is a development copy of a site as a plugin reports it: a staging
// subdomain, a .local or .test name, or localhost with a port.
func devInstance(r *rand.Rand, seq uint64) string {
	word := siteWords[r.IntN(len(siteWords))] + strconv.FormatUint(seq, 36)
	switch r.IntN(4) {
	case 0:
		return "https://" + word + ".local/"
	case 1:
		return "http://" + word + ".test"
	case 2:
		return "http://localhost:" + strconv.Itoa(1024+int(seq%60000)) + "/" + word
	default:
		return "https://staging." + word + "." + tlds[r.IntN(len(tlds))]
	}
}

func intp(v int) *int { return &v }

// LicenseResource is the API representation of l on key k at the given state.
func LicenseResource(k *Key, l *License, p *Product, status string, seatsUsed int, updated time.Time) resource.License {
	out := resource.License{
		ID: UUIDString(l.ID), LicenseKey: k.Key, Product: p.Code,
		Status:    license.EffectiveStatus(status, l.ExpiresAt, updated),
		ExpiresAt: l.ExpiresAt, SeatLimit: l.SeatLimit, SeatsUsed: seatsUsed,
		CreatedAt: l.CreatedAt.UTC(), UpdatedAt: updated.UTC(),
	}
	if l.SeatLimit != nil {
		rem := max(*l.SeatLimit-seatsUsed, 0)
		out.SeatsRemaining = &rem
	}
	return out
}

// AuditRow is one audit_events row.
type AuditRow struct {
	ID        [16]byte
	BrandID   [16]byte
	KeyID     [16]byte
	LicenseID *[16]byte
	Action    string
	Actor     string
	At        time.Time
	Before    []byte // JSON or nil
	After     []byte
}

// OutboxRow is one outbox row, already sent.
type OutboxRow struct {
	BrandID [16]byte
	KeyID   [16]byte
	Version int64
	Subject string
	Payload []byte
	At      time.Time
}

// Events derives the audit and outbox rows of k's history, as the writer would have
// written them (actor "api_key:<id>" for brand calls, "public" for activations), appending
// to audit and outbox. Versions number every change under the key in commit order
// (creation is 1), whether or not its rows are materialized.
func (p *Plan) Events(k *Key, audit []AuditRow, outbox []OutboxRow) ([]AuditRow, []OutboxRow) {
	cfg := p.Config
	b := &p.Brands[k.Brand]
	actor := "api_key:" + UUIDString(b.APIKey.ID)
	horizon := cfg.Now.Add(-cfg.OutboxWindow)
	r := rand.New(rand.NewPCG(p.rseed^binary.BigEndian.Uint64(k.ID[8:]), 7))
	brandID, keyID := UUIDString(b.ID), UUIDString(k.ID)
	subject := event.Subject(brandID, keyID)

	created := make([]event.License, 0, len(k.Licenses))
	for i := range k.Licenses {
		l := &k.Licenses[i]
		pr := &b.Products[l.Product]
		res := LicenseResource(k, l, pr, license.StatusValid, 0, l.CreatedAt)
		created = append(created, licenseEvent(l, pr, license.StatusValid, 0, l.CreatedAt))
		id := l.ID
		audit = append(audit, AuditRow{ID: uuidV7(r, l.CreatedAt), BrandID: b.ID, KeyID: k.ID, LicenseID: &id,
			Action: "license.created", Actor: actor, At: l.CreatedAt, After: appendLicenseJSON(make([]byte, 0, 360), res)})
	}
	if !k.CreatedAt.Before(horizon) {
		ev := event.Change{Type: event.KeyCreated, BrandID: brandID, Brand: b.Slug, KeyID: keyID, LicenseKey: k.Key,
			Version: 1, CustomerEmail: k.Email, Licenses: created, CommitTime: k.CreatedAt.UTC()}
		outbox = append(outbox, OutboxRow{BrandID: b.ID, KeyID: k.ID, Version: 1, Subject: subject, Payload: mustJSON(ev), At: k.CreatedAt})
	}
	for i, c := range changes(k) {
		version := int64(i) + 2
		wantAudit := c.act < 0 || cfg.AuditActivations
		wantOutbox := !c.at.Before(horizon)
		if !wantAudit && !wantOutbox {
			continue
		}
		l := &k.Licenses[c.lic]
		pr := &b.Products[l.Product]
		id := l.ID
		ev := event.Change{BrandID: brandID, Brand: b.Slug, KeyID: keyID, LicenseKey: k.Key, Version: version, CommitTime: c.at.UTC()}
		var action, who string
		var before, after any
		if c.act >= 0 {
			a := l.Activations[c.act]
			ev.Type, action, who = event.ActivationCreated, "license.activated", "public"
			prev := c.used - 1
			if a.Development {
				prev = c.used
			}
			before = LicenseResource(k, l, pr, license.StatusValid, prev, l.CreatedAt)
			lr := LicenseResource(k, l, pr, license.StatusValid, c.used, a.ActivatedAt)
			act := resource.Activation{ID: UUIDString(a.ID), LicenseID: UUIDString(l.ID), Instance: a.Instance, ActivatedAt: a.ActivatedAt.UTC(),
				Development: a.Development}
			after = map[string]any{"license": lr, "activation": act}
			le := licenseEvent(l, pr, license.StatusValid, c.used, a.ActivatedAt)
			ev.License = &le
			ev.Activation = &event.Activation{ID: act.ID, LicenseID: act.LicenseID, Instance: act.Instance,
				ActivatedAt: act.ActivatedAt, Version: version, Development: a.Development}
		} else {
			ev.Type, action, who = event.LicenseSuspended, "license.suspend", actor
			if l.Transition == license.Cancel {
				ev.Type, action = event.LicenseCancelled, "license.cancel"
			}
			before = LicenseResource(k, l, pr, license.StatusValid, l.SeatsUsed, l.TransitionAt)
			after = LicenseResource(k, l, pr, l.Status, l.SeatsUsed, l.TransitionAt)
			le := licenseEvent(l, pr, l.Status, l.SeatsUsed, l.TransitionAt)
			ev.License = &le
		}
		if wantAudit {
			audit = append(audit, AuditRow{ID: uuidV7(r, c.at), BrandID: b.ID, KeyID: k.ID, LicenseID: &id,
				Action: action, Actor: who, At: c.at, Before: mustJSON(before), After: mustJSON(after)})
		}
		if wantOutbox {
			outbox = append(outbox, OutboxRow{BrandID: b.ID, KeyID: k.ID, Version: version, Subject: subject, Payload: mustJSON(ev), At: c.at})
		}
	}
	return audit, outbox
}

// licenseEvent is l's state in a change event.
func licenseEvent(l *License, p *Product, status string, seatsUsed int, updated time.Time) event.License {
	return event.License{ID: UUIDString(l.ID), Product: p.Code, Status: status, ExpiresAt: l.ExpiresAt,
		SeatLimit: l.SeatLimit, SeatsUsed: seatsUsed, CreatedAt: l.CreatedAt.UTC(), UpdatedAt: updated.UTC()}
}

func mustJSON(v any) []byte {
	if l, ok := v.(resource.License); ok && l.Activations == nil {
		return appendLicenseJSON(make([]byte, 0, 360), l)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// appendLicenseJSON appends the JSON of a resource.License without activations exactly as
// encoding/json renders it (a test holds the two equal), several times faster: it is the
// body of every "license.created" audit row. Strings here are ASCII without characters
// JSON escapes.
func appendLicenseJSON(b []byte, l resource.License) []byte {
	str := func(k, v string) {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":"`...)
		b = append(b, v...)
		b = append(b, '"')
	}
	tm := func(k string, t *time.Time) {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		if t == nil {
			b = append(b, "null"...)
			return
		}
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	num := func(k string, v *int) {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		if v == nil {
			b = append(b, "null"...)
			return
		}
		b = strconv.AppendInt(b, int64(*v), 10)
	}
	b = append(b, '{')
	str("id", l.ID)
	b = append(b, ',')
	str("license_key", l.LicenseKey)
	b = append(b, ',')
	str("product", l.Product)
	b = append(b, ',')
	str("status", l.Status)
	b = append(b, ',')
	tm("expires_at", l.ExpiresAt)
	b = append(b, ',')
	num("seat_limit", l.SeatLimit)
	b = append(b, ',')
	used := l.SeatsUsed
	num("seats_used", &used)
	b = append(b, ',')
	num("seats_remaining", l.SeatsRemaining)
	b = append(b, ',')
	tm("created_at", &l.CreatedAt)
	b = append(b, ',')
	tm("updated_at", &l.UpdatedAt)
	return append(b, '}')
}
