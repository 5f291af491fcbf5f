#!/usr/bin/env bash
# `make up`: the whole local topology on loopback.
#   Postgres primary :15432 + streaming replica :15433, Redis :16379, NATS :14222,
#   writers :8080 and :8083 (one Postgres; the outbox relay runs on whichever holds
#   its lease), edges :8081 and :8082 relaying writes to both writers,
#   plus demo brands, products and a license key (first run only), and a demo webhook
#   receiver :8090 subscribed to the rankmath brand's events.
# Idempotent: with everything running it only prints the summary again.
# RATE_LIMITS=off (make up RATE_LIMITS=off) runs the writers and edges without rate limits,
# for black-box suites that hammer the topology from one address; the default is on.
# Changing it restarts the writers and edges.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

PG_PORT=${PG_PORT:-15432}
PG_REPLICA_PORT=${PG_REPLICA_PORT:-15433}
REDIS_PORT=${REDIS_PORT:-16379}
NATS_PORT=${NATS_PORT:-14222}
WRITER_PORT=${WRITER_PORT:-8080}
WRITER2_PORT=${WRITER2_PORT:-8083}
WRITER_PORTS=("$WRITER_PORT" "$WRITER2_PORT")
EDGE_PORTS=("${EDGE1_PORT:-8081}" "${EDGE2_PORT:-8082}")
RECEIVER_PORT=${RECEIVER_PORT:-8090}
export PG_PORT PG_REPLICA_PORT REDIS_PORT NATS_PORT

DATA="$REPO_ROOT/.data/local"
LOGS="$DATA/logs"
WRITER_URL="http://127.0.0.1:$WRITER_PORT"
WRITER2_URL="http://127.0.0.1:$WRITER2_PORT"
# the writer's role and the edges' read-only role; services.sh sets these local passwords
PRIMARY_APP_URL="postgres://license_app:license_app@127.0.0.1:$PG_PORT/licensing?sslmode=disable"
PRIMARY_EDGE_URL="postgres://license_edge:license_edge@127.0.0.1:$PG_PORT/licensing?sslmode=disable"
REPLICA_EDGE_URL="postgres://license_edge:license_edge@127.0.0.1:$PG_REPLICA_PORT/licensing?sslmode=disable"
MIGRATE_URL="postgres://postgres@127.0.0.1:$PG_PORT/licensing?sslmode=disable"
NATS_URL="nats://127.0.0.1:$NATS_PORT"
READY_SECS=${READY_SECS:-60}
RATE_LIMITS=${RATE_LIMITS:-on}
[[ "$RATE_LIMITS" == on || "$RATE_LIMITS" == off ]] || die "RATE_LIMITS=$RATE_LIMITS: on or off"
# the edges reach the writers from their own loopback address, the only one the writers
# trust to name the client in X-Forwarded-For (API.md: a client on 127.0.0.1 cannot
# forge its address)
EDGE_SOURCE_IP=127.0.0.2

"$LIB_DIR/deps.sh"
"$LIB_DIR/services.sh" up local
mkdir -p "$LOGS" bin

# --- build ---------------------------------------------------------------------
[[ -d writer/cmd/writer ]] || die "writer/cmd/writer does not exist yet: nothing to run (services are up; 'make down' stops them)"
command -v go >/dev/null 2>&1 || die "go is not on PATH"
log "building bin/writer"
go build -o bin/writer ./writer/cmd/writer
if [[ -d edge/cmd/edge ]]; then
	log "building bin/edge"
	go build -o bin/edge ./edge/cmd/edge
fi
log "building bin/hook-receiver"
go build -o bin/hook-receiver ./writer/cmd/hook-receiver

# --- operator token (generated once) -------------------------------------------
TOKEN_FILE="$DATA/operator-token"
if [[ ! -s "$TOKEN_FILE" ]]; then
	(
		umask 077
		od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE"
	)
fi
OPERATOR_TOKEN=$(cat "$TOKEN_FILE")

# --- the key sealing webhook secrets at rest (generated once) ----------------------
WEBHOOK_KEY_FILE="$DATA/webhook-key"
if [[ ! -s "$WEBHOOK_KEY_FILE" ]]; then
	(
		umask 077
		head -c 32 /dev/urandom | base64 -w0 >"$WEBHOOK_KEY_FILE"
	)
fi

# --- lease signing keys: one per node (generated once, 0600) and the key set every node
# publishes at /.well-known/jwks.json (rebuilt from the key files on every run) ----------
KEYS="$DATA/keys"
(umask 077 && mkdir -p "$KEYS")
for n in writer-1 writer-2 edge-1 edge-2; do
	if [[ ! -s "$KEYS/$n.pem" ]]; then
		command -v openssl >/dev/null 2>&1 || die "openssl is needed to generate the lease signing keys (apt-get install openssl)"
		(umask 077 && openssl genpkey -algorithm ed25519 -out "$KEYS/$n.pem")
	fi
