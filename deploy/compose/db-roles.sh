#!/usr/bin/env bash
# Runs as the one-shot service db-roles after `migrate`, on every `up`: the migrations
# create the application roles license_app (the writer) and license_edge (the edges,
# read-only) without a password, and this gives them the passwords of this deployment
# (LICENSE_APP_PASSWORD, LICENSE_EDGE_PASSWORD; PGHOST, PGUSER, PGPASSWORD and
# PGDATABASE reach the primary as the owner role). Idempotent.
set -euo pipefail

: "${LICENSE_APP_PASSWORD:?LICENSE_APP_PASSWORD must be set}"
: "${LICENSE_EDGE_PASSWORD:?LICENSE_EDGE_PASSWORD must be set}"

# \getenv (psql 15) reads the passwords from the environment, so they appear on no command
# line; :'app' and :'edge' are quoted as literals
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
\getenv app LICENSE_APP_PASSWORD
\getenv edge LICENSE_EDGE_PASSWORD
ALTER ROLE license_app PASSWORD :'app';
ALTER ROLE license_edge PASSWORD :'edge';
SQL
echo "db-roles: passwords of license_app and license_edge set"
