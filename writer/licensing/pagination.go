package licensing

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/licensing/licensing/internal/sealbox"
	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// Page is a keyset page request.
type Page struct {
	Limit int
	// Cursor is the opaque cursor the previous page returned ("" for the first page).
	Cursor string
}

// DefaultLimit and MaxLimit bound list pages.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ParsePage validates the limit and cursor query values (the cursor is opened by the list
// it belongs to).
func ParsePage(limit, cursor string) (Page, error) {
	p := Page{Limit: DefaultLimit}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || strconv.Itoa(n) != limit || n < 1 || n > MaxLimit {
			return p, problem.Invalid("limit", "must be an integer from 1 to %d", MaxLimit)
		}
		p.Limit = n
	}
	if len(cursor) > 512 {
		return p, errBadCursor
	}
	p.Cursor = cursor
	return p, nil
}

var errBadCursor = problem.Invalid("cursor", "is not a cursor this API returned for this list")

// cursors seal keyset positions (the id of a page's last row) with AES-GCM
// (internal/sealbox): a cursor reveals nothing (not the id of a masked entry of another
// brand in a cross-brand list), cannot be forged, and opens only for the list and caller
// it was made for (the list is the additional data). Every writer uses the same key, made
// once per database (CursorTx).
type cursors struct{ box *sealbox.Box }

func newCursors(key []byte) (*cursors, error) {
	box, err := sealbox.New(key)
	if err != nil {
		return nil, err
	}
	return &cursors{box: box}, nil
}

func (c *cursors) seal(list, id string) string {
	return base64.RawURLEncoding.EncodeToString(c.box.Seal([]byte(id), []byte(list)))
}

// open returns the id sealed in cursor ("" for no cursor).
func (c *cursors) open(list, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", errBadCursor
	}
	id, err := c.box.Open(b, []byte(list))
	if err != nil || !validID(string(id)) {
		return "", errBadCursor
	}
	return string(id), nil
}

// CursorTx reads the key cursors are sealed with.
type CursorTx interface {
	// CursorKey is the deployment's 32-byte cursor key (one per database, so every
	// writer opens the cursors every other one made).
	CursorKey(ctx context.Context) ([]byte, error)
}

// openCursor returns the cursors of the deployment (read once from the store) and the id
// sealed in cursor for list ("" for no cursor).
func (s *Service) openCursor(ctx context.Context, list, cursor string) (*cursors, string, error) {
	c := s.cursors.Load()
	if c == nil {
		var key []byte
		err := s.store.ReadTx(ctx, ScopeAll, func(tx Tx) error {
			var err error
			key, err = tx.CursorKey(ctx)
			return err
		})
		if err != nil {
			return nil, "", err
		}
		if c, err = newCursors(key); err != nil {
			return nil, "", fmt.Errorf("cursor key: %w", err)
		}
		s.cursors.CompareAndSwap(nil, c)
		c = s.cursors.Load()
	}
	after, err := c.open(list, cursor)
	return c, after, err
}

// pageOf turns limit+1 rows into a page: the extra row only says that there is a next
// page, whose cursor seals the id of the page's last row for list.
func pageOf[R, T any](c *cursors, list string, rows []R, limit int, conv func(R) T, id func(R) string) resource.List[T] {
	out := resource.List[T]{Data: make([]T, 0, min(len(rows), limit))}
	for i, r := range rows {
		if i == limit {
			next := c.seal(list, id(rows[i-1]))
			out.NextCursor = &next
			break
		}
		out.Data = append(out.Data, conv(r))
	}
	return out
}