done
JWKS_FILE="$KEYS/jwks.json"
bin/writer lease-key "$KEYS"/writer-1.pem "$KEYS"/writer-2.pem "$KEYS"/edge-1.pem "$KEYS"/edge-2.pem >"$JWKS_FILE.tmp"
mv "$JWKS_FILE.tmp" "$JWKS_FILE"

WRITER_ENV=(
	"WRITER_DATABASE_URL=$PRIMARY_APP_URL"
	"WRITER_MIGRATE_DATABASE_URL=$MIGRATE_URL"
	"WRITER_NATS_URL=$NATS_URL"
	"WRITER_OPERATOR_TOKEN=$OPERATOR_TOKEN"
	"WRITER_REDIS_ADDR=127.0.0.1:$REDIS_PORT"
	"WRITER_TRUSTED_PROXIES=$EDGE_SOURCE_IP/32"
	"WRITER_RATE_LIMITS=$RATE_LIMITS"
	"WRITER_WEBHOOK_KEYS=$(cat "$WEBHOOK_KEY_FILE")"
	# the demo receiver listens on loopback: allowed here only (never in production)
	"WRITER_WEBHOOK_ALLOW_LOOPBACK=true"
	"WRITER_JWKS_FILE=$JWKS_FILE"
)

# --- rate-limit mode: a change restarts the writers and edges -------------------
MODE_FILE="$DATA/rate-limits"
if [[ -f "$MODE_FILE" && "$(cat "$MODE_FILE")" != "$RATE_LIMITS" ]]; then
	log "rate limits were $(cat "$MODE_FILE"), now $RATE_LIMITS: restarting the writers and edges"
	for n in edge-1 edge-2 writer-1 writer-2; do
		stop_pidfile "$DATA/$n.pid" "${n%-*}" 30
	done
fi
echo "$RATE_LIMITS" >"$MODE_FILE"

# start_bg NAME PIDFILE LOGFILE BINARY -- ENV...: starts BINARY in the background
# with the extra environment, unless the pidfile names a live NAME process.
start_bg() {
	local name=$1 pidfile=$2 logf=$3 binary=$4
	shift 5
	if pid_alive "$pidfile" "$(basename "$binary")"; then
		log "$name already running (pid $(cat "$pidfile"))"
		return 0
	fi
	log "starting $name (log: ${logf#"$REPO_ROOT"/})"
	printf '\n=== %s start %s\n' "$name" "$(date -u +%FT%TZ)" >>"$logf"
	nohup env "$@" "$binary" </dev/null >>"$logf" 2>&1 &
	echo "$!" >"$pidfile"
}

# wait_ready NAME PIDFILE LOGFILE URL: polls URL/readyz until 2xx; fails early if
# the process died. The polls are silent (a refused connection while the process starts
# is expected); curl's last complaint is shown only if the wait fails.
wait_ready() {
	local name=$1 pidfile=$2 logf=$3 url=$4 deadline=$((SECONDS + READY_SECS))
	until http_ok "$url/readyz" 2>/dev/null; do
		if ! pid_alive "$pidfile"; then
			echo "--- last lines of $logf:" >&2
			tail -n 40 "$logf" >&2 || true
			die "$name exited before it was ready"
		fi
		if ((SECONDS >= deadline)); then
			echo "--- last lines of $logf:" >&2
			tail -n 40 "$logf" >&2 || true
			http_ok "$url/readyz" || true
			die "$name not ready at $url/readyz after ${READY_SECS}s"
		fi
		sleep 0.2
	done
	log "$name ready at $url"
}

# --- writers -------------------------------------------------------------------
# a writer started by an earlier version of this script (one writer, writer.pid)
stop_pidfile "$DATA/writer.pid" writer 30
MIGRATED=0
for i in 1 2; do
	port=${WRITER_PORTS[$((i - 1))]}
	if pid_alive "$DATA/writer-$i.pid" writer; then
		log "writer-$i already running (pid $(cat "$DATA/writer-$i.pid")); 'make down && make up' restarts it with new code"
		continue
	fi
	if ((!MIGRATED)); then
		log "running migrations"
		env "${WRITER_ENV[@]}" bin/writer migrate
		MIGRATED=1
	fi
	start_bg "writer-$i" "$DATA/writer-$i.pid" "$LOGS/writer-$i.log" bin/writer -- "${WRITER_ENV[@]}" \
		"WRITER_ADDR=127.0.0.1:$port" "WRITER_SIGNING_KEY_FILE=$KEYS/writer-$i.pem"
