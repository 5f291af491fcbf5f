// Package migrations holds the versioned SQL schema and applies it with goose. The writer's
// `migrate` subcommand, `make up` and the test helpers all go through Up; nothing applies
// SQL by hand.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for goose
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// RiverSchema is the schema of River's tables (the webhook delivery queue).
const RiverSchema = "river"

//go:embed *.sql
var files embed.FS

// Up applies every pending migration to the database at url, which must be a role allowed
// to create tables and roles (the owner, not the application role).
func Up(ctx context.Context, url string) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return fmt.Errorf("migrate: open: %w", err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, files)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: up: %w", err)
	}
	return riverUp(ctx, url)
}

// riverUp applies River's own migrations to schema river (created by 00006) and grants
// the application role what the queue needs there: its tables, sequences and functions,
// and nothing outside the schema.
func riverUp(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	defer pool.Close()
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: RiverSchema})
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river: up: %w", err)
	}
	for _, q := range []string{
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA river TO license_app",
		"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA river TO license_app",
		"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA river TO license_app",
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("migrate river: %s: %w", q, err)
		}
	}
	return nil
}
