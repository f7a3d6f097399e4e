#!/usr/bin/env bash
# A local OCI registry for the release path: the container offload-registry (Debian's
# docker-registry, deploy/docker/registry), published on 127.0.0.1:$OFFLOAD_REGISTRY_PORT
# (default 5001) only. Where a kind network exists the container joins it too, so that kind
# nodes pull from it by its address there (tests/e2e/clusters/providers.py writes their
# containerd hosts.toml). Idempotent: a running registry is left as it is.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
NAME=offload-registry
PORT=${OFFLOAD_REGISTRY_PORT:-5001}
BASE_IMAGE=${BASE_IMAGE:-offload-base:bookworm}

"$REPO/scripts/docker-engine.sh"
if [[ "$(docker inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" != "true" ]]; then
  if [[ $BASE_IMAGE == offload-base:bookworm ]]; then "$REPO/scripts/base-image.sh"; fi
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$REPO/deploy/docker/registry/Dockerfile" \
    -t offload-registry:dev "$REPO" >/dev/null
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  docker run -d --name "$NAME" --restart=unless-stopped -p "127.0.0.1:$PORT:5000" offload-registry:dev >/dev/null
fi
if docker network inspect kind >/dev/null 2>&1 \
   && ! docker inspect -f '{{json .NetworkSettings.Networks}}' "$NAME" | grep -q '"kind"'; then
  docker network connect kind "$NAME"
fi
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1; then
    echo "local registry: 127.0.0.1:$PORT"
    exit 0
  fi
  sleep 0.1
done
echo "local registry did not answer on 127.0.0.1:$PORT; see: docker logs $NAME" >&2
exit 1