done
for i in 1 2; do
	port=${WRITER_PORTS[$((i - 1))]}
	wait_ready "writer-$i" "$DATA/writer-$i.pid" "$LOGS/writer-$i.log" "http://127.0.0.1:$port"
done

# --- edges ----------------------------------------------------------------------
EDGES_RUNNING=0
if [[ -x bin/edge ]]; then
	for i in 1 2; do
		port=${EDGE_PORTS[$((i - 1))]}
		start_bg "edge-$i" "$DATA/edge-$i.pid" "$LOGS/edge-$i.log" bin/edge -- \
			"EDGE_ADDR=127.0.0.1:$port" \
			"EDGE_NODE_ID=edge-$i" \
			"EDGE_REPLICA_URL=$REPLICA_EDGE_URL" \
			"EDGE_PRIMARY_URL=$PRIMARY_EDGE_URL" \
			"EDGE_REDIS_ADDR=127.0.0.1:$REDIS_PORT" \
			"EDGE_NATS_URL=$NATS_URL" \
			"EDGE_WRITER_URL=$WRITER_URL,$WRITER2_URL" \
			"EDGE_WRITER_SOURCE_IP=$EDGE_SOURCE_IP" \
			"EDGE_RATE_LIMITS=$RATE_LIMITS" \
			"EDGE_SIGNING_KEY_FILE=$KEYS/edge-$i.pem" \
			"EDGE_JWKS_FILE=$JWKS_FILE" \
			"EDGE_CORS_ORIGINS=http://localhost:8080,http://127.0.0.1:8080"
	done
	for i in 1 2; do
		port=${EDGE_PORTS[$((i - 1))]}
		wait_ready "edge-$i" "$DATA/edge-$i.pid" "$LOGS/edge-$i.log" "http://127.0.0.1:$port"
	done
	EDGES_RUNNING=1
fi

# --- demo data (first run only; progress kept in demo.env) -------------------------
DEMO_ENV="$DATA/demo.env"
RANKMATH_API_KEY="" WPROCKET_API_KEY="" DEMO_LICENSE_KEY="" DEMO_DONE=""
if [[ -f "$DEMO_ENV" ]]; then
	# shellcheck source=/dev/null
	source "$DEMO_ENV"
fi

demo_set() { # demo_set VAR VALUE: remember VALUE in demo.env
	printf -v "$1" '%s' "$2"
	(
		umask 077
		printf '%s=%q\n' "$1" "$2" >>"$DEMO_ENV"
	)
}

# json_field NAME: first "NAME":"value" string in stdin (no jq needed).
json_field() {
	{ grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" || true; } | sed -n '1s/.*:[[:space:]]*"\(.*\)"$/\1/p'
}

HTTP_STATUS="" HTTP_BODY=""
# api METHOD PATH TOKEN [JSON] [EXTRA CURL ARGS...]: sets HTTP_STATUS, HTTP_BODY.
api() {
	local method=$1 path=$2 token=$3 body=${4:-} tmp
	shift 4 || shift $#
	tmp=$(mktemp)
	local args=(-sS -o "$tmp" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token" "$@")
	if [[ -n "$body" ]]; then
		args+=(-H 'Content-Type: application/json' --data "$body")
	fi
	HTTP_STATUS=$(curl "${args[@]}" "$WRITER_URL$path") || HTTP_STATUS=000
	HTTP_BODY=$(cat "$tmp")
	rm -f "$tmp"
}

# brand_key SLUG NAME: prints a fresh API key secret for the brand: bootstrap
# creates the brand; if it already exists, the operator API issues a new key.
brand_key() {
	local slug=$1 name=$2 out secret
	if out=$(env "${WRITER_ENV[@]}" bin/writer bootstrap --slug "$slug" --name "$name" 2>>"$LOGS/bootstrap.log"); then
		secret=$(printf '%s' "$out" | json_field secret)
		[[ -n "$secret" ]] || die "bootstrap $slug printed no api_key.secret: $out"
		printf '%s\n' "$secret"
		return 0
	fi
	warn "bootstrap $slug failed (see $LOGS/bootstrap.log); issuing a new key over the operator API"
	api POST "/v1/brands/$slug/api-keys" "$OPERATOR_TOKEN" '{}'
	[[ "$HTTP_STATUS" == 201 ]] || die "POST /v1/brands/$slug/api-keys: $HTTP_STATUS $HTTP_BODY"
	secret=$(printf '%s' "$HTTP_BODY" | json_field secret)
	[[ -n "$secret" ]] || die "no secret in: $HTTP_BODY"
	printf '%s\n' "$secret"
}

create_product() { # create_product KEY CODE NAME
	api POST /v1/products "$1" "{\"code\":\"$2\",\"name\":\"$3\"}"
	case "$HTTP_STATUS" in
	201) log "product $2 created" ;;
	409) log "product $2 exists" ;;
	*) die "POST /v1/products $2: $HTTP_STATUS $HTTP_BODY" ;;
	esac
}

