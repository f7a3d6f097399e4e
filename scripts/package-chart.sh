#!/usr/bin/env bash
# Package charts/offload as a release: `package-chart.sh VERSION IMAGE_REGISTRY OUT_DIR`.
# The packaged chart's version and appVersion are VERSION, and its image.registry defaults
# to IMAGE_REGISTRY (with the trailing slash, "ghcr.io/owner/"), so that `helm install`
# of the release pulls that release's images with no values at all. The repository's own
# chart keeps an empty registry: a local build names its images itself.
# Prints the path of the .tgz. Used by .github/workflows/release.yaml and release-local.sh.
set -euo pipefail
VERSION=${1:?version}
IMAGE_REGISTRY=${2:?image registry prefix, e.g. ghcr.io/owner/}
OUT=${3:?output directory}
REPO=$(cd "$(dirname "$0")/.." && pwd)
HELM=${HELM:-$(command -v helm || echo /var/cache/offload/k8s-tools/bin/helm)}

[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "package-chart: $VERSION is not a SemVer version" >&2; exit 2; }
[[ $IMAGE_REGISTRY == */ ]] || { echo "package-chart: the image registry must end with / ($IMAGE_REGISTRY)" >&2; exit 2; }
chart_version=$(awk '$1 == "version:" {print $2}' "$REPO/charts/offload/Chart.yaml")
app_version=$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$REPO/charts/offload/Chart.yaml")
if [[ $chart_version != "$VERSION" || $app_version != "$VERSION" ]]; then
  echo "package-chart: Chart.yaml has version $chart_version and appVersion $app_version; the release is $VERSION" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$REPO/charts/offload" "$work/offload"
# The one line `registry: ""` under `image:` (the first registry key of values.yaml).
sed -i "0,/^  registry: \"\"$/s||  registry: \"$IMAGE_REGISTRY\"|" "$work/offload/values.yaml"
grep -q "^  registry: \"$IMAGE_REGISTRY\"$" "$work/offload/values.yaml" || { echo "package-chart: image.registry not set" >&2; exit 1; }
mkdir -p "$OUT"
"$HELM" package "$work/offload" --destination "$OUT" >/dev/null
echo "$OUT/offload-$VERSION.tgz"
