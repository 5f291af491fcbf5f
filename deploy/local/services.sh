#!/usr/bin/env bash
# Local backing services: PostgreSQL primary + streaming replica, Redis, NATS (JetStream).
#
#   deploy/local/services.sh up|down|status|env PROFILE      PROFILE = local | test
#
# Ports (env overrides PG_PORT, PG_REPLICA_PORT, REDIS_PORT, NATS_PORT):
#   local: 15432 primary, 15433 replica, 16379 redis, 14222 nats
#   test:  25432 primary, 25433 replica, 26379 redis, 24222 nats,
#          and 25434 a replica lagging 300 ms (recovery_min_apply_delay) for edge tests
# Data lives in .data/PROFILE/ (git-ignored). `up` twice is a no-op; `down` stops,
# by pidfile, only what this profile started.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	echo "usage: $0 up|down|status|env local|test" >&2
	exit 2
}

[[ $# -eq 2 ]] || usage
CMD=$1
PROFILE=$2

case "$PROFILE" in
local)
	PG_PORT=${PG_PORT:-15432}
	PG_REPLICA_PORT=${PG_REPLICA_PORT:-15433}
	PG_LAGGING_PORT=${PG_LAGGING_PORT:-15434}
	REDIS_PORT=${REDIS_PORT:-16379}
	NATS_PORT=${NATS_PORT:-14222}
	;;
test)
	PG_PORT=${PG_PORT:-25432}
	PG_REPLICA_PORT=${PG_REPLICA_PORT:-25433}
	PG_LAGGING_PORT=${PG_LAGGING_PORT:-25434}
	REDIS_PORT=${REDIS_PORT:-26379}
	NATS_PORT=${NATS_PORT:-24222}
	;;
*) usage ;;
esac

DATA="$REPO_ROOT/.data/$PROFILE"
LOGS="$DATA/logs"
PG_LINK="$DATA/pg" # PG_BASE, or a symlink to it
REDIS_DIR="$DATA/redis"
REDIS_PID="$DATA/redis.pid"
NATS_DIR="$DATA/nats"
NATS_PID="$DATA/nats.pid"
REPL_SLOT=licensing_replica

cmd_env() {
	cat <<EOF
export LICENSE_TEST_PG_URL='postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable'
export LICENSE_TEST_REPLICA_URL='postgres://postgres@127.0.0.1:$PG_REPLICA_PORT/postgres?sslmode=disable'
export LICENSE_TEST_LAGGING_REPLICA_URL='postgres://postgres@127.0.0.1:$PG_LAGGING_PORT/postgres?sslmode=disable'
export LICENSE_TEST_REDIS_ADDR='127.0.0.1:$REDIS_PORT'
export LICENSE_TEST_NATS_URL='nats://127.0.0.1:$NATS_PORT'
export LICENSE_TEST_REQUIRE=1
EOF
}

# --- PostgreSQL ------------------------------------------------------------

# setup_pg sets PG_BIN, PG_AS (command prefix to run as the Postgres OS user),
# and PG_BASE/PG_PRIMARY/PG_REPLICA/PG_SOCK/PG_LOGS.
setup_pg() {
	local create=${1:-}
	PG_BIN=$(find_pg_bin) || die "PostgreSQL server binaries not found: run deploy/local/deps.sh (or set PG_BIN)"
	PG_AS=()
	PG_OWNER=""
	if ((EUID == 0)); then
		# Postgres refuses to run as root: run it as the postgres OS user.
		if ! id -u postgres >/dev/null 2>&1; then
			log "creating system user postgres"
			useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres
		fi
		command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is needed to run Postgres as root"
		PG_AS=(runuser -u postgres --)
		PG_OWNER=postgres
	fi

	PG_BASE="$PG_LINK"
	if [[ -L "$PG_LINK" ]]; then
		PG_BASE=$(readlink "$PG_LINK")
	elif [[ -n "$create" && ! -d "$PG_LINK" && -n "$PG_OWNER" ]] && ! runuser -u postgres -- test -x "$DATA"; then
		# The postgres user cannot reach the repo (e.g. it lives under /root):
		# keep the clusters outside and link them in.
		local hash
		hash=$(printf '%s' "$REPO_ROOT" | cksum | cut -d' ' -f1)
		PG_BASE="/var/tmp/licensing-$hash/$PROFILE/pg"
		log "postgres user cannot traverse $DATA; Postgres data goes to $PG_BASE"
		if [[ -d "$PG_BASE" ]] && ! "${PG_AS[@]}" "$PG_BIN/pg_ctl" status -D "$PG_BASE/primary" >/dev/null 2>&1 &&
			! "${PG_AS[@]}" "$PG_BIN/pg_ctl" status -D "$PG_BASE/replica" >/dev/null 2>&1; then
			# Left over from an earlier checkout at this path whose .data/ is gone: start afresh.
			rm -rf "$PG_BASE"
		fi
		mkdir -p "$PG_BASE"
		chmod 755 "/var/tmp/licensing-$hash" "/var/tmp/licensing-$hash/$PROFILE"
		ln -sfn "$PG_BASE" "$PG_LINK"
	fi
	PG_PRIMARY="$PG_BASE/primary"
	PG_REPLICA="$PG_BASE/replica"
	PG_LAGGING="$PG_BASE/lagging"
	PG_SOCK="$PG_BASE/sock"
	PG_LOGS="$PG_BASE/logs"
}

