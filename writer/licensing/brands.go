package licensing

import (
	"context"
	"crypto/subtle"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/licensing/licensing/shared/apikey"
	"github.com/licensing/licensing/shared/license"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// BrandTx is what brands, their credentials and their products need of a transaction.
// Reads return not_found for a missing row; inserts return conflict on a duplicate slug,
// prefix or product code.
type BrandTx interface {
	InsertBrand(ctx context.Context, b BrandRow) error
	BrandBySlug(ctx context.Context, slug string) (BrandRow, error)
	ListBrands(ctx context.Context, after string, limit int) ([]BrandRow, error)
	// SetBrandRateLimit sets (nil: clears) the brand's own rate limit.
	SetBrandRateLimit(ctx context.Context, id string, l *resource.RateLimit) error
	InsertAPIKey(ctx context.Context, k APIKeyRow) error
	// APIKeyByPrefix returns the key (revoked or not) with its brand's slug.
	APIKeyByPrefix(ctx context.Context, prefix string) (APIKeyRow, error)
	// RevokeAPIKey sets revoked_at unless already set; not_found when the brand has no
	// such key.
	RevokeAPIKey(ctx context.Context, brandID, id string, at time.Time) error

	InsertProduct(ctx context.Context, p ProductRow) error
	// LockProduct reads the brand's product by code for update; not_found when absent.
	LockProduct(ctx context.Context, brandID, code string) (ProductRow, error)
	// UpdateProduct writes a product's name and development-instance settings.
	UpdateProduct(ctx context.Context, p ProductRow) error
	ListProducts(ctx context.Context, brandID, after string, limit int) ([]ProductRow, error)
	// ProductsByCode returns the brand's products among codes, by code (missing ones absent).
	ProductsByCode(ctx context.Context, brandID string, codes []string) (map[string]ProductRow, error)
	AuditTx
}

// MaxNameLength bounds brand and product names, in characters.
const MaxNameLength = 200

func validName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > MaxNameLength {
		return "", problem.Unacceptable(field, "must be 1 to %d characters", MaxNameLength)
	}
	return name, nil
}

// CreateBrand creates a brand and its first API key (the key's secret is returned once).
func (s *Service) CreateBrand(ctx context.Context, m Meta, slug, name string) (resource.BrandCreated, error) {
	if !license.ValidSlug(slug) {
		return resource.BrandCreated{}, problem.Unacceptable("slug", "must match ^[a-z0-9][a-z0-9-]{1,62}$")
	}
	name, err := validName("name", name)
	if err != nil {
		return resource.BrandCreated{}, err
	}
	var out resource.BrandCreated
	err = s.store.Tx(ctx, ScopeAll, func(tx Tx) error {
		b := BrandRow{ID: newID(), Slug: slug, Name: name, CreatedAt: s.Now()}
		if err := tx.InsertBrand(ctx, b); err != nil {
			if problem.Is(err, problem.Conflict) {
				return problem.New(problem.Conflict, "brand %q already exists", slug)
			}
			return err
		}
		k, err := s.issueKey(ctx, tx, b, nil)
		if err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: b.ID, Action: "brand.created",
			Actor: m.Actor, Request: m.RequestID, At: b.CreatedAt, After: brandResource(b)}); err != nil {
			return err
		}
		out = resource.BrandCreated{Brand: brandResource(b), APIKey: k}
		return nil
	})
	return out, err
}

// ListBrands lists brands (operator).
func (s *Service) ListBrands(ctx context.Context, page Page) (resource.List[resource.Brand], error) {
	var out resource.List[resource.Brand]
	c, after, err := s.openCursor(ctx, "brands", page.Cursor)
	if err != nil {
		return out, err
	}
	err = s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		rows, err := tx.ListBrands(ctx, after, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(c, "brands", rows, page.Limit, brandResource, func(b BrandRow) string { return b.ID })
		return nil
	})
	return out, err
}

// MaxRateLimit bounds a brand's own limit (per second and burst).
const MaxRateLimit = 1_000_000

// SetBrandRateLimit sets the brand's own limit of requests per API key (nil: back to the
// deployment's default). The writers read it with every authentication, so it applies to
// the next request.
func (s *Service) SetBrandRateLimit(ctx context.Context, m Meta, slug string, l *resource.RateLimit) (resource.Brand, error) {
	if l != nil {
		if l.PerSecond < 1 || l.PerSecond > MaxRateLimit {
			return resource.Brand{}, problem.Unacceptable("rate_limit.per_second", "must be from 1 to %d", MaxRateLimit)
		}
		if l.Burst < 1 || l.Burst > MaxRateLimit {
			return resource.Brand{}, problem.Unacceptable("rate_limit.burst", "must be from 1 to %d", MaxRateLimit)
		}
	}
	var out resource.Brand
	err := s.store.Tx(ctx, ScopeAll, func(tx Tx) error {
		b, err := tx.BrandBySlug(ctx, slug)
		if err != nil {
			return notFound(err, problem.NotFound, "brand not found")
		}
		before := brandResource(b)
		if err := tx.SetBrandRateLimit(ctx, b.ID, l); err != nil {
			return err
		}
		b.RateLimit = l
		out = brandResource(b)
		return tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: b.ID, Action: "brand.updated",
			Actor: m.Actor, Request: m.RequestID, At: s.Now(), Before: before, After: out})
	})
	return out, err
}

