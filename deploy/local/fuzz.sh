#!/usr/bin/env bash
# `make fuzz`: runs every Go fuzz target for FUZZTIME (default 30s) each, one at a time.
# A crasher is written under the package's testdata/fuzz/<target>/ and fails the run;
# keep it there (it then runs as a seed in `make test`) and fix the code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
FUZZTIME=${FUZZTIME:-30s}
status=0
while read -r pkg target; do
	echo "==> $target ($pkg) for $FUZZTIME"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" || status=1
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r t; do echo "./$(dirname "${f#./}") $t"; done
done | sort)
exit $status