# Runs a Postgres binary (as the postgres OS user when root) from a neutral cwd,
# without the lock fd (a daemon must not inherit it).
pg() { (cd / && "${PG_AS[@]}" "$PG_BIN/$1" "${@:2}" 9>&-); }

pg_running() { pg pg_ctl status -D "$1" >/dev/null 2>&1; }

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres; }

psql_primary() {
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"
}

pg_fail() { # pg_fail LOGFILE MESSAGE
	if [[ -f "$1" ]]; then
		echo "--- last lines of $1:" >&2
		tail -n 30 "$1" >&2 || true
	fi
	die "$2"
}

pg_dirs() {
	mkdir -p "$PG_BASE" "$PG_SOCK" "$PG_LOGS"
	# Unix sockets have a short path limit (~107 bytes); TCP is what we use anyway.
	PG_SOCK_SETTING="$PG_SOCK"
	if ((${#PG_SOCK} > 80)); then
		PG_SOCK_SETTING=""
	fi
	if [[ -n "$PG_OWNER" ]]; then
		chown "$PG_OWNER:" "$PG_BASE" "$PG_SOCK" "$PG_LOGS"
		chmod 700 "$PG_BASE"
	fi
}

pg_primary_up() {
	local logf="$PG_LOGS/primary.log"
	if [[ ! -f "$PG_PRIMARY/PG_VERSION" ]]; then
		log "[$PROFILE] initdb $PG_PRIMARY"
		rm -rf "$PG_PRIMARY"
		pg initdb -D "$PG_PRIMARY" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_LOGS/initdb.log" 2>&1 ||
			pg initdb -D "$PG_PRIMARY" -U postgres --auth=trust -E UTF8 --no-locale >"$PG_LOGS/initdb.log" 2>&1 ||
			pg_fail "$PG_LOGS/initdb.log" "initdb failed"
		{
			echo ""
			echo "# --- deploy/local/services.sh ($PROFILE) ---"
			echo "listen_addresses = '127.0.0.1'"
			echo "port = $PG_PORT"
			echo "unix_socket_directories = '$PG_SOCK_SETTING'"
			echo "max_connections = 300"
			echo "wal_level = replica"
			echo "max_wal_senders = 10"
			echo "max_replication_slots = 10"
			echo "wal_keep_size = '256MB'"
			echo "hot_standby = on"
			echo "hot_standby_feedback = on"
			echo "log_min_duration_statement = -1"
			if [[ "$PROFILE" == local ]]; then
				# room for millions of activations (make seed): fewer forced checkpoints and
				# random index pages that stay in memory
				echo "shared_buffers = '2GB'"
				echo "max_wal_size = '8GB'"
				echo "checkpoint_timeout = '15min'"
				echo "wal_compression = on"
			fi
			if [[ "$PROFILE" == test ]]; then
				echo "fsync = off"
				echo "synchronous_commit = off"
				echo "full_page_writes = off"
			fi
		} | "${PG_AS[@]}" tee -a "$PG_PRIMARY/postgresql.conf" >/dev/null
		cat <<'EOF' | "${PG_AS[@]}" tee "$PG_PRIMARY/pg_hba.conf" >/dev/null
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
host    replication  all   127.0.0.1/32   trust
local   replication  all                  trust
EOF
	fi
	if pg_running "$PG_PRIMARY"; then
		log "[$PROFILE] postgres primary already running on $PG_PORT"
	else
		log "[$PROFILE] starting postgres primary on 127.0.0.1:$PG_PORT"
		pg pg_ctl start -D "$PG_PRIMARY" -l "$logf" -w -t 60 -o "-p $PG_PORT" >/dev/null ||
			pg_fail "$logf" "postgres primary did not start"
	fi
	wait_for 60 "postgres primary on $PG_PORT" pg_ready "$PG_PORT" || pg_fail "$logf" "postgres primary not ready"
	if [[ -z "$(psql_primary -tAc "SELECT 1 FROM pg_database WHERE datname = 'licensing'")" ]]; then
		log "[$PROFILE] creating database licensing"
		psql_primary -c "CREATE DATABASE licensing"
	fi
}

# pg_roles: the application roles with this topology's passwords (each role's name).
# Migrations create the roles without a password (a deployment sets its own): create them
# here if they are missing, so they exist before the first migration, and set the local
# passwords. The pg_hba.conf above trusts loopback, so these only matter if it changes.
pg_roles() {
	psql_primary <<'SQL'
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['license_app', 'license_edge'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I LOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- created meanwhile by a migration
      END;
    END IF;
  END LOOP;
END
$$;
ALTER ROLE license_app PASSWORD 'license_app';
ALTER ROLE license_edge PASSWORD 'license_edge';
SQL
}

# pg_replica_up DIR PORT SLOT [EXTRA_CONF]: a streaming replica of the primary.
pg_replica_up() {
	local dir=$1 port=$2 slot=$3 extra=${4:-}
	local name
	name=$(basename "$dir")
	local logf="$PG_LOGS/$name.log"
	if [[ ! -f "$dir/PG_VERSION" ]]; then
		log "[$PROFILE] pg_basebackup -> $dir"
		rm -rf "$dir"
		psql_primary -tAc "SELECT pg_drop_replication_slot('$slot') FROM pg_replication_slots WHERE slot_name = '$slot'" >/dev/null
		pg pg_basebackup -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$dir" \
			-R -X stream -C -S "$slot" -c fast >"$PG_LOGS/basebackup-$name.log" 2>&1 ||
			pg_fail "$PG_LOGS/basebackup-$name.log" "pg_basebackup failed"
		{
			echo ""
			echo "# --- replica overrides (deploy/local/services.sh) ---"
			echo "port = $port"
			echo "hot_standby = on"
			if [[ -n "$extra" ]]; then echo "$extra"; fi
		} | "${PG_AS[@]}" tee -a "$dir/postgresql.conf" >/dev/null
	fi
	if pg_running "$dir"; then
		log "[$PROFILE] postgres $name already running on $port"
	else
		log "[$PROFILE] starting postgres $name on 127.0.0.1:$port"
		pg pg_ctl start -D "$dir" -l "$logf" -w -t 60 -o "-p $port" >/dev/null ||
			pg_fail "$logf" "postgres $name did not start"
	fi
	wait_for 60 "postgres $name on $port" pg_ready "$port" ||
		pg_fail "$logf" "postgres $name not ready"
}

pg_down() {
	local d
	for d in "$PG_LAGGING" "$PG_REPLICA" "$PG_PRIMARY"; do
		if [[ -f "$d/PG_VERSION" ]] && pg_running "$d"; then
			log "[$PROFILE] stopping postgres $(basename "$d")"
			pg pg_ctl stop -D "$d" -m fast -w -t 60 >/dev/null ||
				pg pg_ctl stop -D "$d" -m immediate -w -t 30 >/dev/null || true
		fi
	done
}

# --- Redis -------------------------------------------------------------------

redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

redis_up() {
	if pid_alive "$REDIS_PID" redis && redis_ping; then
		log "[$PROFILE] redis already running on $REDIS_PORT"
		return 0
	fi
	mkdir -p "$REDIS_DIR"
	local persist=(--save '' --appendonly no)
	if [[ "$PROFILE" == local ]]; then
		persist=(--save '' --appendonly yes)
	fi
	log "[$PROFILE] starting redis on 127.0.0.1:$REDIS_PORT"
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
		--pidfile "$REDIS_PID" --logfile "$LOGS/redis.log" --dir "$REDIS_DIR" \
		"${persist[@]}" >/dev/null 9>&-
	wait_for 30 "redis on $REDIS_PORT" redis_ping || pg_fail "$LOGS/redis.log" "redis not ready"
	wait_for 5 "redis pidfile" pid_alive "$REDIS_PID" redis || die "redis pidfile $REDIS_PID missing"
}

# --- NATS ------------------------------------------------------------------

nats_ready() {
	local line
	# shellcheck disable=SC2016 # $1 expands in the inner shell
	line=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; head -c 4 <&3' _ "$NATS_PORT" 2>/dev/null) || return 1
	[[ "$line" == INFO ]]
}

nats_up() {
	if pid_alive "$NATS_PID" nats && nats_ready; then
		log "[$PROFILE] nats already running on $NATS_PORT"
		return 0
	fi
	mkdir -p "$NATS_DIR"
	log "[$PROFILE] starting nats (JetStream) on 127.0.0.1:$NATS_PORT"
	local detach=()
	command -v setsid >/dev/null 2>&1 && detach=(setsid)
	"${detach[@]}" nohup nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$NATS_DIR" \
		-P "$NATS_PID" -l "$LOGS/nats.log" </dev/null >>"$LOGS/nats.out" 2>&1 9>&- &
	local pid=$!
	local deadline=$((SECONDS + 30))
	until nats_ready; do
		if ! kill -0 "$pid" 2>/dev/null; then
			pg_fail "$LOGS/nats.log" "nats-server exited (see also $LOGS/nats.out)"
		fi
		((SECONDS < deadline)) || pg_fail "$LOGS/nats.log" "nats not ready after 30s"
		sleep 0.1
	done
	wait_for 5 "nats pidfile" pid_alive "$NATS_PID" nats || echo "$pid" >"$NATS_PID"
}

# --- commands ------------------------------------------------------------

lock() {
	mkdir -p "$DATA" "$LOGS"
	chmod 755 "$DATA"
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$DATA/.services.lock"
		flock -w 120 9 || die "another services.sh is running for profile $PROFILE"
	fi
}

cmd_up() {
	lock
	setup_pg create
	pg_dirs
	pg_primary_up
	pg_roles
	pg_replica_up "$PG_REPLICA" "$PG_REPLICA_PORT" "$REPL_SLOT"
	if [[ "$PROFILE" == test ]]; then
		# a second replica that applies WAL late, for the edge's lagging-replica tests
		pg_replica_up "$PG_LAGGING" "$PG_LAGGING_PORT" licensing_lagging "recovery_min_apply_delay = '300ms'"
	fi
	redis_up
	nats_up
	log "[$PROFILE] up: postgres $PG_PORT (replica $PG_REPLICA_PORT), redis $REDIS_PORT, nats $NATS_PORT"
}

cmd_down() {
	[[ -d "$DATA" ]] || return 0
	lock
	setup_pg
	pg_down
	stop_pidfile "$NATS_PID" nats 30
	stop_pidfile "$REDIS_PID" redis 30
	log "[$PROFILE] down"
}

cmd_status() {
	setup_pg
	local rc=0
	if pg_running "$PG_PRIMARY"; then echo "postgres primary: running on $PG_PORT"; else echo "postgres primary: stopped" && rc=1; fi
	if pg_running "$PG_REPLICA"; then echo "postgres replica: running on $PG_REPLICA_PORT"; else echo "postgres replica: stopped" && rc=1; fi
	if pid_alive "$REDIS_PID" redis; then echo "redis: running on $REDIS_PORT"; else echo "redis: stopped" && rc=1; fi
	if pid_alive "$NATS_PID" nats; then echo "nats: running on $NATS_PORT"; else echo "nats: stopped" && rc=1; fi
	return "$rc"
}

case "$CMD" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*) usage ;;
esac