// CreateAPIKey issues a new API key for the brand slug.
func (s *Service) CreateAPIKey(ctx context.Context, m Meta, slug string, scopes []string) (resource.APIKey, error) {
	for i, sc := range scopes {
		if !slices.Contains(KnownScopes, sc) {
			return resource.APIKey{}, problem.Unacceptable(fmt.Sprintf("scopes[%d]", i), "unknown scope; known: %s", strings.Join(KnownScopes, ", "))
		}
	}
	var out resource.APIKey
	err := s.store.Tx(ctx, ScopeAll, func(tx Tx) error {
		b, err := tx.BrandBySlug(ctx, slug)
		if err != nil {
			return notFound(err, problem.NotFound, "brand not found")
		}
		out, err = s.issueKey(ctx, tx, b, scopes)
		if err != nil {
			return err
		}
		return tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: b.ID, Action: "api_key.created",
			Actor: m.Actor, Request: m.RequestID, At: s.Now(), After: map[string]any{"id": out.ID, "prefix": out.Prefix, "scopes": out.Scopes}})
	})
	return out, err
}

// RevokeAPIKey revokes a brand API key; it stops authenticating at once.
func (s *Service) RevokeAPIKey(ctx context.Context, m Meta, slug, id string) error {
	if !validID(id) {
		return problem.New(problem.NotFound, "api key not found")
	}
	return s.store.Tx(ctx, ScopeAll, func(tx Tx) error {
		b, err := tx.BrandBySlug(ctx, slug)
		if err != nil {
			return notFound(err, problem.NotFound, "brand not found")
		}
		if err := tx.RevokeAPIKey(ctx, b.ID, id, s.Now()); err != nil {
			return notFound(err, problem.NotFound, "api key not found")
		}
		return tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: b.ID, Action: "api_key.revoked",
			Actor: m.Actor, Request: m.RequestID, At: s.Now(), After: map[string]any{"id": id}})
	})
}

func (s *Service) issueKey(ctx context.Context, tx BrandTx, b BrandRow, scopes []string) (resource.APIKey, error) {
	k := apikey.New()
	if scopes == nil {
		scopes = []string{}
	}
	row := APIKeyRow{ID: newID(), BrandID: b.ID, Prefix: k.Prefix, SecretHash: k.Hash, Scopes: scopes, CreatedAt: s.Now()}
	if err := tx.InsertAPIKey(ctx, row); err != nil {
		return resource.APIKey{}, err
	}
	return resource.APIKey{ID: row.ID, Prefix: k.Prefix, Secret: k.Token, Scopes: scopes}, nil
}

// Authenticate resolves a bearer token. The operator token is compared in constant time;
// API keys are looked up by their public prefix and their secret hash compared in
// constant time. Unknown, malformed and revoked credentials are all unauthorized.
func (s *Service) Authenticate(ctx context.Context, token, operatorToken string) (Principal, error) {
	unauth := problem.New(problem.Unauthorized, "missing, invalid or revoked credentials")
	if token == "" {
		return Principal{}, unauth
	}
	if operatorToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(operatorToken)) == 1 {
		return Principal{Operator: true}, nil
	}
	prefix, secret, ok := apikey.Parse(token)
	if !ok {
		return Principal{}, unauth
	}
	var k APIKeyRow
	err := s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		var err error
		k, err = tx.APIKeyByPrefix(ctx, prefix)
		return err
	})
	if err != nil {
		if problem.Is(err, problem.NotFound) {
			return Principal{}, unauth
		}
		return Principal{}, err
	}
	if !apikey.Matches(secret, k.SecretHash) || k.RevokedAt != nil {
		return Principal{}, unauth
	}
	return Principal{BrandID: k.BrandID, BrandSlug: k.BrandSlug, KeyID: k.ID, Scopes: k.Scopes, RateLimit: k.BrandRateLimit}, nil
}

// brand resolves a public slug, caching it (brands are never deleted or renamed). An
// unknown slug is not_found.
func (s *Service) brand(ctx context.Context, slug string) (BrandRow, error) {
	s.brandMu.RLock()
	b, ok := s.brandCache[slug]
	s.brandMu.RUnlock()
	if ok {
		return b, nil
	}
	if !license.ValidSlug(slug) {
		return BrandRow{}, problem.New(problem.NotFound, "brand not found")
	}
	err := s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
		var err error
		b, err = tx.BrandBySlug(ctx, slug)
		return err
	})
	if err != nil {
		return BrandRow{}, err
	}
	s.brandMu.Lock()
	s.brandCache[slug] = b
	s.brandMu.Unlock()
	return b, nil
}

// ProductSpec is a new product: its code and name, and its development-instance
// settings (API.md v1.1): DevInstances nil means the default, true.
type ProductSpec struct {
	Code, Name          string
	DevInstances        *bool
	DevInstanceSuffixes []string
}

