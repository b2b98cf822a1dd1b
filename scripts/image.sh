#!/usr/bin/env bash
# Builds the cronvisor container image without a container engine: the runtime root filesystem
# from Debian packages (mmdebstrap, against this machine's apt sources), the built binary and the
# image's configuration (deploy/image/cronvisor.yaml), then an OCI image archive (umoci) that
# `docker load` (Docker 25+) and `podman load` accept. The same filesystem as the Dockerfile's
# runtime stage.
#
#   scripts/image.sh [--binary build/cronvisor] [--work build/image] [--rootfs-only]
#
# Writes <work>/rootfs (the filesystem, also used by tests/image/test_image.sh) and, unless
# --rootfs-only, <work>/cronvisor-oci.tar. The Debian part is cached in <work>/base-<hash>
# (the hash covers the package list and the apt sources): a re-run only copies it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="$root/build/cronvisor"
work="$root/build/image"
rootfs_only=0
tag="${CRONVISOR_IMAGE_TAG:-latest}"
while [ $# -gt 0 ]; do
  case "$1" in
  --binary) binary="$2"; shift 2 ;;
  --work) work="$2"; shift 2 ;;
  --rootfs-only) rootfs_only=1; shift ;;
  *) echo "usage: scripts/image.sh [--binary FILE] [--work DIR] [--rootfs-only]" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "image.sh: $binary is not an executable (build cronvisor first)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "image.sh: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }

# The shared libraries of the binary as Debian runtime packages (keep in sync with the
# Dockerfile), tzdata for job time zones and ca-certificates for webhooks over TLS.
packages="libuv1 libh2o0.13 libwslay1 libssl3 libpq5 libhiredis0.14 libcurl4 libsqlite3-0
libjansson4 libcyaml1 libyaml-0-2 zlib1g tzdata ca-certificates usr-is-merged"
uid=10001

mkdir -p "$work"
sources="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
hash="$(printf '%s\n%s\n%s\n' "$packages" "$sources" "v2" | sha256sum | cut -c1-16)"
base="$work/base-$hash"
if [ ! -f "$base/.complete" ]; then
  rm -rf "$work"/base-*
  # essential: the Essential: yes packages (a shell and coreutils for the jobs' commands) and no
  # apt; documentation, manuals and translations are left out as in debian:12-slim.
  # mmdebstrap reads this machine's apt sources when none are given.
  # merged-usr: the /usr merge by symlinks (usr-is-merged), not the usrmerge package and its perl.
  mmdebstrap --variant=essential --mode=root \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="$(echo $packages | tr ' ' ',')" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
    bookworm "$base"
  touch "$base/.complete"
fi

rootfs="$work/rootfs"
rm -rf "$rootfs"
cp -a "$base" "$rootfs"
rm -f "$rootfs/.complete"
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/cronvisor"
# no debug information in the image (a RelWithDebInfo build carries it)
command -v strip >/dev/null && strip --strip-debug "$rootfs/usr/local/bin/cronvisor"
install -D -m 0644 "$root/deploy/image/cronvisor.yaml" "$rootfs/etc/cronvisor/cronvisor.yaml"
grep -q '^cronvisor:' "$rootfs/etc/group" || echo "cronvisor:x:$uid:" >>"$rootfs/etc/group"
grep -q '^cronvisor:' "$rootfs/etc/passwd" ||
  echo "cronvisor:x:$uid:$uid:cronvisor:/var/lib/cronvisor:/usr/sbin/nologin" >>"$rootfs/etc/passwd"
install -d -m 0750 -o "$uid" -g "$uid" "$rootfs/var/lib/cronvisor"
echo "image.sh: root filesystem in $rootfs ($(du -sm "$rootfs" | cut -f1) MB)"
[ "$rootfs_only" = 1 ] && exit 0

command -v umoci >/dev/null || { echo "image.sh: umoci is missing (apt-get install umoci)" >&2; exit 1; }
layout="$work/oci"
rm -rf "$layout" "$work/layer.tar"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
# /dev, /proc and /sys stay empty: the container engine provides them.
tar --numeric-owner --sort=name --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
  -C "$rootfs" -cf "$work/layer.tar" .
umoci raw add-layer --image "$layout:$tag" "$work/layer.tar"
rm -f "$work/layer.tar"
# HEALTHCHECK is Docker's own (not in the OCI configuration): the Dockerfile declares it.
umoci config --image "$layout:$tag" \
  --config.user "$uid:$uid" \
  --config.entrypoint cronvisor --config.entrypoint run \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env CRONVISOR_CONFIG=/etc/cronvisor/cronvisor.yaml \
  --config.workingdir /var/lib/cronvisor \
  --config.volume /var/lib/cronvisor \
  --config.exposedports 8080/tcp \
  --config.label org.opencontainers.image.title=cronvisor \
  --author cronvisor --os linux --architecture "$(dpkg --print-architecture)"
umoci gc --layout "$layout"
# docker load names the image from io.containerd.image.name (a full reference); without it the
# image loads untagged. podman reads org.opencontainers.image.ref.name (umoci's tag).
python3 - "$layout/index.json" "cronvisor:$tag" <<'PY'
import json, sys
path, ref = sys.argv[1], sys.argv[2]
with open(path) as f:
    index = json.load(f)
for m in index["manifests"]:
    m.setdefault("annotations", {})["io.containerd.image.name"] = "docker.io/library/" + ref
with open(path, "w") as f:
    json.dump(index, f)
PY
tar --numeric-owner -C "$layout" -cf "$work/cronvisor-oci.tar" .
echo "image.sh: OCI archive $work/cronvisor-oci.tar ($(du -m "$work/cronvisor-oci.tar" | cut -f1) MB);" \
  "load it with: docker load -i $work/cronvisor-oci.tar  or  podman load -i $work/cronvisor-oci.tar"
