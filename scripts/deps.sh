#!/usr/bin/env bash
# Installs what rehearse needs on a Debian machine, idempotently:
#   scripts/deps.sh demo   PostgreSQL server binaries
#   scripts/deps.sh test   the above, plus Chromium (the report's browser test)
# As root it runs apt-get; otherwise it says what to install and fails.
set -euo pipefail

want=${1:-test}
need=()

have_pg() {
	command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
	command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] && return 0
	compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

have_pg || need+=(postgresql)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
if [ "$want" = test ]; then
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
fi
command -v go >/dev/null 2>&1 || need+=(golang-go)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "rehearse needs these Debian packages: ${need[*]}" >&2
	echo "install them with: sudo apt-get install -y ${need[*]}" >&2
	exit 1
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian postgresql package creates and starts a cluster of its own; rehearse
# starts its own servers and needs none of it, so leave it be but do not depend on it.
