#!/usr/bin/env bash
# loadtest/bench.sh: the side-by-side benchmarks against the `make up` topology, at each
# data size in SIZES (default "100k 10m"), printed as one markdown table at the end.
#
#   per size: seed up to that many activations (only the difference to what is there),
#   then
#     writer_distinct / writer_hot   writer activations (Go harness, closed loop)
#     pgbench activation.sql         the same minimal transaction, distinct and hot
#     pgbench hot_update.sql         one conditional UPDATE on one row
#     status (cold)                  the status scenario on cold caches (first pass over the keys)
#     status, activation_storm, mix  the k6-equivalent scenarios through the edges, warm
#     status-baseline                the status scenario against BASELINE_STATUS_URL, if set
#                                    (hook for the edge owner's constant-response fasthttp
#                                    server, e.g. BASELINE_STATUS_URL=http://127.0.0.1:8090)
#     invalidation_lag               writer 2xx -> both edges answer the new state
#   Edge scenarios and the lag are skipped, with a message, when no edge answers /readyz.
#
# Re-running with the same OUT reuses its manifests (RESEED=1 seeds anew).
# Environment: SIZES, PGBENCH_SECONDS (10), PGBENCH_CLIENTS (8), LAG_SAMPLES (200),
# SCENARIOS (status,activation_storm,mix), PG_PORT (15432), WRITER_URL, EDGE_URLS,
# BASELINE_STATUS_URL, OUT (.data/loadtest/bench-<time>).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SIZES=${SIZES:-"100k 10m"}
PG_PORT=${PG_PORT:-15432}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
WRITER_URL=${WRITER_URL:-http://127.0.0.1:8080}
EDGE_URLS=${EDGE_URLS:-http://127.0.0.1:8081,http://127.0.0.1:8082}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8}
LAG_SAMPLES=${LAG_SAMPLES:-200}
SCENARIOS=${SCENARIOS:-status,activation_storm,mix}
OUT=${OUT:-.data/loadtest/bench-$(date -u +%Y%m%dT%H%M%SZ)}
SUPER_URL="postgres://postgres@127.0.0.1:$PG_PORT/licensing?sslmode=disable"
export WRITER_URL EDGE_URLS

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

command -v "$PG_BIN/pgbench" >/dev/null || die "pgbench not found in $PG_BIN (set PG_BIN)"
curl -fsS "$WRITER_URL/readyz" >/dev/null 2>&1 || die "the writer does not answer at $WRITER_URL/readyz: run 'make up' first"
EDGES_UP=1
IFS=, read -r -a EDGE_LIST <<<"$EDGE_URLS"
for e in "${EDGE_LIST[@]}"; do
	if ! curl -fsS "$e/readyz" >/dev/null 2>&1; then
		EDGES_UP=0
		log "edge $e does not answer /readyz: skipping the edge scenarios and the invalidation lag"
	fi
done

mkdir -p "$OUT/bin"
log "building the seeder and the harness"
go build -o "$OUT/bin/seed" ./loadtest/cmd/seed
go build -o "$OUT/bin/load" ./loadtest/cmd/load
psql_q() { "$PG_BIN/psql" -qAtX -h 127.0.0.1 -p "$PG_PORT" -U postgres licensing "$@"; }

to_number() { # 100k -> 100000, 10m -> 10000000
	case "$1" in
	*k) echo $((${1%k} * 1000)) ;;
	*m) echo $((${1%m} * 1000000)) ;;
	*) echo "$1" ;;
	esac
}

# pgbench_run NAME SCRIPT EXTRA...: runs pgbench with per-transaction logs and turns
# them into a result comparable with the harness's.
pgbench_run() {
	local name=$1 script=$2 dir="$OUT/pgbench-$size-$1"
	shift 2
	rm -rf "$dir"
	mkdir -p "$dir"
	log "pgbench $name"
	"$PG_BIN/pgbench" -n -M prepared -c "$PGBENCH_CLIENTS" -j 2 -T "$PGBENCH_SECONDS" -f "$script" "$@" \
		--log --log-prefix="$dir/log" -U license_app -h 127.0.0.1 -p "$PG_PORT" licensing >"$dir/stdout" 2>&1 ||
		{
			cat "$dir/stdout" >&2
			die "pgbench $name failed"
		}
	grep -E '^(tps|latency average)' "$dir/stdout" >&2 || true
	"$OUT/bin/load" pgbench -name "$name" -label "$size" -script "$script" -seconds "$PGBENCH_SECONDS" -out "$OUT/results" "$dir"/log.* >/dev/null
}

