#!/usr/bin/env bash
# KEDA's operator and metrics API server for the e2e suite's KEDA scenario and the
# side-by-side benchmark, built with Go from the module proxy at a pinned version and cached
# in /var/cache/offload (kept across runs).
#
# KEDA's go.mod carries replace directives, which only apply to the main module; building
# inside a writable copy of the module's own tree makes it the main module, so they hold as
# upstream's Makefile builds them. The manifests (CRDs, RBAC, Deployments) are read from the
# same tree by the tests, so binaries and manifests are always one version.
set -euo pipefail

KEDA_VERSION=v2.21.0
CACHE=${OFFLOAD_KEDA_CACHE:-/var/cache/offload/keda-$KEDA_VERSION}
stamp=$CACHE/bin/.built
if [[ -f $stamp && "$(cat "$stamp")" == "$KEDA_VERSION" ]]; then
  exit 0
fi
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
module_dir=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
  | awk -F'"' '$2 == "Dir" {print $4}')
[[ -d $module_dir ]] || { echo "keda-build: the module proxy did not give KEDA $KEDA_VERSION" >&2; exit 1; }
rm -rf "${CACHE:?}/src" "${CACHE:?}/bin"
mkdir -p "$CACHE/bin"
cp -r "$module_dir" "$CACHE/src"
chmod -R u+w "$CACHE/src"
echo "keda-build: building KEDA $KEDA_VERSION operator and metrics API server (tens of minutes when the Go cache is cold)"
cd "$CACHE/src"
version_flags="-X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $version_flags" -o "$CACHE/bin/keda" ./cmd/operator
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $version_flags" -o "$CACHE/bin/keda-adapter" ./cmd/adapter
echo "$KEDA_VERSION" > "$stamp"
