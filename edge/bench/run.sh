#!/usr/bin/env bash
# Edge benchmark: status checks served from L1, from L2 (L1 off) and from the replica
# (L1 and L2 off), each against a constant-response fasthttp server with a body of the
# same size; prints a markdown table. Needs the test services (make services-test-up).
#
#   edge/bench/run.sh [-concurrency 64] [-duration 5s] [-keys 10000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ -z "${LICENSE_TEST_PG_URL:-}" ]]; then
	eval "$(deploy/local/services.sh env test)"
fi
exec go run ./edge/bench "$@"
