#!/usr/bin/env bash
# RabbitMQ 4.0 from Debian trixie as a directory tree, for a bookworm host whose libc is too
# old for trixie's Erlang 27. Built once per recipe (suite, package version, what the tree
# holds) into the cache; prints the tree's path. Programs in it run through the mount namespace and chroot of
# offload_testkit/rabbitmq_tree.py: no PID namespace, so signals and ports stay the host's.
set -euo pipefail
cache=${OFFLOAD_CACHE_DIR:-/var/cache/offload}
suite=trixie
package_version=4.0.5-6+deb13u2
# Bump the last word when the tree's contents change in another way.
recipe=$(echo "$suite minbase rabbitmq-server=$package_version .rabbitmq-version 1" | sha256sum | cut -c1-12)
tree="$cache/rabbitmq-$suite-$recipe"
mkdir -p "$cache"
exec 9>"$cache/rabbitmq-$suite.lock"
flock 9  # one build at a time; the others wait for it and use it
if [ ! -f "$tree/.complete" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is missing: run scripts/system-deps.sh" >&2; exit 1; }
  rm -rf "$tree.partial"
  echo "building the RabbitMQ tree ($suite, rabbitmq-server $package_version) in $tree" >&2
  debootstrap --variant=minbase --include=rabbitmq-server "$suite" "$tree.partial" \
    http://deb.debian.org/debian >"$cache/rabbitmq-$suite-debootstrap.log" 2>&1 ||
    { tail -20 "$cache/rabbitmq-$suite-debootstrap.log" >&2; exit 1; }
  # shellcheck disable=SC2016 # dpkg-query's own field syntax
  got=$(chroot "$tree.partial" dpkg-query -W -f '${Version}' rabbitmq-server)
  if [ "$got" != "$package_version" ]; then
    # The suite moved on: say so rather than test a version nobody chose.
    echo "trixie now serves rabbitmq-server $got, not $package_version: update $0" >&2
    exit 1
  fi
  rm -rf "$tree.partial/var/cache/apt/archives/"*.deb "$tree.partial/var/lib/apt/lists/"*
  echo "${got%%-*}" >"$tree.partial/.rabbitmq-version"  # upstream's version, for the host to read
  touch "$tree.partial/.complete"
  mv "$tree.partial" "$tree"
fi
echo "$tree"
