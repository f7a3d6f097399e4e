#!/usr/bin/env bash
# The RabbitMQ tree of scripts/rabbitmq-tree.sh as a Docker image: the base of
# deploy/docker/rabbitmq, so the broker on kind and in the container test is the very build
# the test kit's private brokers run. Imported once per tree; prints the image's name.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tree=$("$here/rabbitmq-tree.sh")
image="offload-rabbitmq-tree:${tree##*-}"  # the tree's recipe hash
if ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "importing $tree as $image" >&2
  tar -C "$tree" --exclude=./.complete -c . | docker import - "$image" >/dev/null
fi
echo "$image"
