#!/usr/bin/env bash
# The release path of .github/workflows/release.yaml, on this machine, against the local
# registry (scripts/local-registry.sh): push the four service images built by `make images`,
# an SPDX SBOM of each (syft) attached as a signed attestation, the signature of each
# (cosign, with a local key pair), then the chart packaged for that registry, pushed as an
# OCI artifact and signed. What it pushed, by digest, goes to dist/release-local.json.
#
# The workflow builds linux/amd64 and linux/arm64 with buildx and signs keylessly (GitHub's
# OIDC identity); here the images are this machine's architecture only and the key pair is
# generated once into $OFFLOAD_RELEASE_KEYS (default /var/cache/offload/release-keys), with
# no transparency-log upload: nothing here reaches Sigstore's public services.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PORT=${OFFLOAD_REGISTRY_PORT:-5001}
REGISTRY=127.0.0.1:$PORT
IMAGE_TAG=${IMAGE_TAG:-dev}
KEYS=${OFFLOAD_RELEASE_KEYS:-/var/cache/offload/release-keys}
TOOLS=${OFFLOAD_RELEASE_TOOLS:-/var/cache/offload/release-tools}/bin
OUT=$REPO/dist
SERVICES=(web mailer stats autoscaler)
export PATH=$TOOLS:$PATH COSIGN_PASSWORD="" SYFT_CHECK_FOR_APP_UPDATE=false SYFT_REGISTRY_INSECURE_USE_HTTP=true
HELM=${HELM:-/var/cache/offload/k8s-tools/bin/helm}
started=$(date +%s.%N)

VERSION=$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$REPO/charts/offload/Chart.yaml")
"$REPO/scripts/local-registry.sh" >/dev/null
mkdir -p "$KEYS" "$OUT"
# Runs a command with its chatter held back; on failure the chatter is printed.
quiet() {
  local output
  if ! output=$("$@" 2>&1); then
    echo "release-local: $1 failed:" >&2
    echo "$output" >&2
    return 1
  fi
}
sign() { quiet cosign sign --key "$KEYS/cosign.key" --tlog-upload=false --allow-http-registry -y "$1"; }
if [[ ! -f $KEYS/cosign.key ]]; then
  (cd "$KEYS" && quiet cosign generate-key-pair)
fi

images_json=""
for svc in "${SERVICES[@]}"; do
  local_image=offload-$svc:$IMAGE_TAG
  docker image inspect "$local_image" >/dev/null 2>&1 || { echo "release-local: $local_image is missing: make images" >&2; exit 1; }
  ref=$REGISTRY/offload/offload-$svc:$VERSION
  docker tag "$local_image" "$ref"
  quiet docker push -q "$ref"
  digest=$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" | grep "^$REGISTRY/offload/offload-$svc@" | head -1)
  size=$(docker image inspect -f '{{.Size}}' "$local_image")
  sbom=$OUT/offload-$svc-$VERSION.spdx.json
  syft scan -q "registry:$digest" -o "spdx-json=$sbom"
  sign "$digest"
  quiet cosign attest --key "$KEYS/cosign.key" --tlog-upload=false --allow-http-registry -y \
    --type spdxjson --predicate "$sbom" "$digest"
  packages=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["packages"]))' "$sbom")
  echo "release-local: $digest ($((size / 1000000)) MB, SBOM of $packages packages, signed)"
  images_json+="${images_json:+,}\"$svc\": {\"ref\": \"$ref\", \"digest\": \"${digest#*@}\", \"size\": $size, \"sbom_packages\": $packages}"
done

chart=$("$REPO/scripts/package-chart.sh" "$VERSION" "$REGISTRY/offload/" "$OUT")
pushed=$("$HELM" push "$chart" "oci://$REGISTRY/charts" --plain-http 2>&1)
chart_digest=$(awk '$1 == "Digest:" {print $2}' <<<"$pushed")
[[ -n $chart_digest ]] || { echo "release-local: helm push printed no digest: $pushed" >&2; exit 1; }
sign "$REGISTRY/charts/offload@$chart_digest"
echo "release-local: oci://$REGISTRY/charts/offload:$VERSION@$chart_digest (signed)"

seconds=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$(date +%s.%N)")
cat > "$OUT/release-local.json" <<JSON
{"version": "$VERSION", "registry": "$REGISTRY", "public_key": "$KEYS/cosign.pub",
 "chart": {"ref": "oci://$REGISTRY/charts/offload", "digest": "$chart_digest"},
 "images": {$images_json}, "seconds": $seconds}
JSON
echo "release-local: $VERSION in ${seconds}s; dist/release-local.json"
