#!/usr/bin/env bash
# Makes sure the servers the local topology and the tests need are installed:
# PostgreSQL (server binaries, 15 preferred), Redis, NATS (JetStream), curl, the C
# compiler go test -race needs (the race detector is built with cgo), and for the PHP
# client's tests (e2e/php_test.go, e2e/wordpress_test.go): PHP CLI with curl, mysqli, xml,
# mbstring and sodium (built into Debian's PHP), phpunit, WordPress (Debian's package; the
# test copies its files, it does not use /etc/wordpress) and MariaDB (the test starts a
# private mariadbd; the system's apache2 and mariadb services are not started by the
# install, see policy-rc.d below).
# On Debian/Ubuntu missing packages are installed with apt-get; elsewhere it
# prints what to install and exits 1. Silent when everything is present.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=() # Debian package names
find_pg_bin >/dev/null || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
CC_BIN=$(go env CC 2>/dev/null || echo gcc)
command -v "$CC_BIN" >/dev/null 2>&1 || missing+=(gcc)
# PHP client tests
if command -v php >/dev/null 2>&1; then
	php_modules=$(php -m 2>/dev/null | tr '[:upper:]' '[:lower:]')
	grep -qx curl <<<"$php_modules" || missing+=(php-curl)
	grep -qx mysqli <<<"$php_modules" || missing+=(php-mysql)
	grep -qx xml <<<"$php_modules" || missing+=(php-xml)
	grep -qx mbstring <<<"$php_modules" || missing+=(php-mbstring)
else
	missing+=(php-cli php-curl php-mysql php-xml php-mbstring)
fi
command -v phpunit >/dev/null 2>&1 || missing+=(phpunit)
[[ -f /usr/share/wordpress/wp-load.php ]] || missing+=(wordpress)
[[ -x /usr/sbin/mariadbd ]] || command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
# Swagger UI browser test (writer/app/docs_browser_test.go): headless Chromium; the k6
# scripts' type check (loadtest/k6/typecheck.sh): npm installs TypeScript and @types/k6
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# deploy validation (deploy/validate): promtool checks and unit-tests the Prometheus rules
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

((${#missing[@]} == 0)) && exit 0

is_debian() {
	[[ -f /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1
}

if ! is_debian; then
	cat >&2 <<EOF
error: missing dependencies: ${missing[*]}
This script installs them automatically only on Debian/Ubuntu. Install by hand:
  - PostgreSQL server 15 (13+ works; needs initdb, pg_ctl, pg_basebackup, pg_isready, psql)
      macOS: brew install postgresql@15   (and put its bin/ on PATH, or set PG_BIN)
      Fedora/RHEL: dnf install postgresql-server postgresql
  - Redis 6+ (redis-server and redis-cli)
      macOS: brew install redis           Fedora/RHEL: dnf install redis
  - nats-server 2.9+ (JetStream, the -js flag)
      macOS: brew install nats-server     elsewhere: the nats-server release for your OS
  - curl
  - a C compiler (gcc or clang; \`go env CC\`): make test runs go test -race, which needs cgo
  - PHP 7.4+ CLI with curl, mysqli, xml, mbstring and sodium; phpunit 9; WordPress 6 in
    /usr/share/wordpress; MariaDB server (mariadbd): the PHP client's and WordPress tests
    (or skip them: LICENSE_TEST_SKIP_PHP=1 LICENSE_TEST_SKIP_WORDPRESS=1)
EOF
	exit 1
fi

SUDO=()
if ((EUID != 0)); then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		die "missing packages (${missing[*]}) and not root: run as root: apt-get install -y ${missing[*]}"
	fi
fi

log "installing missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages such as mariadb-server, wordpress (apache2), redis-server and postgresql start
# system services when installed; the topology and the tests run their own instances, so
# a policy-rc.d answering 101 ("action forbidden") keeps the system's copies stopped
# during this install (an existing policy is left alone).
if [[ ! -e /usr/sbin/policy-rc.d ]] && ((EUID == 0)); then
	printf '#!/bin/sh\n# deploy/local/deps.sh: no service starts while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# Try the existing package lists first; refresh them only if that fails.
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
	"${SUDO[@]}" apt-get update -q >/dev/null
	"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

find_pg_bin >/dev/null || die "PostgreSQL server binaries still not found after install (set PG_BIN)"
for c in psql redis-server redis-cli nats-server curl "$CC_BIN" php phpunit chromium npm; do
	command -v "$c" >/dev/null 2>&1 || die "$c still not found after install"
done
