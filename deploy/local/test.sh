#!/usr/bin/env bash
# `make test`: starts the test-profile services (Postgres primary + replica, Redis,
# NATS on the 2xxxx ports), runs the whole Go test suite against them (-race) with
# LICENSE_TEST_REQUIRE=1, runs the linters, and stops the services on exit
# (keep them with KEEP_SERVICES=1). Exits non-zero if tests or lint failed.
#
# GO_TEST_FLAGS adds flags to go test (e.g. GO_TEST_FLAGS='-run TestFoo -v').
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

"$LIB_DIR/deps.sh"

cleanup() {
	if [[ "${KEEP_SERVICES:-0}" == 1 ]]; then
		log "KEEP_SERVICES=1: test services left running (deploy/local/services.sh down test)"
	else
		"$LIB_DIR/services.sh" down test || true
	fi
}
trap cleanup EXIT

"$LIB_DIR/services.sh" up test
eval "$("$LIB_DIR/services.sh" env test)"

# -race: the race detector needs cgo (deps.sh installed the C compiler)
export CGO_ENABLED=1
test_status=0
# The fault-injection harness (loadtest/chaos) and the multi-region simulation
# (loadtest/sim, its shortened run) each run a topology of their own processes under load:
# they run after the other packages and one after the other, not beside them, so that
# none disturbs another's timing.
mapfile -t packages < <(go list ./... | grep -v -e '/loadtest/chaos$' -e '/loadtest/sim$')
# shellcheck disable=SC2086 # GO_TEST_FLAGS is a word list on purpose
go test -race -count=1 -timeout 20m ${GO_TEST_FLAGS:-} "${packages[@]}" || test_status=$?
# shellcheck disable=SC2086
go test -race -count=1 -timeout 10m -p 1 ${GO_TEST_FLAGS:-} ./loadtest/chaos/ ./loadtest/sim/ || test_status=$?

lint_status=0
if [[ "${SKIP_LINT:-0}" != 1 ]]; then
	"$LIB_DIR/lint.sh" || lint_status=$?
fi

if ((test_status != 0)); then
	log "go test FAILED (exit $test_status)"
	exit "$test_status"
fi
if ((lint_status != 0)); then
	log "lint FAILED (exit $lint_status)"
	exit "$lint_status"
fi
log "tests and lint passed"
