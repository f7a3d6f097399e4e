#!/usr/bin/env bash
# Load generators for `make bench-web` (wrk, siege) from Debian.
set -euo pipefail
missing=()
for tool in wrk siege; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install the load generators with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
