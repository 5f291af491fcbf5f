// Command writer is the central write service of the license system.
//
//	writer [serve]                              serve the HTTP API and relay the outbox
//	writer migrate                              apply migrations (WRITER_MIGRATE_DATABASE_URL)
//	writer bootstrap --slug S --name N          create a brand, print it and its first API key as JSON
//	writer lease-key [--set JWKS] KEY.pem...    print the JWK Set of lease keys' public halves (for JWKS_FILE)
//	writer help                                 this text and every WRITER_ setting
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/licensing/licensing/migrations"
	"github.com/licensing/licensing/shared/lease"
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
  writer lease-key [--set JWKS] KEY.pem...
                                         print the JWK Set of the public keys of Ed25519 lease
                                         keys (PKCS#8 PEM), merged into the set in JWKS if given:
                                         the content of every node's WRITER_/EDGE_JWKS_FILE
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
	if cmd == "lease-key" {
		return leaseKey(os.Stdout, args)
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
	return fmt.Errorf("unknown command %q (serve, migrate, bootstrap, lease-key, help)", cmd)
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

// leaseKey prints the JWK Set of the public halves of the lease keys in files, after the
// keys of the set in --set (rotation: the current set plus a new key). Private keys are
// read, never printed.
func leaseKey(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("lease-key", flag.ContinueOnError)
	setFile := fs.String("set", "", "a JWK Set file whose keys come first (a node's current JWKS_FILE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 && *setFile == "" {
		return errors.New("lease-key: name PKCS#8 PEM Ed25519 key files (openssl genpkey -algorithm ed25519 -out KEY.pem)")
	}
	set, err := lease.ReadJWKS(*setFile)
	if err != nil {
		return fmt.Errorf("lease-key: %w", err)
	}
	privs := make([]ed25519.PrivateKey, 0, fs.NArg())
	for _, f := range fs.Args() {
		k, err := lease.LoadKey(f, "")
		if err != nil {
			return fmt.Errorf("lease-key: %w", err)
		}
		privs = append(privs, k)
	}
	set.Keys = append(set.Keys, lease.KeySet(privs...).Keys...)
	merged, err := lease.ParseJWKS(set.Marshal()) // deduplicated, clashing kids refused
	if err != nil {
		return fmt.Errorf("lease-key: %w", err)
	}
	var b bytes.Buffer
	_ = json.Indent(&b, merged.Marshal(), "", "  ")
	b.WriteByte('\n')
	_, err = out.Write(b.Bytes())
	return err
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