if [[ "$DEMO_DONE" != 1 ]]; then
	log "creating demo data"
	if [[ -z "$RANKMATH_API_KEY" ]]; then
		k=$(brand_key rankmath RankMath)
		demo_set RANKMATH_API_KEY "$k"
	fi
	if [[ -z "$WPROCKET_API_KEY" ]]; then
		k=$(brand_key wp-rocket 'WP Rocket')
		demo_set WPROCKET_API_KEY "$k"
	fi
	create_product "$RANKMATH_API_KEY" rankmath-pro 'Rank Math Pro'
	create_product "$RANKMATH_API_KEY" content-ai 'Content AI'
	create_product "$WPROCKET_API_KEY" wp-rocket 'WP Rocket'
	if [[ -z "$DEMO_LICENSE_KEY" ]]; then
		api POST /v1/license-keys "$RANKMATH_API_KEY" \
			'{"customer_email":"jane@example.com","licenses":[{"product":"rankmath-pro","seat_limit":3},{"product":"content-ai","seat_limit":1}]}' \
			-H 'Idempotency-Key: make-up-demo-license-1'
		[[ "$HTTP_STATUS" == 201 || "$HTTP_STATUS" == 200 ]] || die "POST /v1/license-keys: $HTTP_STATUS $HTTP_BODY"
		k=$(printf '%s' "$HTTP_BODY" | json_field key)
		[[ -n "$k" ]] || die "no key in: $HTTP_BODY"
		demo_set DEMO_LICENSE_KEY "$k"
	fi
	demo_set DEMO_DONE 1
fi

# --- demo webhook receiver (endpoint registered on the first run) -------------------
WEBHOOK_SECRET_FILE="$DATA/webhook-secret"
RECEIVER_URL="http://127.0.0.1:$RECEIVER_PORT/hooks"
WEBHOOK_ENDPOINT_ID=${WEBHOOK_ENDPOINT_ID:-}
if [[ -z "$WEBHOOK_ENDPOINT_ID" || ! -s "$WEBHOOK_SECRET_FILE" ]]; then
	api POST /v1/webhook-endpoints "$RANKMATH_API_KEY" \
		"{\"url\":\"$RECEIVER_URL\",\"description\":\"make up demo receiver\"}" \
		-H 'Idempotency-Key: make-up-demo-webhook-1'
	[[ "$HTTP_STATUS" == 201 ]] || die "POST /v1/webhook-endpoints: $HTTP_STATUS $HTTP_BODY"
	secret=$(printf '%s' "$HTTP_BODY" | json_field secret)
	id=$(printf '%s' "$HTTP_BODY" | json_field id)
	[[ -n "$secret" && -n "$id" ]] || die "no id or secret in the webhook endpoint answer"
	(
		umask 077
		printf '%s\n' "$secret" >"$WEBHOOK_SECRET_FILE"
	)
	demo_set WEBHOOK_ENDPOINT_ID "$id"
	log "webhook endpoint $id registered for rankmath → $RECEIVER_URL"
fi
start_bg hook-receiver "$DATA/hook-receiver.pid" "$LOGS/hook-receiver.log" bin/hook-receiver -- \
	"WEBHOOK_RECEIVER_ADDR=127.0.0.1:$RECEIVER_PORT" "WEBHOOK_SECRET_FILE=$WEBHOOK_SECRET_FILE"
deadline=$((SECONDS + 10))
until curl -s -o /dev/null "http://127.0.0.1:$RECEIVER_PORT/"; do
	pid_alive "$DATA/hook-receiver.pid" || die "hook-receiver exited (see $LOGS/hook-receiver.log)"
	((SECONDS < deadline)) || die "hook-receiver not listening on :$RECEIVER_PORT"
	sleep 0.1