// ProductPatch changes a product; nil fields are left as they are.
type ProductPatch struct {
	Name                *string
	DevInstances        *bool
	DevInstanceSuffixes *[]string
}

// MaxDevInstanceSuffixes bounds a product's dev_instance_suffixes (the schema holds it too).
const MaxDevInstanceSuffixes = 50

// devSuffixes validates and normalizes a suffix list, dropping duplicates.
func devSuffixes(in []string) ([]string, error) {
	if len(in) > MaxDevInstanceSuffixes {
		return nil, problem.Unacceptable("dev_instance_suffixes", "must have at most %d entries", MaxDevInstanceSuffixes)
	}
	out := make([]string, 0, len(in))
	for i, s := range in {
		n, err := license.NormalizeDevSuffix(s)
		if err != nil {
			return nil, problem.Unacceptable(fmt.Sprintf("dev_instance_suffixes[%d]", i), "%v", err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// CreateProduct adds a product to the brand; 409 conflict when the code exists.
func (s *Service) CreateProduct(ctx context.Context, m Meta, p Principal, spec ProductSpec) (resource.Product, error) {
	code := spec.Code
	if !license.ValidSlug(code) {
		return resource.Product{}, problem.Unacceptable("code", "must match ^[a-z0-9][a-z0-9-]{1,62}$")
	}
	name, err := validName("name", spec.Name)
	if err != nil {
		return resource.Product{}, err
	}
	sfx, err := devSuffixes(spec.DevInstanceSuffixes)
	if err != nil {
		return resource.Product{}, err
	}
	dev := spec.DevInstances == nil || *spec.DevInstances
	return idempotent(s, ctx, m, p, func(tx Tx) (resource.Product, error) {
		row := ProductRow{ID: newID(), BrandID: p.BrandID, Code: code, Name: name, DevInstances: dev,
			DevInstanceSuffixes: sfx, CreatedAt: s.Now()}
		if err := tx.InsertProduct(ctx, row); err != nil {
			if problem.Is(err, problem.Conflict) {
				return resource.Product{}, problem.New(problem.Conflict, "product %q already exists", code)
			}
			return resource.Product{}, err
		}
		out := productResource(row)
		err := tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, Action: "product.created",
			Actor: m.Actor, Request: m.RequestID, At: row.CreatedAt, After: out})
		return out, err
	})
}

// UpdateProduct changes a product's name or development-instance settings (PATCH
// /v1/products/{code}). The settings apply to new activations only: an activation keeps
// the classification it was made with. A patch that changes nothing writes nothing.
func (s *Service) UpdateProduct(ctx context.Context, m Meta, p Principal, code string, patch ProductPatch) (resource.Product, error) {
	var out resource.Product
	if !license.ValidSlug(code) {
		return out, problem.New(problem.NotFound, "product not found")
	}
	if patch.Name == nil && patch.DevInstances == nil && patch.DevInstanceSuffixes == nil {
		return out, problem.Invalid("body", "nothing to change: give name, dev_instances or dev_instance_suffixes")
	}
	if patch.Name != nil {
		n, err := validName("name", *patch.Name)
		if err != nil {
			return out, err
		}
		patch.Name = &n
	}
	if patch.DevInstanceSuffixes != nil {
		sfx, err := devSuffixes(*patch.DevInstanceSuffixes)
		if err != nil {
			return out, err
		}
		patch.DevInstanceSuffixes = &sfx
	}
	err := s.store.Tx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		row, err := tx.LockProduct(ctx, p.BrandID, code)
		if err != nil {
			return notFound(err, problem.NotFound, "product not found")
		}
		before := productResource(row)
		if patch.Name != nil {
			row.Name = *patch.Name
		}
		if patch.DevInstances != nil {
			row.DevInstances = *patch.DevInstances
		}
		if patch.DevInstanceSuffixes != nil {
			row.DevInstanceSuffixes = *patch.DevInstanceSuffixes
		}
		out = productResource(row)
		if reflect.DeepEqual(before, out) {
			return nil
		}
		if err := tx.UpdateProduct(ctx, row); err != nil {
			return err
		}
		return tx.InsertAudit(ctx, AuditRow{ID: newID(), BrandID: p.BrandID, Action: "product.updated",
			Actor: m.Actor, Request: m.RequestID, At: s.Now(), Before: before, After: out})
	})
	return out, err
}

// ListProducts lists the brand's products.
func (s *Service) ListProducts(ctx context.Context, p Principal, page Page) (resource.List[resource.Product], error) {
	var out resource.List[resource.Product]
	list := "products:" + p.BrandID
	c, after, err := s.openCursor(ctx, list, page.Cursor)
	if err != nil {
		return out, err
	}
	err = s.store.ReadTx(ctx, BrandScope(p.BrandID), func(tx Tx) error {
		rows, err := tx.ListProducts(ctx, p.BrandID, after, page.Limit+1)
		if err != nil {
			return err
		}
		out = pageOf(c, list, rows, page.Limit, productResource, func(r ProductRow) string { return r.ID })
		return nil
	})
	return out, err
}
