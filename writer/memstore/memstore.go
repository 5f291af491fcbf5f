// Package memstore is an in-memory licensing.Store: the fake the domain's table tests and
// the transport's tests run on without any server. It keeps the rules the Postgres store
// keeps — row-level security (a brand-scoped transaction sees only its brand's rows),
// unique constraints, the seat statements' rules (writer/storetest's conformance table
// runs it and writer/postgres side by side), queued writes applied at commit — and
// transactions are serializable: one runs at a time, on a copy that replaces the data
// only when it commits.
package memstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/licensing/licensing/shared/event"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
	"github.com/licensing/licensing/writer/licensing"
)

// Store is the in-memory store.
type Store struct {
	mu sync.Mutex
	d  *data
	// BeforeTx, when set, is called before each transaction with its number (from 1)
	// and whether it is read-only; an error it returns fails the transaction as a
	// broken database connection would (tests of the failure paths).
	BeforeTx func(n int, readOnly bool) error
	txs      int
}

var (
	_ licensing.Store = (*Store)(nil)
	_ licensing.Tx    = (*Tx)(nil)
)

// OutboxRow is a written outbox event.
type OutboxRow struct {
	KeyID   string
	Version int64
	Subject string
	Change  event.Change
}

type data struct {
	brands      map[string]licensing.BrandRow
	apiKeys     map[string]licensing.APIKeyRow
	products    map[string]licensing.ProductRow
	keys        map[string]licensing.KeyRow
	licenses    map[string]licensing.LicenseRow // stored columns only; reads join
	activations map[string]licensing.ActivationRow
	audit       []licensing.AuditRow
	outbox      []OutboxRow
	idem        map[[2]string]licensing.IdemRow
	cursorKey   []byte
	// webhooks.go
	endpoints      map[string]licensing.EndpointRow
	webhookEvents  map[string]licensing.WebhookEventRow
	deliveries     map[string]licensing.DeliveryRow
	expiryRecorded map[string]time.Time // license id → the expires_at whose passing was recorded
}

func randomKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand)
	return k
}

func (d *data) clone() *data {
	return &data{
		brands: maps.Clone(d.brands), apiKeys: maps.Clone(d.apiKeys), products: maps.Clone(d.products),
		keys: maps.Clone(d.keys), licenses: maps.Clone(d.licenses), activations: maps.Clone(d.activations),
		audit: slices.Clone(d.audit), outbox: slices.Clone(d.outbox), idem: maps.Clone(d.idem), cursorKey: d.cursorKey,
		endpoints: maps.Clone(d.endpoints), webhookEvents: maps.Clone(d.webhookEvents),
		deliveries: maps.Clone(d.deliveries), expiryRecorded: maps.Clone(d.expiryRecorded),
	}
}

// New returns an empty store.
func New() *Store {
	return &Store{d: &data{
		brands: map[string]licensing.BrandRow{}, apiKeys: map[string]licensing.APIKeyRow{},
		products: map[string]licensing.ProductRow{}, keys: map[string]licensing.KeyRow{},
		licenses: map[string]licensing.LicenseRow{}, activations: map[string]licensing.ActivationRow{},
		idem: map[[2]string]licensing.IdemRow{}, cursorKey: randomKey(),
		endpoints: map[string]licensing.EndpointRow{}, webhookEvents: map[string]licensing.WebhookEventRow{},
		deliveries: map[string]licensing.DeliveryRow{}, expiryRecorded: map[string]time.Time{},
	}}
}

// Outbox returns the outbox events written so far, in order.
func (s *Store) Outbox() []OutboxRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d.outbox)
}

// Audit returns the audit events written so far, in order.
func (s *Store) Audit() []licensing.AuditRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d.audit)
}

