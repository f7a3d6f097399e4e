#!/usr/bin/env bash
# Release, supply-chain and tracing tools, cached in /var/cache/offload (kept across runs):
# cosign (signs and verifies images and the chart), syft (the images' SBOMs) and Jaeger v2
# (the trace store of the trace test and of `OFFLOAD_DEV_TRACING=on make dev`), built with Go
# from the module proxy at pinned versions; pip-audit (the known-vulnerability audit of the
# pinned Python dependencies) from PyPI in a venv of its own, its pins clashing with ours.
# The local registry is Debian's docker-registry, in a container (scripts/local-registry.sh).
# Each tool has its own stamp: a new version of one rebuilds only that one.
set -euo pipefail

COSIGN_VERSION=v2.6.5
SYFT_VERSION=v1.57.1
JAEGER_VERSION=v1.76.0   # the module's cmd/jaeger is Jaeger v2 (an OpenTelemetry Collector)

BIN=${OFFLOAD_RELEASE_TOOLS:-/var/cache/offload/release-tools}/bin
mkdir -p "$BIN"
REPO=$(cd "$(dirname "$0")/.." && pwd)
AUDIT_VENV=${OFFLOAD_PIP_AUDIT_VENV:-/var/cache/offload/pip-audit-venv}
if ! cmp -s "$REPO/requirements/pip-audit-constraints.txt" "$AUDIT_VENV/.constraints" 2>/dev/null; then
  echo "release-tools: installing pip-audit into $AUDIT_VENV"
  python3 -m venv "$AUDIT_VENV"
  "$AUDIT_VENV/bin/pip" install -q -c "$REPO/requirements/pip-audit-constraints.txt" -r "$REPO/requirements/pip-audit.in"
  cp "$REPO/requirements/pip-audit-constraints.txt" "$AUDIT_VENV/.constraints"
fi
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

# build_once NAME VERSION MODULE PACKAGE: builds PACKAGE of MODULE@VERSION into $BIN/NAME
# unless its stamp already names VERSION. A wrapper module requires the tool's module, so a
# go.mod with replace directives (Jaeger's, syft's) builds the same as one without.
build_once() {
  local name=$1 version=$2 module=$3 package=$4
  local stamp=$BIN/.built-$name
  if [[ -x $BIN/$name && -f $stamp && "$(cat "$stamp")" == "$version" ]]; then
    return 0
  fi
  echo "release-tools: building $name $version (minutes when the Go cache is cold)"
  local src
  src=$(mktemp -d)
  (
    cd "$src"
    printf 'module offload.local/%s\n\ngo 1.25\n\nrequire %s %s\n' "$name" "$module" "$version" > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" > tools.go
    go mod tidy >/dev/null 2>&1 || go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$BIN/$name" "$package"
  )
  rm -rf "$src"
  echo "$version" > "$stamp"
}

# `release-tools.sh jaeger` builds only Jaeger (make dev with tracing); no argument: all.
wanted=" ${*:-jaeger cosign syft} "
if [[ $wanted == *" jaeger "* ]]; then
  build_once jaeger "$JAEGER_VERSION" github.com/jaegertracing/jaeger github.com/jaegertracing/jaeger/cmd/jaeger
fi
if [[ $wanted == *" cosign "* ]]; then
  build_once cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign
fi
if [[ $wanted == *" syft "* ]]; then
  build_once syft "$SYFT_VERSION" github.com/anchore/syft github.com/anchore/syft/cmd/syft
fi
