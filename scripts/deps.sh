#!/usr/bin/env bash
# Installs what rehearse needs on a Debian machine, idempotently:
#   scripts/deps.sh demo   the PostgreSQL server programs and PgBouncer
#   scripts/deps.sh test   the above, plus pgbench (the tpcb schema test) and
#                          Chromium (the report's browser test)
# As root it runs apt-get for whatever is missing (nothing when all is there);
# otherwise it prints the apt-get command and fails. The tests skip when one of
# these is missing, but fail when CI is set (.ci/run sets it).
set -euo pipefail

want=${1:-test}
case $want in
demo | test) ;;
*)
	echo "usage: $0 [demo|test]" >&2
	exit 2
	;;
esac
need=()

# add PACKAGE: needed, once.
add() {
	local p
	for p in "${need[@]}"; do
		[ "$p" = "$1" ] && return
	done
	need+=("$1")
}

# pg_bindirs lists the directories the PostgreSQL programs are looked up in, as
# rehearse and its tests do: pg_config --bindir, initdb's on PATH, then the Debian
# layout /usr/lib/postgresql/*/bin (not on PATH there).
pg_bindirs() {
	if command -v pg_config >/dev/null 2>&1; then
		pg_config --bindir 2>/dev/null || true
	fi
	local p
	if p=$(command -v initdb 2>/dev/null); then
		dirname "$(readlink -f "$p")"
	fi
	compgen -G "/usr/lib/postgresql/*/bin" || true
}

# have_pg PROGRAM...: one of those directories holds every PROGRAM.
have_pg() {
	local d p
	while read -r d; do
		[ -n "$d" ] || continue
		for p in "$@"; do
			[ -x "$d/$p" ] || continue 2
		done
		return 0
	done < <(pg_bindirs)
	return 1
}

# The server programs a node, a replica and a rewind run. Debian ships them, and
# pgbench, in postgresql-NN, which the postgresql package pulls in.
have_pg postgres initdb pg_ctl pg_basebackup pg_rewind || add postgresql
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || add pgbouncer
if [ "$want" = test ]; then
	have_pg pgbench || add postgresql
	# make image builds rehearse/postgres:15 from this machine's PostgreSQL 15.
	[ -x /usr/lib/postgresql/15/bin/postgres ] || add postgresql-15
	command -v docker >/dev/null 2>&1 || add docker.io
	command -v prometheus >/dev/null 2>&1 || add prometheus
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
		command -v google-chrome >/dev/null 2>&1 || command -v google-chrome-stable >/dev/null 2>&1 ||
		add chromium
fi
if ! command -v go >/dev/null 2>&1; then
	# Debian's golang-go is older than the Go this module needs.
	echo "rehearse needs Go $(sed -n 's/^go //p' "$(dirname "$0")/../go.mod") or later: install it from https://go.dev/dl/ and put it on PATH" >&2
	exit 1
fi

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
