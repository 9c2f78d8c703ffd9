#!/usr/bin/env bash
# Builds the rehearse/rehearse image offline: a static rehearse binary FROM scratch,
# no pull. Idempotent: when an image with the same tag already has the same content
# hash (label dev.rehearse.content-hash), nothing is built.
#
#   images/rehearse/build.sh [TAG] [VERSION]   (default rehearse/rehearse:dev)
#
# Environment: GO (go), DOCKER (docker), CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=${1:-rehearse/rehearse:dev}
version=${2:-dev}
GO=${GO:-go}
DOCKER=${DOCKER:-docker}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

ctx=$(mktemp -d "${TMPDIR:-/tmp}/rehearse-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
rootfs=$ctx/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"

(cd "$root" && CGO_ENABLED=0 "$GO" build -trimpath \
	-ldflags "-s -w -X github.com/rehearse-dev/rehearse.version=$version" \
	-o "$rootfs/usr/local/bin/rehearse" ./cmd/rehearse)
if [ -f "$ca" ]; then
	cp -L "$ca" "$rootfs/etc/ssl/certs/ca-certificates.crt"
else
	echo "build.sh: no CA bundle at $ca: the image cannot verify a database's TLS certificate" >&2
fi
cat > "$rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
rehearse:x:65532:65532:rehearse:/tmp:/sbin/nologin
PASSWD
cat > "$rootfs/etc/group" <<GROUP
root:x:0:
rehearse:x:65532:
GROUP
echo 'hosts: files dns' > "$rootfs/etc/nsswitch.conf"
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
	--label "dev.rehearse.version=$version" \
	-t "$tag" "$ctx" >/dev/null
"$DOCKER" image inspect --format "built {{ index .RepoTags 0 }}: {{ .Size }} bytes" "$tag"
