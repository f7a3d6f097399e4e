#!/usr/bin/env bash
# Kubernetes binaries for the tests' control plane (offload_testkit.kube) and the kind node
# image (scripts/kind-node-image.sh), built with Go from the module proxy at a pinned version
# and cached in /var/cache/offload (kept across runs).
#
# k8s.io/kubernetes is not meant to be consumed as a module: its go.mod points the k8s.io/*
# staging modules at ./staging, which the proxy's zip leaves out. A small wrapper module
# replaces each of them with its published v0.<minor>.<patch> twin, as library users do.
# The tests' etcd comes from Debian (system-deps.sh); the pod sandbox ("pause") binary is
# compiled here from the same module's build/pause/linux, and CoreDNS (the cluster DNS) is
# built from its own module, static, for a one-binary image. kube-network-policies (the agent
# that enforces NetworkPolicies on the nodes), etcd 3.6 and containerd 2 are built from their
# modules too, each with its own stamp: a new version of one does not rebuild Kubernetes.
set -euo pipefail

KUBERNETES_VERSION=v1.35.4
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
COREDNS_VERSION=v1.13.1
# The etcd release kubeadm $KUBERNETES_VERSION runs (its constants' DefaultEtcdVersion), for
# the kind node image; the tests' control plane uses Debian's etcd.
ETCD_VERSION=v3.6.6
# The kind nodes' container runtime (Debian's is 1.6, which Kubernetes is leaving behind).
CONTAINERD_VERSION=v2.2.9
# v1.1 is the first release that also judges a pod's connections to its own node (the
# INPUT hook): a pod on the control plane reaches the API server that way.
KUBE_NETWORK_POLICIES_VERSION=v1.1.1

CACHE=${OFFLOAD_KUBE_CACHE:-/var/cache/offload/kubernetes-$KUBERNETES_VERSION}
BIN=$CACHE/bin
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

policy_stamp=$BIN/.built-kube-network-policies
if [[ ! -f $policy_stamp || "$(cat "$policy_stamp")" != "$KUBE_NETWORK_POLICIES_VERSION" ]]; then
  echo "kube-binaries: building kube-network-policies $KUBE_NETWORK_POLICIES_VERSION"
  mkdir -p "$BIN"
  gobin=$(mktemp -d)
  CGO_ENABLED=0 GOBIN=$gobin go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kube-network-policies/cmd/kube-network-policies/standard@$KUBE_NETWORK_POLICIES_VERSION"
  mv "$gobin/standard" "$BIN/kube-network-policies"
  rmdir "$gobin"
  echo "$KUBE_NETWORK_POLICIES_VERSION" > "$policy_stamp"
fi

etcd_stamp=$BIN/.built-etcd
if [[ ! -f $etcd_stamp || "$(cat "$etcd_stamp")" != "$ETCD_VERSION" ]]; then
  echo "kube-binaries: building etcd $ETCD_VERSION"
  mkdir -p "$BIN" "$CACHE/etcd-src"
  # etcd's server module has replace directives, so `go install module@version` refuses it;
  # a wrapper module requiring it builds the same main package.
  (
    cd "$CACHE/etcd-src"
    printf 'module offload.local/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
    go mod tidy >/dev/null 2>&1 || go mod tidy
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  echo "$ETCD_VERSION" > "$etcd_stamp"
fi

containerd_stamp=$BIN/.built-containerd
if [[ ! -f $containerd_stamp || "$(cat "$containerd_stamp")" != "$CONTAINERD_VERSION" ]]; then
  echo "kube-binaries: building containerd $CONTAINERD_VERSION"
  mkdir -p "$BIN"
  # Static, without the btrfs, devmapper and zfs snapshotters (cgo; the nodes use overlayfs).
  CGO_ENABLED=0 GOBIN=$BIN go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  echo "$CONTAINERD_VERSION" > "$containerd_stamp"
fi

stamp=$BIN/.built
built="${COMPONENTS[*]} pause coredns-$COREDNS_VERSION"
if [[ -f $stamp && "$(cat "$stamp")" == "$built" ]]; then
  exit 0
fi

staging_version="v0.${KUBERNETES_VERSION#v1.}"
src=$CACHE/src
mkdir -p "$src" "$BIN"
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
version_flags="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
version_flags+=" -X k8s.io/component-base/version.gitMajor=1"
version_flags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
version_flags+=" -X k8s.io/component-base/version.gitTreeState=clean"
packages=()
for component in "${COMPONENTS[@]}"; do packages+=("k8s.io/kubernetes/cmd/$component"); done
go build -trimpath -ldflags "-s -w $version_flags" -o "$BIN/" "${packages[@]}"
kube_src=$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION
gcc -Os -static -DVERSION="$KUBERNETES_VERSION" -o "$BIN/pause" "$kube_src/build/pause/linux/pause.c"
echo "kube-binaries: building CoreDNS $COREDNS_VERSION"
CGO_ENABLED=0 GOBIN=$BIN go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
echo "$built" > "$stamp"
