package seed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
)

// LoadOptions tune how Load writes.
type LoadOptions struct {
	// ChunkActivations is how many activations one COPY transaction carries.
	ChunkActivations int
	// FKChecks keeps the foreign-key triggers on. Off by default: the session runs with
	// session_replication_role = replica (superuser only), which skips the per-row FK
	// look-ups and the outbox NOTIFY trigger; the generator guarantees the references.
	FKChecks bool
	// Progress receives a status line every second (nil: silent).
	Progress io.Writer
	// Analyze runs ANALYZE on the written tables at the end.
	Analyze bool
}

// Result is what a Load did.
type Result struct {
	Manifest Manifest
	Counts   Counts
	Elapsed  time.Duration
	Analyze  time.Duration
}

type chunk struct {
	keys   []Key
	audit  []AuditRow
	outbox []OutboxRow
	counts Counts
}

// Load writes plan into the database at url (a superuser URL: it bypasses row-level
// security, and session_replication_role needs it) with one COPY stream per worker, and
// returns the manifest of what it wrote. It refuses to run when a brand slug of the plan
// already exists.
func Load(ctx context.Context, url string, plan *Plan, opt LoadOptions) (Result, error) {
	if opt.ChunkActivations <= 0 {
		opt.ChunkActivations = 20000
	}
	cfg := plan.Config
	workers := max(cfg.Workers, 1)
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return Result{}, fmt.Errorf("parse database url: %w", err)
	}
	pcfg.MaxConns = int32(workers + 1)
	pcfg.ConnConfig.RuntimeParams["application_name"] = "license-seed"
	// every session: no wait for the WAL flush per chunk (a crash loses at most the last
	// chunks of a run that is restarted anyway)
	pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	if !opt.FKChecks {
		pcfg.ConnConfig.RuntimeParams["session_replication_role"] = "replica"
	}
	// compress full-page images in the WAL (superuser-settable per session): fewer bytes
	// to write and to stream to the replica; best effort, lz4 if the server has it
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "SET wal_compression = lz4"); err != nil {
			_, _ = c.Exec(ctx, "SET wal_compression = pglz")
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return Result{}, fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()

	start := time.Now()
	if err := insertPlan(ctx, pool, plan); err != nil {
		return Result{}, err
	}

	var total Counts
	var doneActs, doneKeys atomic.Int64
	samplers := make([]*sampler, workers)
	counts := make([]Counts, workers)
	g, gctx := errgroup.WithContext(ctx)
	for w := 0; w < workers; w++ {
		samplers[w] = newSampler(plan.rseed, w, cfg.Sample/workers+1)
		ch := make(chan *chunk, 1)
		g.Go(func() error { // generator
			defer close(ch)
			gen := NewGenerator(plan, w)
			for !gen.Done() {
				c := &chunk{}
				for !gen.Done() && c.counts.Activations < int64(opt.ChunkActivations) {
					k := gen.Next()
					c.audit, c.outbox = plan.Events(&k, c.audit, c.outbox)
					samplers[w].Observe(plan, &k)
					c.counts.LicenseKeys++
					c.counts.Licenses += int64(len(k.Licenses))
					for i := range k.Licenses {
						c.counts.Activations += int64(len(k.Licenses[i].Activations))
					}
					c.keys = append(c.keys, k)
				}
				c.counts.AuditEvents, c.counts.Outbox = int64(len(c.audit)), int64(len(c.outbox))
				select {
				case ch <- c:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
		g.Go(func() error { // writer
			for c := range ch {
				if err := copyChunk(gctx, pool, plan, c); err != nil {
					return err
				}
				counts[w].Add(c.counts)
				doneActs.Add(c.counts.Activations)
				doneKeys.Add(c.counts.LicenseKeys)
			}
			return nil
		})
	}
	target := cfg.Activations + int64(cfg.BigLicenses)*int64(cfg.BigActivations)
	stop := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if opt.Progress == nil {
			<-stop
			return
		}
		// a terminal gets one line rewritten every second; a log file a line every 10 s
		every, format := 10*time.Second, "%s\n"
		if f, ok := opt.Progress.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				every, format = time.Second, "\r%s"
			}
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprintf(opt.Progress, "\r%s\n", progressLine(doneActs.Load(), doneKeys.Load(), target, time.Since(start)))
				return
			case <-t.C:
				fmt.Fprintf(opt.Progress, format, progressLine(doneActs.Load(), doneKeys.Load(), target, time.Since(start)))
			}
		}
	}()
	err = g.Wait()
	close(stop)
	<-progressDone
	if err != nil {
		return Result{}, err
	}
	for _, c := range counts {
		total.Add(c)
	}
	total.Brands = len(plan.Brands)
	for _, b := range plan.Brands {
		total.Products += len(b.Products)
	}
	res := Result{Counts: total, Elapsed: time.Since(start)}
	if opt.Analyze {
		t := time.Now()
		if _, err := pool.Exec(ctx, "ANALYZE brands, api_keys, products, license_keys, licenses, activations, audit_events, outbox"); err != nil {
			return res, fmt.Errorf("analyze: %w", err)
		}
		res.Analyze = time.Since(t)
	}
	res.Manifest = merge(plan, samplers, cfg.Sample)
	res.Manifest.Counts = total
	return res, nil
}

