#!/usr/bin/env bash
# Release, supply-chain and tracing tools, cached in /var/cache/offload (kept across runs):
# cosign (signs and verifies images and the chart), syft (the images' SBOMs) and Jaeger v2
# (the trace store of the trace test and of `OFFLOAD_DEV_TRACING=on make dev`), built with Go
# from the module proxy at the versions of tools/versions.env; pip-audit (the
# known-vulnerability audit of the pinned Python dependencies) from PyPI in a venv of its
# own, its pins clashing with ours. The local registry is Debian's docker-registry, in a
# container (scripts/local-registry.sh). Each tool has its own stamp: a new version of one
# rebuilds only that one.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

BIN=${OFFLOAD_RELEASE_TOOLS:-$CACHE_DIR/release-tools}/bin
mkdir -p "$BIN"
python_tool_venv release-tools "${OFFLOAD_PIP_AUDIT_VENV:-$CACHE_DIR/pip-audit-venv}" pip-audit

# tool NAME VERSION MODULE PACKAGE: $BIN/NAME, built unless its stamp names VERSION.
tool() {
  local name=$1 version=$2
  [[ -x $BIN/$name ]] || rm -f "$BIN/.built-$name"
  build_once "$BIN/.built-$name" "$version" build_tool "$@"
}
build_tool() {
  echo "release-tools: building $1 $2 (minutes when the Go cache is cold)"
  use_go release-tools
  go_build_wrapped "$1" "$3" "$2" "$4" "$BIN/$1"
}

# `release-tools.sh jaeger` builds only Jaeger (make dev with tracing); no argument: all.
wanted=" ${*:-jaeger cosign syft} "
if [[ $wanted == *" jaeger "* ]]; then
  tool jaeger "$JAEGER_VERSION" github.com/jaegertracing/jaeger github.com/jaegertracing/jaeger/cmd/jaeger
fi
if [[ $wanted == *" cosign "* ]]; then
  tool cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign
fi
if [[ $wanted == *" syft "* ]]; then
  tool syft "$SYFT_VERSION" github.com/anchore/syft github.com/anchore/syft/cmd/syft
fi
