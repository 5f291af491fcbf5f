// Command edge runs one edge node: it answers license status checks from its caches and
// a Postgres read replica and relays public writes to the writer. Configuration comes
// from EDGE_ environment variables (see edge/app).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/licensing/licensing/edge/app"
)

const usage = `edge: a license status node. It answers GET /v1/public/{brand}/licenses/{key}/status
from its caches and a Postgres read replica and relays public activations and
deactivations to the writer. It takes no arguments; every setting is an environment
variable:

`

func main() {
	for _, a := range os.Args[1:] {
		if a == "-h" || a == "--help" || a == "-help" || a == "help" {
			fmt.Print(usage + app.Help())
			return
		}
		fmt.Fprintf(os.Stderr, "edge: unknown argument %q (edge --help lists the settings)\n", a)
		os.Exit(2)
	}
	cfg, unknown, err := app.FromEnv(os.Environ())
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err != nil {
		log.Error("edge configuration", "err", err)
		os.Exit(2)
	}
	for _, v := range unknown {
		log.Warn("environment variable is not a setting of the edge (misspelt?)", "variable", v)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, log.With("node", cfg.NodeID), nil); err != nil {
		log.Error("edge stopped", "err", err)
		os.Exit(1)
	}
}