done
# show one delivery arriving: a webhook.test, verified by the receiver
WEBHOOK_DEMO_LINE=""
api POST "/v1/webhook-endpoints/$WEBHOOK_ENDPOINT_ID/test" "$RANKMATH_API_KEY" ''
if [[ "$HTTP_STATUS" == 202 ]]; then
	event=$(printf '%s' "$HTTP_BODY" | json_field event_id)
	deadline=$((SECONDS + 20))
	until WEBHOOK_DEMO_LINE=$(grep -F "webhook-id=$event" "$LOGS/hook-receiver.log" | tail -n 1) && [[ -n "$WEBHOOK_DEMO_LINE" ]]; do
		if ((SECONDS >= deadline)); then
			warn "the demo receiver has not logged webhook.test $event after 20 s (see $LOGS/hook-receiver.log)"
			break
		fi
		sleep 0.2
	done
else
	warn "POST /v1/webhook-endpoints/$WEBHOOK_ENDPOINT_ID/test: $HTTP_STATUS $HTTP_BODY"
fi

# --- summary ---------------------------------------------------------------------
W=$WRITER_URL
K=$DEMO_LICENSE_KEY
cat <<EOF

================ licensing: local topology is up ================
writers     $W  $WRITER2_URL   (logs .data/local/logs/writer-*.log; either serves every call)
EOF
if ((EDGES_RUNNING)); then
	echo "edges       http://127.0.0.1:${EDGE_PORTS[0]}  http://127.0.0.1:${EDGE_PORTS[1]}   (logs .data/local/logs/edge-*.log)"
fi
cat <<EOF
postgres    primary 127.0.0.1:$PG_PORT, replica 127.0.0.1:$PG_REPLICA_PORT (db licensing)
redis       127.0.0.1:$REDIS_PORT     nats  $NATS_URL
EOF
if [[ "$RATE_LIMITS" == on ]]; then
	cat <<EOF
rate limits ON (API.md defaults, shared through Redis; per IP on the public routes: 20/s
            status, 2/s writes, 30 404s per 10 min). For load from one address:
            make up RATE_LIMITS=off
EOF
else
	echo "rate limits OFF (make up RATE_LIMITS=off); plain 'make up' turns them back on"
fi
cat <<EOF

webhooks    demo receiver http://127.0.0.1:$RECEIVER_PORT/hooks for rankmath (log .data/local/logs/hook-receiver.log)
            last delivery: ${WEBHOOK_DEMO_LINE:-none yet}

operator token      $OPERATOR_TOKEN
rankmath API key    $RANKMATH_API_KEY
wp-rocket API key   $WPROCKET_API_KEY
demo license key    $K   (jane@example.com: rankmath-pro x3 seats, content-ai x1)

Try:
  # brands (operator)
  curl -s $W/v1/brands -H 'Authorization: Bearer $OPERATOR_TOKEN'
  # products of rankmath
  curl -s $W/v1/products -H 'Authorization: Bearer $RANKMATH_API_KEY'
  # provision a license key
  curl -s -X POST $W/v1/license-keys -H 'Authorization: Bearer $RANKMATH_API_KEY' -H 'Content-Type: application/json' \\
    -d '{"customer_email":"john@example.com","licenses":[{"product":"rankmath-pro","seat_limit":1}]}'
  # activate a site (public, no credential)
  curl -s -X POST $W/v1/public/rankmath/activations -H 'Content-Type: application/json' \\
    -d '{"license_key":"$K","product":"rankmath-pro","instance":"https://example.com"}'
  # its staging copy: a development instance, no seat taken ("development": true)
  curl -s -X POST $W/v1/public/rankmath/activations -H 'Content-Type: application/json' \\
    -d '{"license_key":"$K","product":"rankmath-pro","instance":"https://staging.example.com"}'
  # status check via the writer
  curl -s '$W/v1/public/rankmath/licenses/$K/status?product=rankmath-pro'
EOF
if ((EDGES_RUNNING)); then
	cat <<EOF
  # status check via edge-1
  curl -s 'http://127.0.0.1:${EDGE_PORTS[0]}/v1/public/rankmath/licenses/$K/status?product=rankmath-pro'
  # the same as a signed lease (JWS), and the keys that verify it (every node serves all four)
  curl -s -H 'Accept: application/jose' 'http://127.0.0.1:${EDGE_PORTS[0]}/v1/public/rankmath/licenses/$K/status?product=rankmath-pro'
  curl -s http://127.0.0.1:${EDGE_PORTS[0]}/.well-known/jwks.json
EOF
fi
cat <<EOF
  # webhooks: every change of rankmath is delivered, signed, to the demo receiver; watch it
  tail -f .data/local/logs/hook-receiver.log
  curl -s $W/v1/webhook-endpoints/$WEBHOOK_ENDPOINT_ID/deliveries -H 'Authorization: Bearer $RANKMATH_API_KEY'
  # API docs: $W/api/docs/

Stop everything with: make down
EOF
