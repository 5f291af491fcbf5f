// Command writer is the central write service of the license system.
//
//	writer [serve]                              serve the HTTP API and relay the outbox
//	writer migrate                              apply migrations (WRITER_MIGRATE_DATABASE_URL)
//	writer bootstrap --slug S --name N          create a brand, print it and its first API key as JSON
//	writer help                                 this text and every WRITER_ setting
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/licensing/licensing/migrations"
	"github.com/licensing/licensing/writer/app"
	"github.com/licensing/licensing/writer/licensing"
	"github.com/licensing/licensing/writer/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
}

const usage = `writer: the central write service of the license system.

Usage:
  writer [serve]                         serve the HTTP API and relay the outbox
  writer migrate                         apply migrations (WRITER_MIGRATE_DATABASE_URL)
  writer bootstrap --slug S --name N     create a brand, print it and its first API key as JSON
  writer help                            this text

Settings (environment):
`

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" || cmd == "-help" {
		fmt.Print(usage + app.Help())
		return nil
	}
	cfg, unknown, err := app.FromEnv(os.Environ())
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	for _, v := range unknown {
		log.Warn("environment variable is not a setting of the writer (misspelt?)", "variable", v)
	}
	switch cmd {
	case "serve":
		return app.Run(ctx, cfg, log, nil)
	case "migrate":
		if err := migrations.Up(ctx, cfg.MigrateURL); err != nil {
			return err
		}
		log.Info("migrations applied")
		return nil
	case "bootstrap":
		return bootstrap(ctx, cfg, log, args)
	}
	return fmt.Errorf("unknown command %q (serve, migrate, bootstrap, help)", cmd)
}

func bootstrap(ctx context.Context, cfg app.Config, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	slug := fs.String("slug", "", "brand slug")
	name := fs.String("name", "", "brand name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *slug == "" || *name == "" {
		return errors.New("bootstrap: --slug and --name are required")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	svc := licensing.New(postgres.New(pool), time.Now, log)
	out, err := svc.CreateBrand(ctx, licensing.Meta{Actor: "cli", RequestID: "bootstrap"}, *slug, *name)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
