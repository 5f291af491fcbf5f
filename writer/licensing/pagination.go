package licensing

import (
	"encoding/base64"
	"strconv"

	"github.com/licensing/licensing/shared/problem"
	"github.com/licensing/licensing/shared/resource"
)

// Page is a keyset page request.
type Page struct {
	Limit int
	After string // decoded cursor: the id of the last row of the previous page
}

// DefaultLimit and MaxLimit bound list pages.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ParsePage validates the limit and cursor query values.
func ParsePage(limit, cursor string) (Page, error) {
	p := Page{Limit: DefaultLimit}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || strconv.Itoa(n) != limit || n < 1 || n > MaxLimit {
			return p, problem.Invalid("limit", "must be an integer from 1 to %d", MaxLimit)
		}
		p.Limit = n
	}
	if cursor != "" {
		after, ok := decodeCursor(cursor)
		if !ok {
			return p, problem.Invalid("cursor", "is not a cursor this API returned")
		}
		p.After = after
	}
	return p, nil
}

func encodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func decodeCursor(c string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !validID(string(b)) {
		return "", false
	}
	return string(b), true
}

// pageOf turns limit+1 rows into a page: the extra row only says that there is a next
// page, whose cursor is the id of the page's last row.
func pageOf[R, T any](rows []R, limit int, conv func(R) T, id func(R) string) resource.List[T] {
	out := resource.List[T]{Data: make([]T, 0, min(len(rows), limit))}
	for i, r := range rows {
		if i == limit {
			c := encodeCursor(id(rows[i-1]))
			out.NextCursor = &c
			break
		}
		out.Data = append(out.Data, conv(r))
	}
	return out
}