// Activations returns the activation rows of a license.
func (s *Store) Activations(licenseID string) []licensing.ActivationRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []licensing.ActivationRow
	for _, a := range s.d.activations {
		if a.LicenseID == licenseID {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b licensing.ActivationRow) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Tx implements licensing.Store.
func (s *Store) Tx(ctx context.Context, scope licensing.Scope, fn func(licensing.Tx) error) error {
	return s.run(ctx, scope, false, fn)
}

// ReadTx implements licensing.Store.
func (s *Store) ReadTx(ctx context.Context, scope licensing.Scope, fn func(licensing.Tx) error) error {
	return s.run(ctx, scope, true, fn)
}

func (s *Store) run(ctx context.Context, scope licensing.Scope, readOnly bool, fn func(licensing.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txs++
	if s.BeforeTx != nil {
		if err := s.BeforeTx(s.txs, readOnly); err != nil {
			return err
		}
	}
	t := &Tx{d: s.d.clone(), scope: scope, readOnly: readOnly}
	if err := fn(t); err != nil {
		return err
	}
	if err := t.flush(); err != nil {
		return err
	}
	if !readOnly {
		s.d = t.d
	}
	return nil
}

// Activate implements licensing.SeatStatements (its own transaction).
func (s *Store) Activate(ctx context.Context, c licensing.ActivateCmd) (licensing.SeatResult, error) {
	var r licensing.SeatResult
	err := s.Tx(ctx, licensing.BrandScope(c.BrandID), func(tx licensing.Tx) error {
		var err error
		r, err = tx.Activate(ctx, c)
		return err
	})
	return r, err
}

// Deactivate implements licensing.SeatStatements (its own transaction).
func (s *Store) Deactivate(ctx context.Context, c licensing.DeactivateCmd) (licensing.SeatResult, error) {
	var r licensing.SeatResult
	err := s.Tx(ctx, licensing.BrandScope(c.BrandID), func(tx licensing.Tx) error {
		var err error
		r, err = tx.Deactivate(ctx, c)
		return err
	})
	return r, err
}

// Tx is one transaction over a copy of the data.
type Tx struct {
	d        *data
	scope    licensing.Scope
	readOnly bool
	pending  []func() error
}

func (t *Tx) flush() error {
	ps := t.pending
	t.pending = nil
	for _, p := range ps {
		if err := p(); err != nil {
			return err
		}
	}
	return nil
}

// sees is row-level security: a brand-scoped transaction sees only that brand's rows.
func (t *Tx) sees(brandID string) bool {
	return t.scope == licensing.ScopeAll || string(t.scope) == brandID
}

func notFound() error { return &problem.Error{Kind: problem.NotFound, Detail: "not found"} }
func conflict() error { return &problem.Error{Kind: problem.Conflict, Detail: "already exists"} }

func (t *Tx) write() error {
	if err := t.flush(); err != nil {
		return err
	}
	if t.readOnly {
		return &problem.Error{Kind: problem.Internal, Detail: "write in a read-only transaction"}
	}
	return nil
}

func (t *Tx) checkBrand(brandID string) error {
	if !t.sees(brandID) {
		return &problem.Error{Kind: problem.Internal, Detail: "row-level security: row of another brand"}
	}
	return nil
}

// ---------------------------------------------------------------- brands

func (t *Tx) InsertBrand(_ context.Context, b licensing.BrandRow) error {
	if err := t.write(); err != nil {
		return err
	}
	for _, x := range t.d.brands {
		if x.Slug == b.Slug {
			return conflict()
		}
	}
	t.d.brands[b.ID] = b
	return nil
}

func (t *Tx) BrandBySlug(_ context.Context, slug string) (licensing.BrandRow, error) {
	if err := t.flush(); err != nil {
		return licensing.BrandRow{}, err
	}
	for _, b := range t.d.brands {
		if b.Slug == slug {
			return b, nil
		}
	}
	return licensing.BrandRow{}, notFound()
}

func sortedByID[T any](rows []T, id func(T) string, after string, limit int) []T {
	slices.SortFunc(rows, func(a, b T) int { return cmp.Compare(id(a), id(b)) })
	out := rows[:0]
	for _, r := range rows {
		if after == "" || id(r) > after {
			out = append(out, r)
		}
	}
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (t *Tx) ListBrands(_ context.Context, after string, limit int) ([]licensing.BrandRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return sortedByID(slices.Collect(maps.Values(t.d.brands)), func(b licensing.BrandRow) string { return b.ID }, after, limit), nil
}

func (t *Tx) SetBrandRateLimit(_ context.Context, id string, l *resource.RateLimit) error {
	if err := t.write(); err != nil {
		return err
	}
	b, ok := t.d.brands[id]
	if !ok {
		return notFound()
	}
	if l != nil {
		c := *l
		l = &c
	}
	b.RateLimit = l
	t.d.brands[id] = b
	return nil
}

func (t *Tx) CursorKey(context.Context) ([]byte, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return t.d.cursorKey, nil
}

func (t *Tx) InsertAPIKey(_ context.Context, k licensing.APIKeyRow) error {
	if err := t.write(); err != nil {
		return err
	}
	for _, x := range t.d.apiKeys {
		if x.Prefix == k.Prefix {
			return conflict()
		}
	}
	k.Scopes = slices.Clone(k.Scopes)
	t.d.apiKeys[k.ID] = k
	return nil
}

func (t *Tx) APIKeyByPrefix(_ context.Context, prefix string) (licensing.APIKeyRow, error) {
	if err := t.flush(); err != nil {
		return licensing.APIKeyRow{}, err
	}
	for _, k := range t.d.apiKeys {
		if k.Prefix == prefix && t.sees(k.BrandID) {
			k.BrandSlug = t.d.brands[k.BrandID].Slug
			k.BrandRateLimit = t.d.brands[k.BrandID].RateLimit
			return k, nil
		}
	}
	return licensing.APIKeyRow{}, notFound()
}

func (t *Tx) RevokeAPIKey(_ context.Context, brandID, id string, at time.Time) error {
	if err := t.write(); err != nil {
		return err
	}
	k, ok := t.d.apiKeys[id]
	if !ok || k.BrandID != brandID || !t.sees(brandID) {
		return notFound()
	}
	if k.RevokedAt == nil {
		k.RevokedAt = &at
	}
	t.d.apiKeys[id] = k
	return nil
}

// ---------------------------------------------------------------- products

func (t *Tx) InsertProduct(_ context.Context, p licensing.ProductRow) error {
	if err := t.write(); err != nil {
		return err
	}
	if err := t.checkBrand(p.BrandID); err != nil {
		return err
	}
	for _, x := range t.d.products {
		if x.BrandID == p.BrandID && x.Code == p.Code {
			return conflict()
		}
	}
	t.d.products[p.ID] = p
	return nil
}

func (t *Tx) ListProducts(_ context.Context, brandID, after string, limit int) ([]licensing.ProductRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	var rows []licensing.ProductRow
	for _, p := range t.d.products {
		if p.BrandID == brandID && t.sees(p.BrandID) {
			rows = append(rows, p)
		}
	}
	return sortedByID(rows, func(p licensing.ProductRow) string { return p.ID }, after, limit), nil
}

func (t *Tx) LockProduct(_ context.Context, brandID, code string) (licensing.ProductRow, error) {
	if err := t.write(); err != nil {
		return licensing.ProductRow{}, err
	}
	for _, p := range t.d.products {
		if p.BrandID == brandID && t.sees(p.BrandID) && p.Code == code {
			p.DevInstanceSuffixes = slices.Clone(p.DevInstanceSuffixes)
			return p, nil
		}
	}
	return licensing.ProductRow{}, notFound()
}

func (t *Tx) UpdateProduct(_ context.Context, p licensing.ProductRow) error {
	if err := t.write(); err != nil {
		return err
	}
	cur, ok := t.d.products[p.ID]
	if !ok || cur.BrandID != p.BrandID || !t.sees(p.BrandID) {
		return notFound()
	}
	if len(p.DevInstanceSuffixes) > licensing.MaxDevInstanceSuffixes {
		return errors.New("update product: violates products_dev_instance_suffixes")
	}
	cur.Name, cur.DevInstances, cur.DevInstanceSuffixes = p.Name, p.DevInstances, slices.Clone(p.DevInstanceSuffixes)
	t.d.products[p.ID] = cur
	return nil
}

func (t *Tx) ProductsByCode(_ context.Context, brandID string, codes []string) (map[string]licensing.ProductRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	out := map[string]licensing.ProductRow{}
	for _, p := range t.d.products {
		if p.BrandID == brandID && t.sees(p.BrandID) && slices.Contains(codes, p.Code) {
			out[p.Code] = p
		}
	}
	return out, nil
}

// ---------------------------------------------------------------- license keys and licenses

func (t *Tx) withBrandSlug(k licensing.KeyRow) licensing.KeyRow {
	k.BrandSlug = t.d.brands[k.BrandID].Slug
	return k
}

func (t *Tx) InsertLicenseKey(_ context.Context, k licensing.KeyRow) error {
	if err := t.write(); err != nil {
		return err
	}
	if err := t.checkBrand(k.BrandID); err != nil {
		return err
	}
	for _, x := range t.d.keys {
		if x.Key == k.Key {
			return conflict()
		}
	}
	k.BrandSlug = ""
	t.d.keys[k.ID] = k
	return nil
}

func (t *Tx) keyByString(brandID, key string) (licensing.KeyRow, bool) {
	for _, k := range t.d.keys {
		if k.Key == key && k.BrandID == brandID && t.sees(k.BrandID) {
			return t.withBrandSlug(k), true
		}
	}
	return licensing.KeyRow{}, false
}

func (t *Tx) KeyByString(_ context.Context, brandID, key string) (licensing.KeyRow, error) {
	if err := t.flush(); err != nil {
		return licensing.KeyRow{}, err
	}
	if k, ok := t.keyByString(brandID, key); ok {
		return k, nil
	}
	return licensing.KeyRow{}, notFound()
}

// LockKeyByString reads the key: transactions here are serial, so the lock is implied.
func (t *Tx) LockKeyByString(ctx context.Context, brandID, key string) (licensing.KeyRow, error) {
	if err := t.write(); err != nil {
		return licensing.KeyRow{}, err
	}
	return t.KeyByString(ctx, brandID, key)
}

func (t *Tx) LockLicense(ctx context.Context, brandID, licenseID string) (licensing.KeyRow, licensing.LicenseRow, error) {
	if err := t.write(); err != nil {
		return licensing.KeyRow{}, licensing.LicenseRow{}, err
	}
	l, err := t.LicenseByID(ctx, brandID, licenseID)
	if err != nil {
		return licensing.KeyRow{}, l, err
	}
	return t.withBrandSlug(t.d.keys[l.KeyID]), l, nil
}

// joined fills a license's joined columns.
func (t *Tx) joined(l licensing.LicenseRow) licensing.LicenseRow {
	l.Key = t.d.keys[l.KeyID].Key
	l.ProductCode = t.d.products[l.ProductID].Code
	l.BrandSlug = t.d.brands[l.BrandID].Slug
	return l
}

func (t *Tx) InsertLicense(_ context.Context, l licensing.LicenseRow) error {
	if err := t.write(); err != nil {
		return err
	}
	if err := t.checkBrand(l.BrandID); err != nil {
		return err
	}
	if _, ok := t.d.keys[l.KeyID]; !ok {
		return &problem.Error{Kind: problem.Internal, Detail: "foreign key: no such license key"}
	}
	if l.Status != license.StatusCancelled {
		for _, x := range t.d.licenses {
			if x.KeyID == l.KeyID && x.ProductID == l.ProductID && x.Status != license.StatusCancelled {
				return conflict()
			}
		}
	}
	l.Key, l.ProductCode, l.BrandSlug = "", "", ""
	t.d.licenses[l.ID] = l
	return nil
}

func (t *Tx) LicenseByID(_ context.Context, brandID, id string) (licensing.LicenseRow, error) {
	if err := t.flush(); err != nil {
		return licensing.LicenseRow{}, err
	}
	l, ok := t.d.licenses[id]
	if !ok || l.BrandID != brandID || !t.sees(l.BrandID) {
		return licensing.LicenseRow{}, notFound()
	}
	return t.joined(l), nil
}

func (t *Tx) licenses(match func(licensing.LicenseRow) bool) []licensing.LicenseRow {
	var out []licensing.LicenseRow
	for _, l := range t.d.licenses {
		if t.sees(l.BrandID) && match(l) {
			out = append(out, t.joined(l))
		}
	}
	slices.SortFunc(out, func(a, b licensing.LicenseRow) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (t *Tx) LicensesOfKeys(_ context.Context, brandID string, keyIDs []string) ([]licensing.LicenseRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return t.licenses(func(l licensing.LicenseRow) bool { return l.BrandID == brandID && slices.Contains(keyIDs, l.KeyID) }), nil
}

func (t *Tx) QueueLicenseUpdate(l licensing.LicenseRow) {
	t.pending = append(t.pending, func() error {
		cur, ok := t.d.licenses[l.ID]
		if !ok || cur.BrandID != l.BrandID || !t.sees(l.BrandID) {
			return notFound()
		}
		if l.SeatLimit != nil && l.SeatsUsed > *l.SeatLimit || l.SeatsUsed < 0 {
			return &problem.Error{Kind: problem.Internal, Detail: "check constraint: seats_used out of range"}
		}
		cur.Status, cur.ExpiresAt, cur.SeatLimit, cur.SeatsUsed, cur.UpdatedAt = l.Status, l.ExpiresAt, l.SeatLimit, l.SeatsUsed, l.UpdatedAt
		t.d.licenses[l.ID] = cur
		return nil
	})
}

func pageAfter(rows []licensing.LicenseRow, after string, limit int) []licensing.LicenseRow {
	return sortedByID(rows, func(l licensing.LicenseRow) string { return l.ID }, after, limit)
}

func (t *Tx) LicensesByEmail(_ context.Context, brandID, email, after string, limit int) ([]licensing.LicenseRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return pageAfter(t.licenses(func(l licensing.LicenseRow) bool {
		return l.BrandID == brandID && t.d.keys[l.KeyID].CustomerEmail == email
	}), after, limit), nil
}

func (t *Tx) CustomerLicenses(_ context.Context, email, after string, limit int) ([]licensing.LicenseRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return pageAfter(t.licenses(func(l licensing.LicenseRow) bool { return t.d.keys[l.KeyID].CustomerEmail == email }), after, limit), nil
}

func (t *Tx) activationsOf(brandID, licenseID string) []licensing.ActivationRow {
	var out []licensing.ActivationRow
	for _, a := range t.d.activations {
		if a.LicenseID == licenseID && a.BrandID == brandID && t.sees(a.BrandID) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b licensing.ActivationRow) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (t *Tx) RecentActivations(_ context.Context, brandID string, licenseIDs []string, perLicense int) ([]licensing.ActivationRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	ids := slices.Sorted(slices.Values(licenseIDs))
	var out []licensing.ActivationRow
	for _, id := range slices.Compact(ids) {
		as := t.activationsOf(brandID, id)
		out = append(out, as[max(len(as)-perLicense, 0):]...)
	}
	return out, nil
}

func (t *Tx) ListActivations(_ context.Context, brandID, licenseID, after string, limit int) ([]licensing.ActivationRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return sortedByID(t.activationsOf(brandID, licenseID), func(a licensing.ActivationRow) string { return a.ID }, after, limit), nil
}

// ---------------------------------------------------------------- seats: the rules of
// license_activate and license_deactivate (migrations/00002_seat_statements.sql)

func (t *Tx) productLicense(k licensing.KeyRow, product string, match func(licensing.LicenseRow) bool) (licensing.LicenseRow, bool) {
	// the live license first, else the newest cancelled one
	var best licensing.LicenseRow
	found := false
	for _, l := range t.licenses(func(l licensing.LicenseRow) bool { return l.KeyID == k.ID && l.BrandID == k.BrandID }) {
		if l.ProductCode != product || (match != nil && !match(l)) {
			continue
		}
		better := !found || liveFirstNewest(l, best) < 0
		if better {
			best, found = l, true
		}
	}
	return best, found
}

// liveFirstNewest orders licenses as the statements' ORDER BY status = 'cancelled', id DESC.
func liveFirstNewest(a, b licensing.LicenseRow) int {
	ca, cb := a.Status == license.StatusCancelled, b.Status == license.StatusCancelled
	if ca != cb {
		if cb {
			return -1
		}
		return 1
	}
	return -cmp.Compare(a.ID, b.ID)
}

// devInstances counts the license's development activations (licenses.dev_instances_used).
func (t *Tx) devInstances(brandID, licenseID string) int {
	n := 0
	for _, a := range t.activationsOf(brandID, licenseID) {
		if a.Development {
			n++
		}
	}
	return n
}

func (t *Tx) activationOf(brandID, licenseID, instance string) (licensing.ActivationRow, bool) {
	for _, a := range t.activationsOf(brandID, licenseID) {
		if a.Instance == instance {
			return a, true
		}
	}
	return licensing.ActivationRow{}, false
}

func seatResult(o licensing.SeatOutcome, k licensing.KeyRow, l licensing.LicenseRow, a licensing.ActivationRow) licensing.SeatResult {
	return licensing.SeatResult{Outcome: o, Version: k.Version, License: l, Activation: a}
}

func (t *Tx) Activate(_ context.Context, c licensing.ActivateCmd) (licensing.SeatResult, error) {
	if err := t.write(); err != nil {
		return licensing.SeatResult{}, err
	}
	t.scope = licensing.BrandScope(c.BrandID) // as the statement sets app.brand_id
	k, ok := t.keyByString(c.BrandID, c.Key)
	if !ok {
		return licensing.SeatResult{Outcome: licensing.SeatLicenseNotFound}, nil
	}
	l, ok := t.productLicense(k, c.Product, nil)
	if !ok {
		return licensing.SeatResult{Outcome: licensing.SeatLicenseNotFound}, nil
	}
	switch license.EffectiveStatus(l.Status, l.ExpiresAt, c.Now) {
	case license.StatusSuspended:
		return seatResult(licensing.SeatSuspended, k, l, licensing.ActivationRow{}), nil
	case license.StatusCancelled:
		return seatResult(licensing.SeatCancelled, k, l, licensing.ActivationRow{}), nil
	case license.StatusExpired:
		return seatResult(licensing.SeatExpired, k, l, licensing.ActivationRow{}), nil
	}
	if a, ok := t.activationOf(c.BrandID, l.ID, c.Instance); ok {
		return seatResult(licensing.SeatExisting, k, l, a), nil
	}
	// the statement's classification: the fixed rules' verdict, or the host under one of
	// the product's suffixes, when the product allows development instances
	p := t.d.products[l.ProductID]
	dev := p.DevInstances && (c.DevBuiltin || slices.ContainsFunc(p.DevInstanceSuffixes, func(s string) bool {
		return license.UnderSuffix(c.DevHost, s)
	}))
	switch {
	case dev && t.devInstances(c.BrandID, l.ID) >= licensing.MaxDevInstances:
		return seatResult(licensing.SeatDevLimitReached, k, l, licensing.ActivationRow{}), nil
	case !dev && l.SeatLimit != nil && l.SeatsUsed >= *l.SeatLimit:
		return seatResult(licensing.SeatLimitReached, k, l, licensing.ActivationRow{}), nil
	}
	for _, a := range t.d.activations {
		if a.LicenseID == l.ID && a.Instance == c.Instance {
			return licensing.SeatResult{}, conflict()
		}
	}
	a := licensing.ActivationRow{ID: c.ActivationID, BrandID: c.BrandID, LicenseID: l.ID, Instance: c.Instance,
		ActivatedAt: c.Now, Version: k.Version + 1, Development: dev}
	t.d.activations[a.ID] = a
	before := l
	if !dev {
		l.SeatsUsed++
	}
	l.UpdatedAt = c.Now
	t.storeLicense(l)
	k = t.seatChange(k, c.Brand, event.ActivationCreated, "license.activated", before, l, a, c.AuditID, c.Now, c.Actor, c.RequestID)
	return seatResult(licensing.SeatActivated, k, l, a), nil
}

func (t *Tx) storeLicense(l licensing.LicenseRow) {
	cur := t.d.licenses[l.ID]
	cur.SeatsUsed, cur.UpdatedAt = l.SeatsUsed, l.UpdatedAt
	t.d.licenses[l.ID] = cur
}

func (t *Tx) Deactivate(_ context.Context, c licensing.DeactivateCmd) (licensing.SeatResult, error) {
	if err := t.write(); err != nil {
		return licensing.SeatResult{}, err
	}
	t.scope = licensing.BrandScope(c.BrandID)
	var (
		k  licensing.KeyRow
		l  licensing.LicenseRow
		a  licensing.ActivationRow
		ok bool
	)
	if c.LicenseID != "" {
		l0, found := t.d.licenses[c.LicenseID]
		if !found || l0.BrandID != c.BrandID {
			return licensing.SeatResult{Outcome: licensing.SeatLicenseNotFound}, nil
		}
		l = t.joined(l0)
		k = t.withBrandSlug(t.d.keys[l.KeyID])
		a, ok = t.d.activations[c.ActivationID]
		if !ok || a.LicenseID != l.ID || a.BrandID != c.BrandID {
			return licensing.SeatResult{Outcome: licensing.SeatActivationNotFound}, nil
		}
	} else {
		if k, ok = t.keyByString(c.BrandID, c.Key); !ok {
			return licensing.SeatResult{Outcome: licensing.SeatActivationNotFound}, nil
		}
		l, ok = t.productLicense(k, c.Product, func(l licensing.LicenseRow) bool {
			_, held := t.activationOf(c.BrandID, l.ID, c.Instance)
			return held
		})
		if !ok {
			return licensing.SeatResult{Outcome: licensing.SeatActivationNotFound}, nil
		}
		a, _ = t.activationOf(c.BrandID, l.ID, c.Instance)
	}
	delete(t.d.activations, a.ID)
	before := l
	if !a.Development {
		l.SeatsUsed--
	}
	l.UpdatedAt = c.Now
	t.storeLicense(l)
	k = t.seatChange(k, c.Brand, event.ActivationDeleted, "license.deactivated", before, l, a, c.AuditID, c.Now, c.Actor, c.RequestID)
	return seatResult(licensing.SeatDeactivated, k, l, a), nil
}

// seatChange is the statements' version bump, audit event and outbox event.
func (t *Tx) seatChange(k licensing.KeyRow, brand, typ, action string, before, after licensing.LicenseRow,
	a licensing.ActivationRow, auditID string, now time.Time, actor, requestID string) licensing.KeyRow {
	k.Version++
	stored := t.d.keys[k.ID]
	stored.Version, stored.UpdatedAt = k.Version, now
	t.d.keys[k.ID] = stored
	act := map[string]any{"id": a.ID, "license_id": a.LicenseID, "instance": a.Instance, "activated_at": a.ActivatedAt.UTC(),
		"development": a.Development}
	t.d.audit = append(t.d.audit, licensing.AuditRow{ID: auditID, BrandID: k.BrandID, KeyID: k.ID, LicenseID: after.ID,
		Action: action, Actor: actor, Request: requestID, At: now, Before: resourceDoc(before, now),
		After: map[string]any{"license": resourceDoc(after, now), "activation": act}})
	ch := event.Change{Type: typ, BrandID: k.BrandID, Brand: brand, KeyID: k.ID, LicenseKey: k.Key, Version: k.Version,
		License: &event.License{ID: after.ID, Product: after.ProductCode, Status: after.Status, ExpiresAt: after.ExpiresAt,
			SeatLimit: after.SeatLimit, SeatsUsed: after.SeatsUsed, CreatedAt: after.CreatedAt, UpdatedAt: after.UpdatedAt},
		Activation: &event.Activation{ID: a.ID, LicenseID: a.LicenseID, Instance: a.Instance, ActivatedAt: a.ActivatedAt,
			Version: a.Version, Development: a.Development},
		CommitTime: now}
	t.d.outbox = append(t.d.outbox, OutboxRow{KeyID: k.ID, Version: k.Version, Subject: event.Subject(k.BrandID, k.ID), Change: ch})
	return k
}

// resourceDoc is what license_resource_json writes.
func resourceDoc(l licensing.LicenseRow, now time.Time) map[string]any {
	var rem any
	if l.SeatLimit != nil {
		rem = max(*l.SeatLimit-l.SeatsUsed, 0)
	}
	return map[string]any{"id": l.ID, "license_key": l.Key, "product": l.ProductCode,
		"status": license.EffectiveStatus(l.Status, l.ExpiresAt, now), "expires_at": l.ExpiresAt,
		"seat_limit": l.SeatLimit, "seats_used": l.SeatsUsed, "seats_remaining": rem,
		"created_at": l.CreatedAt, "updated_at": l.UpdatedAt}
}

// ---------------------------------------------------------------- status reads

func (t *Tx) keyBySlug(brand, key string) (licensing.KeyRow, bool) {
	for _, b := range t.d.brands {
		if b.Slug == brand {
			return t.keyByString(b.ID, key)
		}
	}
	return licensing.KeyRow{}, false
}

func (t *Tx) KeyState(_ context.Context, brand, key string) (license.State, error) {
	if err := t.flush(); err != nil {
		return license.State{}, err
	}
	k, ok := t.keyBySlug(brand, key)
	if !ok {
		return license.State{}, notFound()
	}
	st := license.State{BrandID: k.BrandID, Brand: brand, KeyID: k.ID, Key: k.Key, Version: k.Version, Licenses: []license.LicenseState{}}
	for _, l := range t.licenses(func(l licensing.LicenseRow) bool { return l.KeyID == k.ID }) {
		st.Licenses = append(st.Licenses, license.LicenseState{ID: l.ID, Product: l.ProductCode, Status: l.Status,
			ExpiresAt: l.ExpiresAt, SeatLimit: l.SeatLimit, SeatsUsed: l.SeatsUsed})
	}
	return st, nil
}

func (t *Tx) InstanceState(_ context.Context, brand, key, instance string) (license.Instance, error) {
	if err := t.flush(); err != nil {
		return license.Instance{}, err
	}
	k, ok := t.keyBySlug(brand, key)
	if !ok {
		return license.Instance{}, notFound()
	}
	in := license.Instance{Instance: instance, AsOf: k.Version}
	for _, l := range t.licenses(func(l licensing.LicenseRow) bool { return l.KeyID == k.ID }) {
		if a, ok := t.activationOf(k.BrandID, l.ID, instance); ok {
			in.Activations = append(in.Activations, license.InstanceActivation{LicenseID: l.ID, Development: a.Development})
			in.Changed = max(in.Changed, a.Version)
		}
	}
	return in, nil
}

// ---------------------------------------------------------------- audit and outbox

func (t *Tx) InsertAudit(_ context.Context, a licensing.AuditRow) error {
	if err := t.write(); err != nil {
		return err
	}
	if err := t.checkBrand(a.BrandID); err != nil {
		return err
	}
	if _, err := json.Marshal([]any{a.Before, a.After}); err != nil {
		return err
	}
	t.d.audit = append(t.d.audit, a)
	return nil
}

func (t *Tx) QueueChange(c licensing.ChangeRecord) {
	t.pending = append(t.pending, func() error {
		k, ok := t.d.keys[c.KeyID]
		if !ok || !t.sees(k.BrandID) {
			return notFound()
		}
		k.Version = c.NewVersion
		t.d.keys[c.KeyID] = k
		if c.Audit != nil {
			t.d.audit = append(t.d.audit, *c.Audit)
		}
		var ch event.Change
		if err := json.Unmarshal(c.Payload, &ch); err != nil {
			return err
		}
		t.d.outbox = append(t.d.outbox, OutboxRow{KeyID: c.KeyID, Version: c.NewVersion, Subject: c.Subject, Change: ch})
		return nil
	})
}

func (t *Tx) ListEvents(_ context.Context, brandID, licenseID, after string, limit int) ([]licensing.AuditRow, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	var rows []licensing.AuditRow
	for _, a := range t.d.audit {
		if a.BrandID == brandID && a.LicenseID == licenseID && t.sees(a.BrandID) {
			// as stored: JSON, read back as raw JSON like the Postgres store
			a.Before, a.After = raw(a.Before), raw(a.After)
			rows = append(rows, a)
		}
	}
	return sortedByID(rows, func(a licensing.AuditRow) string { return a.ID }, after, limit), nil
}

func raw(v any) any {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return json.RawMessage(b)
}

// ---------------------------------------------------------------- idempotency

func (t *Tx) ClaimIdempotency(_ context.Context, r licensing.IdemRow, expiredBefore time.Time) (licensing.IdemRow, bool, error) {
	if err := t.write(); err != nil {
		return licensing.IdemRow{}, false, err
	}
	if err := t.checkBrand(r.BrandID); err != nil {
		return licensing.IdemRow{}, false, err
	}
	id := [2]string{r.BrandID, r.Key}
	if ex, ok := t.d.idem[id]; ok && !ex.CreatedAt.Before(expiredBefore) {
		return ex, false, nil
	}
	r.State, r.Outcome = licensing.IdemRunning, licensing.StoredOutcome{}
	t.d.idem[id] = r
	return r, true, nil
}

func (t *Tx) TakeOverIdempotency(_ context.Context, brandID, key string, fp []byte, staleBefore, now time.Time, token string) (bool, error) {
	if err := t.write(); err != nil {
		return false, err
	}
	id := [2]string{brandID, key}
	ex, ok := t.d.idem[id]
	if !ok || string(ex.Fingerprint) != string(fp) || ex.State != licensing.IdemRunning || !ex.RenewedAt.Before(staleBefore) {
		return false, nil
	}
	ex.Token, ex.RenewedAt = token, now
	t.d.idem[id] = ex
	return true, nil
}

func (t *Tx) RenewIdempotency(_ context.Context, brandID, key, token string, now time.Time) (bool, error) {
	if err := t.write(); err != nil {
		return false, err
	}
	id := [2]string{brandID, key}
	ex, ok := t.d.idem[id]
	if !ok || ex.State != licensing.IdemRunning || ex.Token != token {
		return false, nil
	}
	ex.RenewedAt = now
	t.d.idem[id] = ex
	return true, nil
}

func (t *Tx) CompleteIdempotency(_ context.Context, brandID, key, token string, o licensing.StoredOutcome) error {
	if err := t.write(); err != nil {
		return err
	}
	id := [2]string{brandID, key}
	ex, ok := t.d.idem[id]
	if !ok || ex.State != licensing.IdemRunning || ex.Token != token {
		return problem.New(problem.IdempotencyInProgress, "this request's Idempotency-Key was taken over by a retry")
	}
	ex.State, ex.Outcome = licensing.IdemDone, o
	t.d.idem[id] = ex
	return nil
}

func (t *Tx) ReleaseIdempotency(_ context.Context, brandID, key, token string) error {
	if err := t.write(); err != nil {
		return err
	}
	id := [2]string{brandID, key}
	if ex, ok := t.d.idem[id]; ok && ex.State == licensing.IdemRunning && ex.Token == token {
		delete(t.d.idem, id)
	}
	return nil
}

func (t *Tx) DeleteIdempotencyBefore(_ context.Context, before time.Time) (int64, error) {
	if err := t.write(); err != nil {
		return 0, err
	}
	var n int64
	for id, r := range t.d.idem {
		if r.CreatedAt.Before(before) {
			delete(t.d.idem, id)
			n++
		}
	}
	return n, nil
}

// Brand returns the brand id of slug ("" when none): tests use it to build principals.
func (s *Store) Brand(slug string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.d.brands {
		if strings.EqualFold(b.Slug, slug) {
			return b.ID
		}
	}
	return ""
}
