// Command seed fills the licensing database with realistic load-test data through COPY
// and writes a manifest of sample keys, instances and brand API keys for the load scripts.
//
//	go run ./loadtest/cmd/seed -activations 1000000 -prefix lt -manifest .data/loadtest/manifest.json
//
// It connects as the superuser (row-level security does not apply to it); see
// loadtest/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/licensing/licensing/loadtest/seed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := seed.DefaultConfig()
	dbURL := flag.String("db", envOr("SEED_DATABASE_URL", "postgres://postgres@127.0.0.1:15432/licensing?sslmode=disable"), "superuser URL of the primary (env SEED_DATABASE_URL)")
	manifest := flag.String("manifest", ".data/loadtest/manifest.json", "where to write the manifest")
	flag.Int64Var(&cfg.Activations, "activations", cfg.Activations, "activations to create")
	flag.IntVar(&cfg.Brands, "brands", cfg.Brands, "brands (1-12)")
	flag.IntVar(&cfg.ProductsPerBrand, "products", cfg.ProductsPerBrand, "products per brand (1-8)")
	flag.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "brand slug prefix; use a new one for each run on one database")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (same seed, same data)")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "parallel COPY streams")
	flag.IntVar(&cfg.Sample, "sample", cfg.Sample, "entries per manifest list")
	flag.DurationVar(&cfg.OutboxWindow, "outbox-window", cfg.OutboxWindow, "changes newer than this keep their (sent) outbox row")
	flag.BoolVar(&cfg.AuditActivations, "audit-activations", false, "also write the audit row of every activation (3x the bytes)")
	flag.IntVar(&cfg.BigLicenses, "big-licenses", 0, "keys with one unlimited license holding -big-activations activations each (on top of -activations)")
	flag.IntVar(&cfg.BigActivations, "big-activations", 100000, "activations of each big license")
	chunk := flag.Int("chunk", 20000, "activations per COPY transaction")
	fk := flag.Bool("fk-checks", false, "keep foreign-key triggers on (slower)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	plan, err := seed.NewPlan(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seeding %d activations over %d brands (prefix %q, %d workers)\n", cfg.Activations, cfg.Brands, cfg.Prefix, cfg.Workers)
	res, err := seed.Load(ctx, *dbURL, plan, seed.LoadOptions{ChunkActivations: *chunk, FKChecks: *fk, Progress: os.Stderr, Analyze: true})
	if err != nil {
		return err
	}
	if err := res.Manifest.Write(*manifest); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	summary := map[string]any{
		"counts": res.Counts, "copy_seconds": res.Elapsed.Seconds(), "analyze_seconds": res.Analyze.Seconds(),
		"activations_per_second": float64(res.Counts.Activations) / res.Elapsed.Seconds(), "manifest": *manifest,
		"finished_at": time.Now().UTC(),
	}
	b, _ := json.MarshalIndent(summary, "", "  ")
	fmt.Println(string(b))
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
