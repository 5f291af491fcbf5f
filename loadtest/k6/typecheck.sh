#!/usr/bin/env bash
# Type-checks the k6 scripts (*.js) with TypeScript against k6's type definitions
# (@types/k6): tsc --noEmit --allowJs --checkJs, as tsconfig.json says. k6 itself is not
# installable here; this catches misuse of its API (unknown options, wrong arguments to
# http.*, metrics and SharedArray) that node's parser cannot.
#
# The first run installs the pinned TypeScript and @types/k6 (package-lock.json) into
# ./node_modules with npm ci; later runs reuse it while package-lock.json is unchanged.
# Extra arguments go to tsc. Called by TestScriptsTypeCheck (go test ./loadtest/k6).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v npm >/dev/null 2>&1 || { echo "typecheck: npm is not installed (deploy/local/deps.sh installs it)" >&2; exit 1; }
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -x node_modules/.bin/tsc || "$(cat node_modules/.lock-sha256 2>/dev/null)" != "$want" ]]; then
	echo "typecheck: installing TypeScript and @types/k6 into loadtest/k6/node_modules (npm ci)" >&2
	npm ci --loglevel=error >&2
	echo "$want" >node_modules/.lock-sha256
fi
exec node_modules/.bin/tsc -p tsconfig.json "$@"
