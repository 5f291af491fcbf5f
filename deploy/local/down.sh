#!/usr/bin/env bash
# `make down`: stops the edges, the writers and the local services, each by its
# pidfile (SIGTERM, then SIGKILL after a deadline). Touches nothing else.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA="$REPO_ROOT/.data/local"
stop_pidfile "$DATA/hook-receiver.pid" hook-receiver 10
for i in 2 1; do
	stop_pidfile "$DATA/edge-$i.pid" edge 20
done
for i in 2 1; do
	stop_pidfile "$DATA/writer-$i.pid" writer 30
done
stop_pidfile "$DATA/writer.pid" writer 30 # started by an earlier version of up.sh
"$LIB_DIR/services.sh" down local
