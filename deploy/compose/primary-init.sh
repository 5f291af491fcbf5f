#!/usr/bin/env bash
# Runs once, from /docker-entrypoint-initdb.d, when the primary's data directory is first
# initialised (the official postgres image's entrypoint sources or executes it against the
# temporary server it starts for initialisation). It creates the replication role, lets
# that role connect for replication from the compose network, and creates the physical
# replication slot the replica streams from, so the primary keeps the WAL the replica has
# not received yet.
set -euo pipefail

: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"
: "${REPLICATION_SLOT:=replica_1}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v user="$REPLICATION_USER" -v password="$REPLICATION_PASSWORD" -v slot="$REPLICATION_SLOT" <<'SQL'
SELECT format('CREATE ROLE %I WITH REPLICATION LOGIN PASSWORD %L', :'user', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT pg_create_physical_replication_slot(:'slot', true)
WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = :'slot');
SQL

# The image's pg_hba.conf allows "host all all all" but "all" does not cover the
# replication pseudo-database: add the replication role explicitly.
hba="host replication ${REPLICATION_USER} all scram-sha-256"
grep -qxF "$hba" "$PGDATA/pg_hba.conf" || echo "$hba" >>"$PGDATA/pg_hba.conf"
