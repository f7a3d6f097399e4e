#!/usr/bin/env bash
# KEDA's operator and metrics API server for the e2e suite's KEDA scenario and the
# side-by-side benchmark, built with Go from the module proxy at KEDA_VERSION
# (tools/versions.env) and cached in /var/cache/offload (kept across runs).
#
# KEDA's go.mod carries replace directives, which only apply to the main module; building
# inside a writable copy of the module's own tree makes it the main module, so they hold as
# upstream's Makefile builds them. The manifests (CRDs, RBAC, Deployments) are read from the
# same tree by the tests, so binaries and manifests are always one version.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

CACHE=${OFFLOAD_KEDA_CACHE:-$CACHE_DIR/keda-$KEDA_VERSION}

build_keda() {
  use_go keda-build
  local source
  source=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
  [[ -d $source ]] || { echo "keda-build: the module proxy did not give KEDA $KEDA_VERSION" >&2; exit 1; }
  rm -rf "${CACHE:?}/src" "${CACHE:?}/bin"
  mkdir -p "$CACHE/bin"
  cp -r "$source" "$CACHE/src"
  chmod -R u+w "$CACHE/src"
  echo "keda-build: building KEDA $KEDA_VERSION operator and metrics API server (tens of minutes when the Go cache is cold)"
  local flags="-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
  (cd "$CACHE/src" && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$CACHE/bin/keda" ./cmd/operator)
  (cd "$CACHE/src" && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$CACHE/bin/keda-adapter" ./cmd/adapter)
}

build_once "$CACHE/bin/.built" "$KEDA_VERSION" build_keda
