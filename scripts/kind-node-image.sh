#!/usr/bin/env bash
# The kind node image offload-kind-node:$KUBERNETES_VERSION (also tagged :latest, the tag
# k8s/kind-cluster.yaml names, so no version is spelled there), built here without a registry
# (deploy/kind-node): Debian (offload-base) with systemd, containerd 2 and the node binaries of
# scripts/kube-binaries.sh, and the control-plane images kubeadm runs, built from the same
# binaries and tagged with the names kubeadm asks for. Rebuilt only when the recipe, the
# binaries or the base image change (a digest of them is the image's label).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO"

# The tags kubeadm runs: its DefaultEtcdVersion, CoreDNSVersion and PauseVersion.
ETCD_TAG=${ETCD_VERSION#v}-0
COREDNS_TAG=$COREDNS_VERSION
PAUSE_TAG=3.10.1
REGISTRY=registry.k8s.io
IMAGE=${OFFLOAD_KIND_NODE_IMAGE:-offload-kind-node:$KUBERNETES_VERSION}
LATEST=${IMAGE%:*}:latest
BIN=${OFFLOAD_KUBE_CACHE:-$CACHE_DIR/kubernetes-$KUBERNETES_VERSION}/bin
BASE_IMAGE=offload-base:bookworm

# kind itself, built with the image; the e2e suite runs it from $BIN.
build_kind() {
  echo "kind-node-image: building kind $KIND_VERSION"
  use_go kind-node-image
  CGO_ENABLED=0 GOBIN=$BIN go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
}

scripts/docker-engine.sh
scripts/kube-binaries.sh
OFFLOAD_BASE_IMAGE=$BASE_IMAGE scripts/base-image.sh >/dev/null
[[ -x $BIN/kind ]] || rm -f "$BIN/.built-kind"
build_once "$BIN/.built-kind" "$KIND_VERSION" build_kind

recipe=$( (
  sha256sum scripts/kind-node-image.sh  # the component images are defined here
  find deploy/kind-node -type f -print0 | sort -z | xargs -0 sha256sum
  cat "$BIN"/.built "$BIN"/.built-etcd "$BIN"/.built-kube-network-policies "$BIN"/.built-containerd
  docker image inspect --format '{{.Id}}' "$BASE_IMAGE"
  echo "$ETCD_TAG $COREDNS_TAG $PAUSE_TAG"
) | sha256sum | cut -c1-16)
if [[ "$(docker image inspect --format '{{index .Config.Labels "offload.recipe"}}' "$IMAGE" 2>/dev/null)" == "$recipe" ]]; then
  echo "kind node image $IMAGE is up to date"
  docker tag "$IMAGE" "$LATEST"
  exit 0
fi

started=$SECONDS
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/bin" "$context/images"
cp -r deploy/kind-node/Dockerfile deploy/kind-node/files "$context/"
cp "$BIN/kubelet" "$BIN/kubeadm" "$BIN/kubectl" "$BIN/containerd" "$BIN/containerd-shim-runc-v2" "$BIN/ctr" \
  "$context/bin/"

# Control-plane images. The Kubernetes binaries are linked to glibc and kube-proxy runs
# iptables and conntrack, so they share one Debian layer with both; etcd, CoreDNS and the
# pause binary are static and need nothing else.
docker build -q -t offload-kind-component-base:bookworm - >/dev/null <<DOCKERFILE
FROM $BASE_IMAGE
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables conntrack iproute2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
DOCKERFILE
component_image() { # name tag binary base entrypoint
  local name=$1 tag=$2 binary=$3 base=$4 entrypoint=$5 dir
  dir=$(mktemp -d -p "$context")
  cp "$BIN/$binary" "$dir/"
  printf 'FROM %s\nCOPY %s /usr/local/bin/%s\nENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n%s\n' \
    "$base" "$binary" "$binary" "$entrypoint" > "$dir/Dockerfile"
  docker build -q -t "$REGISTRY/$name:$tag" "$dir" >/dev/null
  rm -rf "$dir"
  images+=("$REGISTRY/$name:$tag")
}
images=()
for component in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  component_image "$component" "$KUBERNETES_VERSION" "$component" offload-kind-component-base:bookworm ""
done
component_image etcd "$ETCD_TAG" etcd scratch ""
component_image coredns/coredns "$COREDNS_TAG" coredns scratch 'ENTRYPOINT ["/usr/local/bin/coredns"]'
component_image pause "$PAUSE_TAG" pause scratch 'ENTRYPOINT ["/usr/local/bin/pause"]'
# The pod network's and the NetworkPolicies' DaemonSets (deploy/kind-node/network,
# files/kind/manifests/default-cni.yaml).
network=$(mktemp -d -p "$context")
cp "$BIN/kubectl" "$BIN/kube-network-policies" deploy/kind-node/network/offload-* "$network/"
printf 'FROM offload-kind-component-base:bookworm\nCOPY . /usr/local/bin/\nENTRYPOINT ["/usr/local/bin/offload-node-network"]\n' \
  > "$network/Dockerfile"
docker build -q -t offload-kind-network:v1 "$network" >/dev/null
images+=(offload-kind-network:v1)
docker save -o "$context/images/control-plane.tar" "${images[@]}"

docker build -q --build-arg KUBERNETES_VERSION="$KUBERNETES_VERSION" --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --label offload.recipe="$recipe" -t "$IMAGE" -t "$LATEST" "$context" >/dev/null
echo "built kind node image $IMAGE in $((SECONDS - started)) s"
