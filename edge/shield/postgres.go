package shield

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresLoader reads every key, brand by brand (the edge's role sees one brand at a
// time: row-level security), each brand in one read-only transaction. It reads the replica
// once it has replayed the primary's WAL as of the start of the load: a key committed
// before the load began (before its event could reach the edge's stream, which is live by
// then) is in the scan. A replica that does not catch up within catchUp, or no replica,
// and the scan reads the primary. Either pool may be nil, not both.
func PostgresLoader(replica, primary *pgxpool.Pool, catchUp time.Duration) Loader {
	return func(ctx context.Context, add func(string)) (int, error) {
		pool := replica
		if primary != nil && replica != nil {
			if !replayed(ctx, replica, primary, catchUp) {
				pool = primary
			}
		} else if replica == nil {
			pool = primary
		}
		return scan(ctx, pool, add)
	}
}

// replayed waits until the replica has replayed the primary's current WAL position.
func replayed(ctx context.Context, replica, primary *pgxpool.Pool, within time.Duration) bool {
	var lsn string
	if err := primary.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		return false
	}
	deadline := time.Now().Add(within)
	for {
		var ok bool
		err := replica.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&ok)
		if err == nil && ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func scan(ctx context.Context, pool *pgxpool.Pool, add func(string)) (int, error) {
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

// PostgresCount estimates the number of keys from the planner's statistics (no scan).
func PostgresCount(pool *pgxpool.Pool) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		var n float64
		err := pool.QueryRow(ctx, `SELECT coalesce(max(reltuples), 0) FROM pg_class WHERE relname = 'license_keys'`).Scan(&n)
		return max(int(n), 0), err
	}
}