func progressLine(acts, keys, target int64, el time.Duration) string {
	rate := float64(acts) / max(el.Seconds(), 0.001)
	eta := "?"
	if rate > 0 && acts < target {
		eta = time.Duration(float64(target-acts) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("activations %d/%d (%.1f%%)  keys %d  %.0f act/s  elapsed %s  eta %s   ",
		acts, target, 100*float64(acts)/float64(max(target, 1)), keys, rate, el.Round(time.Second), eta)
}

// insertPlan writes brands, API keys and products with their creation audit events.
func insertPlan(ctx context.Context, pool *pgxpool.Pool, plan *Plan) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, b := range plan.Brands {
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM brands WHERE slug = $1)", b.Slug).Scan(&exists); err != nil {
				return fmt.Errorf("check brand %s: %w", b.Slug, err)
			}
			if exists {
				return fmt.Errorf("brand %q already exists: seed with another -prefix (or `make clean-data`)", b.Slug)
			}
			actor := "seed"
			if _, err := tx.Exec(ctx, "INSERT INTO brands (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
				b.ID, b.Slug, b.Name, b.CreatedAt); err != nil {
				return fmt.Errorf("insert brand %s: %w", b.Slug, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO api_keys (id, brand_id, prefix, secret_hash, scopes, created_at) VALUES ($1, $2, $3, $4, '{}', $5)",
				b.APIKey.ID, b.ID, b.APIKey.Prefix, b.APIKey.SecretHash, b.CreatedAt); err != nil {
				return fmt.Errorf("insert api key: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO audit_events (id, brand_id, action, actor, request_id, at, after)
				VALUES (gen_random_uuid(), $1::uuid, 'brand.created', $2, 'seed', $3, jsonb_build_object('id', $1::uuid::text, 'slug', $4::text, 'name', $5::text))`,
				b.ID, actor, b.CreatedAt, b.Slug, b.Name); err != nil {
				return fmt.Errorf("audit brand: %w", err)
			}
			for _, p := range b.Products {
				if _, err := tx.Exec(ctx, "INSERT INTO products (id, brand_id, code, name, created_at) VALUES ($1, $2, $3, $4, $5)",
					p.ID, b.ID, p.Code, p.Name, p.CreatedAt); err != nil {
					return fmt.Errorf("insert product %s: %w", p.Code, err)
				}
				if _, err := tx.Exec(ctx, `INSERT INTO audit_events (id, brand_id, action, actor, request_id, at, after)
					VALUES (gen_random_uuid(), $1, 'product.created', $2, 'seed', $3, jsonb_build_object('id', $4::text, 'code', $5::text, 'name', $6::text))`,
					b.ID, "api_key:"+UUIDString(b.APIKey.ID), p.CreatedAt, UUIDString(p.ID), p.Code, p.Name); err != nil {
					return fmt.Errorf("audit product: %w", err)
				}
			}
		}
		return nil
	})
}

// copyChunk writes one chunk in one transaction: every row of a key or none.
func copyChunk(ctx context.Context, pool *pgxpool.Pool, plan *Plan, c *chunk) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		keys := make([][]any, 0, len(c.keys))
		var lics, acts [][]any
		for i := range c.keys {
			k := &c.keys[i]
			b := &plan.Brands[k.Brand]
			keys = append(keys, []any{k.ID, b.ID, k.Key, k.Email, k.Version, k.CreatedAt, k.UpdatedAt})
			for j := range k.Licenses {
				l := &k.Licenses[j]
				var limit any
				if l.SeatLimit != nil {
					limit = int32(*l.SeatLimit)
				}
				var exp any
				if l.ExpiresAt != nil {
					exp = *l.ExpiresAt
				}
				lics = append(lics, []any{l.ID, b.ID, k.ID, b.Products[l.Product].ID, l.Status, exp, limit,
					int32(l.SeatsUsed), int32(l.DevUsed), l.CreatedAt, l.UpdatedAt})
				for _, a := range l.Activations {
					acts = append(acts, []any{a.ID, b.ID, l.ID, a.Instance, a.ActivatedAt, a.Version, a.Development})
				}
			}
		}
		if err := copyRows(ctx, tx, "license_keys", []string{"id", "brand_id", "key", "customer_email", "version", "created_at", "updated_at"}, keys); err != nil {
			return err
		}
		if err := copyRows(ctx, tx, "licenses", []string{"id", "brand_id", "license_key_id", "product_id", "status", "expires_at",
			"seat_limit", "seats_used", "dev_instances_used", "created_at", "updated_at"}, lics); err != nil {
			return err
		}
		if err := copyRows(ctx, tx, "activations", []string{"id", "brand_id", "license_id", "instance", "activated_at", "version", "development"}, acts); err != nil {
			return err
		}
		audit := make([][]any, len(c.audit))
		for i, a := range c.audit {
			var lic, before any
			if a.LicenseID != nil {
				lic = *a.LicenseID
			}
			if a.Before != nil {
				before = a.Before
			}
			audit[i] = []any{a.ID, a.BrandID, a.KeyID, lic, a.Action, a.Actor, "seed", a.At, before, a.After}
		}
		if err := copyRows(ctx, tx, "audit_events", []string{"id", "brand_id", "license_key_id", "license_id", "action", "actor",
			"request_id", "at", "before", "after"}, audit); err != nil {
			return err
		}
		if len(c.outbox) == 0 {
			return nil
		}
		out := make([][]any, len(c.outbox))
		for i, o := range c.outbox {
			// sent and dispatched a few milliseconds after commit, as the relay and the
			// webhook dispatcher would have
			done := o.At.Add(5 * time.Millisecond)
			out[i] = []any{o.BrandID, o.KeyID, o.Version, o.Subject, o.Payload, o.At, done, done}
		}
		return copyRows(ctx, tx, "outbox", []string{"brand_id", "license_key_id", "version", "subject", "payload", "created_at",
			"sent_at", "dispatched_at"}, out)
	})
}

func copyRows(ctx context.Context, tx pgx.Tx, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	if n != int64(len(rows)) {
		return errors.New("copy " + table + ": short write")
	}
	return nil
}
