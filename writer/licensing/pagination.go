package licensing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"

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

// cursors seal keyset positions (the id of a page's last row) with AES-GCM: a cursor
// reveals nothing (not the id of a masked entry of another brand in a cross-brand list),
// cannot be forged, and opens only for the list and caller it was made for (the list is
// the additional data). Every writer must use the same key (SetCursorKey).
type cursors struct{ aead cipher.AEAD }

func newCursors(key []byte) (*cursors, error) {
	if len(key) != 32 {
		return nil, errors.New("cursor key: need 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &cursors{aead: aead}, nil
}

func randomCursors() *cursors {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("licensing: crypto/rand: " + err.Error())
	}
	c, err := newCursors(key)
	if err != nil {
		panic(err)
	}
	return c
}

func (c *cursors) seal(list, id string) string {
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(id)+c.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("licensing: crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(c.aead.Seal(nonce, nonce, []byte(id), []byte(list)))
}

// open returns the id sealed in cursor ("" for no cursor).
func (c *cursors) open(list, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < c.aead.NonceSize() {
		return "", errBadCursor
	}
	id, err := c.aead.Open(nil, b[:c.aead.NonceSize()], b[c.aead.NonceSize():], []byte(list))
	if err != nil || !validID(string(id)) {
		return "", errBadCursor
	}
	return string(id), nil
}

// SetCursorKey sets the 32-byte key cursors are sealed with; every writer of a deployment
// must use the same (the writer reads it from the database). Without it a random key is
// used: cursors then open only on the process that made them.
func (s *Service) SetCursorKey(key []byte) error {
	c, err := newCursors(key)
	if err != nil {
		return err
	}
	s.cursors = c
	return nil
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
