#!/usr/bin/env bash
# `make dev`'s trace store when OFFLOAD_DEV_TRACING=on: Jaeger v2 (scripts/release-tools.sh
# builds it) with deploy/jaeger/local.yaml, OTLP/HTTP on 127.0.0.1:4318 and its query API on
# 127.0.0.1:16686. Otherwise it idles, so that honcho keeps one Procfile.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${OFFLOAD_DEV_TRACING:-off} != on ]]; then
  exec sleep infinity
fi
export OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none  # Jaeger does not trace itself
export OFFLOAD_JAEGER_OTLP_ADDRESS=127.0.0.1:4318 OFFLOAD_JAEGER_QUERY_ADDRESS=127.0.0.1:16686
export OFFLOAD_JAEGER_QUERY_GRPC_ADDRESS=127.0.0.1:16685 OFFLOAD_JAEGER_HEALTH_ADDRESS=127.0.0.1:13133
exec "${OFFLOAD_RELEASE_TOOLS:-/var/cache/offload/release-tools}/bin/jaeger" --config "file:$PWD/deploy/jaeger/local.yaml"
