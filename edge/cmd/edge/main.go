// Command edge runs one edge node: it answers license status checks from its caches and
// a Postgres read replica and relays public writes to the writer. Configuration comes
// from EDGE_ environment variables (see edge/app).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/licensing/licensing/edge/app"
)

func main() {
	cfg, err := app.FromEnv()
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err != nil {
		log.Error("edge configuration", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, log.With("node", cfg.NodeID), nil); err != nil {
		log.Error("edge stopped", "err", err)
		os.Exit(1)
	}
}
