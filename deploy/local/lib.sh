#!/usr/bin/env bash
# Shared helpers for deploy/local/*.sh. Sourced, not run.
# shellcheck disable=SC2034  # variables here are used by the scripts that source this file

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LIB_DIR/../.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# find_pg_bin prints the directory holding the PostgreSQL server binaries
# (initdb, pg_ctl, pg_basebackup, pg_isready), preferring version 15.
# PG_BIN in the environment wins.
find_pg_bin() {
	local d
	if [[ -n "${PG_BIN:-}" ]]; then
		[[ -x "$PG_BIN/pg_ctl" ]] || return 1
		printf '%s\n' "$PG_BIN"
		return 0
	fi
	if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
		printf '%s\n' /usr/lib/postgresql/15/bin
		return 0
	fi
	# Newest other version installed the Debian way.
	d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k4,4 -rn | while IFS= read -r c; do
		if [[ -x "$c/pg_ctl" && -x "$c/initdb" && -x "$c/pg_basebackup" ]]; then
			printf '%s\n' "$c"
			break
		fi
	done)
	if [[ -n "$d" ]]; then
		printf '%s\n' "$d"
		return 0
	fi
	# Elsewhere (Homebrew, other distributions): whatever is on PATH.
	if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v pg_ctl)"
		return 0
	fi
	return 1
}

# pid_alive PIDFILE [NAME]: true when the pidfile names a live process whose
# command name contains NAME (guards against a recycled pid).
pid_alive() {
	local pidfile=$1 name=${2:-} pid comm
	[[ -s "$pidfile" ]] || return 1
	pid=$(head -n1 "$pidfile" | tr -dc '0-9')
	[[ -n "$pid" ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -n "$name" ]]; then
		comm=$(ps -p "$pid" -o comm= 2>/dev/null || true)
		[[ "$comm" == *"$name"* ]] || return 1
	fi
	return 0
}

# stop_pidfile PIDFILE NAME [SECONDS]: SIGTERM the process, wait for it to go
# away within the deadline, then SIGKILL. Removes the pidfile.
stop_pidfile() {
	local pidfile=$1 name=$2 secs=${3:-15} pid deadline
	if ! pid_alive "$pidfile" "$name"; then
		rm -f "$pidfile"
		return 0
	fi
	pid=$(head -n1 "$pidfile" | tr -dc '0-9')
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + secs))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			warn "$name (pid $pid) did not stop within ${secs}s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	rm -f "$pidfile"
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds or
# the deadline passes.
wait_for() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			warn "timed out after ${secs}s waiting for $what"
			return 1
		fi
		sleep 0.1
	done
}

# tcp_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# http_ok URL: true on a 2xx answer.
http_ok() {
	curl -fsS -o /dev/null --max-time 2 "$1"
}
