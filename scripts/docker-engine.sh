#!/usr/bin/env bash
# Make sure a Docker engine answers: install docker.io + debootstrap (root) and start dockerd.
set -euo pipefail
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install the container tools with: sudo apt-get install -y docker.io debootstrap" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap
fi
if docker info >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "no Docker engine answers; start it (e.g. sudo dockerd &)" >&2
  exit 1
fi
mkdir -p /var/log/offload
nohup dockerd > /var/log/offload/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not start; see /var/log/offload/dockerd.log" >&2
exit 1
