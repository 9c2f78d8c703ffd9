#!/usr/bin/env bash
# Builds the rehearse/postgres image offline from this machine's Debian PostgreSQL
# packages: no apt, no pull. Idempotent: when an image with the same tag already has
# the same content hash (label dev.rehearse.content-hash), nothing is built.
#
#   images/postgres/build.sh [TAG]        (default rehearse/postgres:15)
#
# Environment: PG_MAJOR (15), PG_BIN (/usr/lib/postgresql/$PG_MAJOR), GO (go), DOCKER (docker).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=${1:-rehearse/postgres:15}
major=${PG_MAJOR:-15}
pgdir=${PG_BIN:-/usr/lib/postgresql/$major}
share=/usr/share/postgresql/$major
GO=${GO:-go}
DOCKER=${DOCKER:-docker}

[ -x "$pgdir/bin/postgres" ] || { echo "build.sh: no PostgreSQL $major server at $pgdir (apt-get install postgresql-$major)" >&2; exit 1; }
[ -d "$share" ] || { echo "build.sh: no $share" >&2; exit 1; }

ctx=$(mktemp -d "${TMPDIR:-/tmp}/rehearse-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
rootfs=$ctx/rootfs
mkdir -p "$rootfs"

# put copies a file (following symlinks) to the same path under rootfs.
put() {
	local src=$1 dst=$rootfs$1
	mkdir -p "$(dirname "$dst")"
	cp -L --preserve=mode "$src" "$dst"
}

progs=(postgres initdb pg_ctl pg_basebackup pg_rewind pg_controldata pg_isready psql pg_checksums pg_waldump)
objs=()
for p in "${progs[@]}"; do
	[ -x "$pgdir/bin/$p" ] && objs+=("$pgdir/bin/$p")
done
# Server modules (libpqwalreceiver is what a standby streams with). llvmjit needs
# libLLVM (~100 MB): left out, so the image sets jit=off.
for so in "$pgdir"/lib/*.so; do
	case $(basename "$so") in llvmjit*) continue ;; esac
	objs+=("$so")
done
objs+=(/bin/dash)

declare -A libs=()
for o in "${objs[@]}"; do
	put "$o"
	while read -r lib; do
		[ -n "$lib" ] && libs[$lib]=1
	done < <(ldd "$o" 2>/dev/null | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}')
done
for lib in "${!libs[@]}"; do
	put "$lib"
	# The loader resolves by the name the binary asks for; keep it where ldd found it
	# and also under /lib/x86_64-linux-gnu if it came from /usr/lib (merged /usr).
done
ln -sf dash "$rootfs/bin/sh"

mkdir -p "$rootfs/usr/share/postgresql"
cp -a "$share" "$rootfs/usr/share/postgresql/"
mkdir -p "$rootfs/usr/share"
cp -aL /usr/share/zoneinfo "$rootfs/usr/share/zoneinfo" 2>/dev/null || cp -a /usr/share/zoneinfo "$rootfs/usr/share/zoneinfo"
# jit off: llvmjit.so is not in the image.
sed -i 's/^#jit = on.*/jit = off/' "$rootfs$share/postgresql.conf.sample"

mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/var/lib/postgresql" "$rootfs/var/run/postgresql" "$rootfs/usr/local/bin"
chmod 1777 "$rootfs/tmp"
pguid=999 pggid=999
cat > "$rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
postgres:x:$pguid:$pggid:PostgreSQL administrator:/var/lib/postgresql:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat > "$rootfs/etc/group" <<GROUP
root:x:0:
postgres:x:$pggid:
nogroup:x:65534:
GROUP
echo 'passwd: files
group: files
hosts: files dns' > "$rootfs/etc/nsswitch.conf"
echo '127.0.0.1 localhost' > "$rootfs/etc/hosts"
chown -R $pguid:$pggid "$rootfs/var/lib/postgresql" "$rootfs/var/run/postgresql"

(cd "$root" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags '-s -w' -o "$rootfs/usr/local/bin/rehearse-pg" ./images/postgres/entrypoint)
cp "$here/Dockerfile" "$ctx/Dockerfile"

# Content hash: every path, mode and byte of the context, in a stable order.
hash=$(cd "$ctx" && find . -print0 | LC_ALL=C sort -z |
	xargs -0 -n 64 sh -c 'for f; do if [ -f "$f" ] && [ ! -L "$f" ]; then printf "%s %s " "$f" "$(stat -c %a "$f")"; sha256sum < "$f"; else printf "%s %s\n" "$f" "$(readlink "$f" || true)"; fi; done' sh |
	sha256sum | cut -c1-32)

have=$("$DOCKER" image inspect --format '{{ index .Config.Labels "dev.rehearse.content-hash" }}' "$tag" 2>/dev/null || true)
if [ "$have" = "$hash" ]; then
	echo "image $tag is up to date (content $hash)"
	exit 0
fi
echo "building image $tag (content $hash)"
DOCKER_BUILDKIT=0 "$DOCKER" build -q \
	--label "dev.rehearse.content-hash=$hash" \
	--label "dev.rehearse.entrypoint=rehearse-pg" \
	--label "dev.rehearse.pg-major=$major" \
	-t "$tag" "$ctx" >/dev/null
"$DOCKER" image inspect --format "built {{ index .RepoTags 0 }}: {{ .Size }} bytes" "$tag"
