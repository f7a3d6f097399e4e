#!/usr/bin/env bash
# Install the Debian packages a make target needs (root), or say how (not root).
#   system-deps.sh dev    the local stack: debootstrap (for the broker's tree,
#                         scripts/rabbitmq-tree.sh), Python and Prometheus (`make dev`)
#   system-deps.sh check  the daily loop (`make check`): the broker's tree, Python, Redis
#                         and shellcheck, nothing more
#   system-deps.sh test   everything the tests start: Redis, Prometheus, a browser, a
#                         Kubernetes control plane, a C compiler (the default)
set -euo pipefail

dev_packages=(debootstrap python3-venv prometheus)
check_packages=(debootstrap python3-venv redis-server shellcheck)
test_packages=("${dev_packages[@]}" redis-server chromium prometheus etcd-server iproute2 gcc libc6-dev shellcheck)
case "${1:-test}" in
  dev) packages=("${dev_packages[@]}") ;;
  check) packages=("${check_packages[@]}") ;;
  test) packages=("${test_packages[@]}") ;;
  *) echo "usage: $0 [dev|check|test]" >&2; exit 2 ;;
esac
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages from starting system-wide services: tests and `make dev`
# start their own private nodes.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
[ "$created_policy" -eq 1 ] && rm -f "$policy"
exit 0
