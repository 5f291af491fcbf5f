#!/usr/bin/env bash
# Entrypoint of the streaming replica (official postgres image, run as root as the image
# expects). On first start, when the data directory is empty, it clones the primary with
# pg_basebackup -R (which writes primary_conninfo and standby.signal) streaming from the
# slot primary-init.sh created; afterwards it hands over to the image's own entrypoint,
# which sees an initialised data directory and just starts the server as a hot standby.
set -euo pipefail

: "${PRIMARY_HOST:=postgres-primary}"
: "${PRIMARY_PORT:=5432}"
: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"
: "${REPLICATION_SLOT:=replica_1}"
: "${PGDATA:=/var/lib/postgresql/data}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 0700 "$PGDATA"
	export PGPASSWORD="$REPLICATION_PASSWORD"
	echo "replica: waiting for ${PRIMARY_HOST}:${PRIMARY_PORT}"
	until gosu postgres pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER"; do
		sleep 1
	done
	echo "replica: pg_basebackup from ${PRIMARY_HOST} (slot ${REPLICATION_SLOT})"
	gosu postgres pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" \
		-D "$PGDATA" -R -X stream -S "$REPLICATION_SLOT" -c fast --progress
	unset PGPASSWORD
fi

exec docker-entrypoint.sh "$@"
