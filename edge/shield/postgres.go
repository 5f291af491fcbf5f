package shield

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresLoader reads every key, brand by brand (the edge's role sees one brand at a
// time: row-level security), each brand in one read-only transaction.
func PostgresLoader(pool *pgxpool.Pool) Loader {
	return func(ctx context.Context, add func(string)) (int, error) {
		rows, err := pool.Query(ctx, `SELECT id::text FROM brands`)
		if err != nil {
			return 0, err
		}
		brands, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return 0, err
		}
		n := 0
		for _, b := range brands {
			err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				// a scan of a big brand outlasts the pool's statement timeout (the bound of a
				// status read): this transaction lifts it for itself
				if _, err := tx.Exec(ctx, `SELECT set_config('app.brand_id', $1, true), set_config('statement_timeout', '0', true)`, b); err != nil {
					return err
				}
				rows, err := tx.Query(ctx, `SELECT key FROM license_keys`)
				if err != nil {
					return err
				}
				defer rows.Close()
				var key string
				for rows.Next() {
					if err := rows.Scan(&key); err != nil {
						return err
					}
					add(key)
					n++
				}
				return rows.Err()
			})
			if err != nil {
				return n, fmt.Errorf("keys of brand %s: %w", b, err)
			}
		}
		return n, nil
	}
}

// PostgresCount estimates the number of keys from the planner's statistics (no scan).
func PostgresCount(pool *pgxpool.Pool) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		var n float64
		err := pool.QueryRow(ctx, `SELECT coalesce(max(reltuples), 0) FROM pg_class WHERE relname = 'license_keys'`).Scan(&n)
		return max(int(n), 0), err
	}
}
