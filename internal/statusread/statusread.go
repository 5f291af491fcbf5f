// Package statusread holds the two Postgres reads a status check makes, shared by the
// writer's store (on the primary) and the edge's Postgres tier (on a replica, the primary
// as fallback), so both answer from the same SQL: a key's state (its licenses and seat
// counts) and one instance's activations on the key. Each is a point look-up — the key
// by its unique key, an instance by the (license_id, instance) unique index of one
// activation partition per license — so neither grows with the number of activations a
// license holds. Both run with app.brand_id set (row-level security) and filter by the
// brand slug themselves: as license_app in the writer, as license_edge on the edges. The
// edge role may SELECT only the columns these queries (and the brand look-up by slug)
// name: a query that reads another column needs a migration granting it
// (migrations/00004_edge_role.sql; migrations/privileges_test.go runs both as that role).
package statusread

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/shared/license"
)

// StateQuery reads the state of a key. Arguments: brand slug, key. One row per license
// (one row with NULL license columns for a key without licenses); no row for an unknown
// key.
const StateQuery = `SELECT b.id, b.slug, k.id, k.key, k.version, l.id, p.code, l.status, l.expires_at,
  l.seat_limit, l.seats_used
FROM license_keys k
JOIN brands b ON b.id = k.brand_id
LEFT JOIN licenses l ON l.license_key_id = k.id AND l.brand_id = k.brand_id
LEFT JOIN products p ON p.id = l.product_id
WHERE b.slug = $1 AND k.key = $2
ORDER BY l.id`

// ScanState reads StateQuery's rows; found is false for an unknown key.
func ScanState(rows pgx.Rows) (st license.State, found bool, err error) {
	defer rows.Close()
	for rows.Next() {
		var (
			brandID, brand, keyID, key string
			ver                        int64
			licID, product, status     *string
			expires                    *time.Time
			seatLimit, seatsUsed       *int32
		)
		if err := rows.Scan(&brandID, &brand, &keyID, &key, &ver, &licID, &product, &status, &expires, &seatLimit, &seatsUsed); err != nil {
			return st, false, err
		}
		if !found {
			found = true
			st = license.State{BrandID: brandID, Brand: brand, KeyID: keyID, Key: key, Version: ver, Licenses: []license.LicenseState{}}
		}
		if licID == nil {
			continue
		}
		l := license.LicenseState{ID: *licID, Product: *product, Status: *status}
		if expires != nil {
			t := expires.UTC()
			l.ExpiresAt = &t
		}
		if seatLimit != nil {
			n := int(*seatLimit)
			l.SeatLimit = &n
		}
		if seatsUsed != nil {
			l.SeatsUsed = int(*seatsUsed)
		}
		st.Licenses = append(st.Licenses, l)
	}
	return st, found, rows.Err()
}

// InstanceQuery reads one instance's activations on a key, with the key's version (the
// entry's as-of version) and the version of the newest of those activations. Arguments:
// brand slug, key, normalized instance. No row for an unknown key.
const InstanceQuery = `SELECT k.version, coalesce(max(a.version), 0),
  coalesce(array_agg(a.license_id::text ORDER BY a.license_id) FILTER (WHERE a.license_id IS NOT NULL), '{}'),
  coalesce(array_agg(a.development ORDER BY a.license_id) FILTER (WHERE a.license_id IS NOT NULL), '{}')
FROM license_keys k
JOIN brands b ON b.id = k.brand_id
LEFT JOIN licenses l ON l.license_key_id = k.id AND l.brand_id = k.brand_id
LEFT JOIN activations a ON a.license_id = l.id AND a.instance = $3 AND a.brand_id = k.brand_id
WHERE b.slug = $1 AND k.key = $2
GROUP BY k.id, k.version`

// ScanInstance reads InstanceQuery's row; found is false for an unknown key.
func ScanInstance(row pgx.Row, instance string) (in license.Instance, found bool, err error) {
	var ids []string
	var dev []bool
	in.Instance = instance
	if err := row.Scan(&in.AsOf, &in.Changed, &ids, &dev); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return in, false, nil
		}
		return in, false, err
	}
	if len(dev) != len(ids) {
		return in, false, fmt.Errorf("instance row: %d activations with %d development flags", len(ids), len(dev))
	}
	for i, id := range ids {
		in.Activations = append(in.Activations, license.InstanceActivation{LicenseID: id, Development: dev[i]})
	}
	return in, true, nil
}
