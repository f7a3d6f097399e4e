#!/usr/bin/env bash
# Kubernetes binaries for the tests' control plane (offload_testkit.kube) and the kind node
# image (scripts/kind-node-image.sh), built with Go from the module proxy at the versions of
# tools/versions.env and cached in /var/cache/offload (kept across runs).
#
# k8s.io/kubernetes is not meant to be consumed as a module: its go.mod points the k8s.io/*
# staging modules at ./staging, which the proxy's zip leaves out. A small wrapper module
# replaces each of them with its published v0.<minor>.<patch> twin, as library users do.
# The tests' etcd comes from Debian (system-deps.sh); the pod sandbox ("pause") binary is
# compiled here from the same module's build/pause/linux, and CoreDNS (the cluster DNS) is
# built from its own module, static, for a one-binary image. kube-network-policies (the agent
# that enforces NetworkPolicies on the nodes), etcd 3.6 (for the kind nodes) and containerd 2
# are built from their modules too, each with its own stamp: a new version of one does not
# rebuild Kubernetes.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
CACHE=${OFFLOAD_KUBE_CACHE:-$CACHE_DIR/kubernetes-$KUBERNETES_VERSION}
BIN=$CACHE/bin
mkdir -p "$BIN"

build_network_policies() {
  echo "kube-binaries: building kube-network-policies $KUBE_NETWORK_POLICIES_VERSION"
  use_go kube-binaries
  local gobin
  gobin=$(mktemp -d)
  CGO_ENABLED=0 GOBIN=$gobin go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kube-network-policies/cmd/kube-network-policies/standard@$KUBE_NETWORK_POLICIES_VERSION"
  mv "$gobin/standard" "$BIN/kube-network-policies"
  rmdir "$gobin"
}

build_etcd() {
  echo "kube-binaries: building etcd $ETCD_VERSION"
  use_go kube-binaries
  go_build_wrapped etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$BIN/etcd"
}

build_containerd() {
  echo "kube-binaries: building containerd $CONTAINERD_VERSION"
  use_go kube-binaries
  # Static, without the btrfs, devmapper and zfs snapshotters (cgo; the nodes use overlayfs).
  CGO_ENABLED=0 GOBIN=$BIN go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
}

build_kubernetes() {
  use_go kube-binaries
  local staging_version="v0.${KUBERNETES_VERSION#v1.}" src=$CACHE/src kube_gomod kube_src
  mkdir -p "$src"
  cd "$src"
  go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
  kube_gomod=$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION/go.mod
  {
    echo "module offload.local/kube-binaries"
    echo
    echo "go $(awk '$1 == "go" {print $2; exit}' "$kube_gomod")"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    awk -v v="$staging_version" '$2 == "=>" && $3 ~ /^\.\/staging\// {print "replace " $1 " => " $1 " " v}' "$kube_gomod"
  } > go.mod
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for component in "${COMPONENTS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$component\""; done
    echo ")"
  } > tools.go
  echo "kube-binaries: building ${COMPONENTS[*]} $KUBERNETES_VERSION (several minutes when the Go cache is cold)"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  local version_flags="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  version_flags+=" -X k8s.io/component-base/version.gitMajor=1"
  version_flags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
  version_flags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  local packages=()
  for component in "${COMPONENTS[@]}"; do packages+=("k8s.io/kubernetes/cmd/$component"); done
  go build -trimpath -ldflags "-s -w $version_flags" -o "$BIN/" "${packages[@]}"
  kube_src=$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION
  gcc -Os -static -DVERSION="$KUBERNETES_VERSION" -o "$BIN/pause" "$kube_src/build/pause/linux/pause.c"
  echo "kube-binaries: building CoreDNS $COREDNS_VERSION"
  CGO_ENABLED=0 GOBIN=$BIN go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}

build_once "$BIN/.built-kube-network-policies" "$KUBE_NETWORK_POLICIES_VERSION" build_network_policies
build_once "$BIN/.built-etcd" "$ETCD_VERSION" build_etcd
build_once "$BIN/.built-containerd" "$CONTAINERD_VERSION" build_containerd
build_once "$BIN/.built" "${COMPONENTS[*]} pause coredns-$COREDNS_VERSION" build_kubernetes