# settle: after a bulk load, VACUUM (ANALYZE) so autovacuum does not start in the middle
# of a measurement, and wait until the streaming replica (where the edges read) replayed.
settle() {
	log "settling: VACUUM (ANALYZE), then waiting for the replica to replay"
	local t0=$SECONDS lag
	psql_q -c "VACUUM (ANALYZE) license_keys, licenses, activations, audit_events, outbox" >/dev/null
	for _ in $(seq 1 600); do
		lag=$(psql_q -c "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint FROM pg_stat_replication")
		((lag < 1048576)) && break
		sleep 1
	done
	log "settled in $((SECONDS - t0)) s (replica ${lag:-?} bytes behind)"
}

ROWS=""
for size in $SIZES; do
	target=$(to_number "$size")
	have=$(psql_q -c "SELECT count(*) FROM activations")
	manifest="$OUT/manifest-$size.json"
	missing=$((target - have))
	if [[ -f "$manifest" && "${RESEED:-0}" != 1 ]]; then
		log "reusing $manifest ($have activations there; RESEED=1 seeds anew)"
	elif ((missing > 0)); then
		prefix="b${size}-$(date +%s | tail -c 6)"
		log "seeding $missing activations ($have there, $target wanted), prefix $prefix"
		"$OUT/bin/seed" -db "$SUPER_URL" -activations "$missing" -prefix "$prefix" -manifest "$manifest" | tee "$OUT/seed-$size.json"
	else
		log "$have activations already there (>= $target): seeding a small manifest-only run"
		prefix="b${size}-$(date +%s | tail -c 6)"
		"$OUT/bin/seed" -db "$SUPER_URL" -activations 20000 -prefix "$prefix" -manifest "$manifest" >"$OUT/seed-$size.json"
	fi
	settle
	psql_q -f loadtest/pgbench/setup.sql >/dev/null
	R="$OUT/results"
	run_load() { "$OUT/bin/load" run -manifest "$manifest" -out "$R" -label "$size" "$@" || true; }

	log "[$size] writer baselines"
	run_load -scenario writer_distinct,writer_hot
	ntargets=$(psql_q -c "SELECT count(*) FROM loadtest.pgbench_targets")
	pgbench_run pgbench_activation_distinct loadtest/pgbench/activation.sql -D "ntargets=$ntargets"
	pgbench_run pgbench_activation_hot loadtest/pgbench/activation.sql -D ntargets=1
	pgbench_run pgbench_hot_update loadtest/pgbench/hot_update.sql
	files=("$R/$size-writer_distinct.json" "$R/$size-writer_hot.json" "$R/$size-pgbench_activation_distinct.json"
		"$R/$size-pgbench_activation_hot.json" "$R/$size-pgbench_hot_update.json")

	if ((EDGES_UP)); then
		# the first pass over the manifest's keys meets cold caches (every key misses L1 and
		# L2 once and is read from the replica): measured on its own, then the warm runs
		log "[$size] status, cold caches"
		run_load -scenario status -variant cold
		files+=("$R/$size-status-cold.json")
		log "[$size] edge scenarios: $SCENARIOS"
		run_load -scenario "$SCENARIOS"
		IFS=, read -r -a scs <<<"$SCENARIOS"
		for s in "${scs[@]}"; do files+=("$R/$size-$s.json"); done
		if [[ -n "${BASELINE_STATUS_URL:-}" ]]; then
			log "[$size] status against the constant-response baseline $BASELINE_STATUS_URL"
			"$OUT/bin/load" run -manifest "$manifest" -out "$R" -label "$size-baseline" -scenario status -edges "$BASELINE_STATUS_URL" || true
			files+=("$R/$size-baseline-status.json")
		fi
		log "[$size] invalidation lag ($LAG_SAMPLES samples)"
		"$OUT/bin/load" lag -manifest "$manifest" -out "$R" -label "$size" -samples "$LAG_SAMPLES" || true
		files+=("$R/$size-invalidation_lag.json")
	else
		log "[$size] SKIPPED edge status, storm, mix and invalidation lag: edges not running"
	fi
	existing=()
	for f in "${files[@]}"; do [[ -f "$f" ]] && existing+=("$f"); done
	ROWS+=$("$OUT/bin/load" report -md "$(psql_q -c "SELECT count(*) FROM activations") activations" "${existing[@]}")$'\n'
done

all=("$OUT"/results/*.json)
"$OUT/bin/load" report -html "$OUT/report.html" "${all[@]}" >/dev/null
{
	echo
	echo "## Benchmarks ($(date -u +%FT%TZ), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo))"
	echo
	"$OUT/bin/load" report -header
	printf '%s' "$ROWS"
	echo
	echo "Results: $OUT/results/*.json, chart: $OUT/report.html"
} | tee "$OUT/summary.md"
