#!/usr/bin/env bash
# `make lint`: gofmt, go vet and staticcheck (pinned; STATICCHECK=0 skips it).
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}
status=0

log "gofmt -l"
unformatted=$(find . \( -path ./.data -o -path ./.git -o -path ./bin -o -name node_modules \) -prune -o \
	-name '*.go' -type f -print0 | xargs -0 -r gofmt -l)
if [[ -n "$unformatted" ]]; then
	echo "gofmt: these files need formatting (run gofmt -w):" >&2
	printf '%s\n' "$unformatted" | sed 's/^/  /' >&2
	status=1
fi

log "go vet ./..."
go vet ./... || status=1

if [[ "${STATICCHECK:-1}" != 0 ]]; then
	log "staticcheck $STATICCHECK_VERSION"
	if command -v staticcheck >/dev/null 2>&1 && [[ "$(staticcheck -version 2>/dev/null)" == *"(${STATICCHECK_VERSION#v})"* ]]; then
		staticcheck ./... || status=1
	else
		go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./... || status=1
	fi
fi
exit "$status"
