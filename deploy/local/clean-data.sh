#!/usr/bin/env bash
# Deletes .data/ (and Postgres data kept under /var/tmp for this repo) and bin/.
# Call only with the services stopped (`make clean-data` stops them first).
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

for link in .data/*/pg; do
	if [[ -L "$link" ]]; then
		target=$(readlink "$link")
		case "$target" in
		/var/tmp/licensing-*)
			rm -rf "$target"
			# drop the now empty per-profile and per-repo folders
			rmdir "$(dirname "$target")" "$(dirname "$(dirname "$target")")" 2>/dev/null || true
			;;
		esac
	fi
done
rm -rf .data bin
log "removed .data/ and bin/"
