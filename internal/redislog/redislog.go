// Package redislog sends go-redis' own log lines (one per failed dial, on stderr by
// default) to a slog logger at debug level: the breakers in front of Redis already say,
// once, when it goes away and comes back. It sets a process-wide logger.
package redislog

import (
	"context"
	"fmt"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// To sends go-redis' log lines to log at debug level.
func To(log *slog.Logger) { goredis.SetLogger(driverLog{log}) }

type driverLog struct{ log *slog.Logger }

func (d driverLog) Printf(ctx context.Context, format string, v ...any) {
	d.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
