#!/usr/bin/env bash
# A Debian bookworm base image with python3, built locally (no registry needed).
# Users with a registry build on the official python image instead (BASE_IMAGE default).
set -euo pipefail
image=${OFFLOAD_BASE_IMAGE:-offload-base:bookworm}
cache=${OFFLOAD_CACHE_DIR:-/var/cache/offload}
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image is present"
  exit 0
fi
rootfs="$cache/base-rootfs"
if [ ! -x "$rootfs/usr/bin/python3" ]; then
  rm -rf "$rootfs"
  mkdir -p "$cache"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
    bookworm "$rootfs" http://deb.debian.org/debian
  # pip inside `docker build` verifies TLS with the host's CA bundle.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
fi
tar -C "$rootfs" -c . | docker import - "$image"
echo "built base image $image"
