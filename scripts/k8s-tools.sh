#!/usr/bin/env bash
# Kubernetes tooling for the chart checks, built from the Go module proxy at the versions of
# tools/versions.env (no binary downloads, no registry): helm, kubeconform, kustomize,
# skaffold, actionlint (for the GitHub workflow), and JSON schemas for kubeconform generated
# from Kubernetes' own OpenAPI document and the KEDA, prometheus-operator and RabbitMQ Cluster
# Operator CRDs.
# Everything lands in $OFFLOAD_TOOLS (default /var/cache/offload/k8s-tools) and is reused.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

TOOLS=${OFFLOAD_TOOLS:-$CACHE_DIR/k8s-tools}
BIN=$TOOLS/bin
SCHEMAS=$TOOLS/schemas/kubernetes-$KUBERNETES_VERSION
mkdir -p "$BIN"
# checkov (a manifest linter from PyPI) in a venv of its own: its pins clash with ours.
python_tool_venv k8s-tools "${OFFLOAD_CHECKOV_VENV:-$CACHE_DIR/checkov-venv}" checkov

build_tools() {
  use_go k8s-tools
  # helm reports the Kubernetes version of its client-go as the default cluster version; the
  # release build sets it with -X, and without it `helm template` assumes v1.20.
  local major=1 minor=37 ldflags build k8s keda promop rabbitop skaffold
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor"
  done
  echo "k8s-tools: building helm $HELM_VERSION and kubeconform $KUBECONFORM_VERSION"
  GOBIN=$BIN go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  GOBIN=$BIN go install -ldflags "-s -w" "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  echo "k8s-tools: building kustomize $KUSTOMIZE_VERSION"
  GOBIN=$BIN go install -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  echo "k8s-tools: building actionlint $ACTIONLINT_VERSION"
  GOBIN=$BIN go install -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"

  echo "k8s-tools: schemas from Kubernetes $KUBERNETES_VERSION, KEDA $KEDA_VERSION, prometheus-operator $PROMETHEUS_OPERATOR_VERSION, RabbitMQ Cluster Operator $RABBITMQ_OPERATOR_VERSION"
  k8s=$(module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")
  keda=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
  promop=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
  rabbitop=$(module_dir "github.com/rabbitmq/cluster-operator/v2@$RABBITMQ_OPERATOR_VERSION")
  rm -rf "$SCHEMAS"
  "${SCHEMA_PYTHON:-python3}" "$REPO/scripts/kube_schemas.py" "$SCHEMAS" \
    --openapi "$k8s/api/openapi-spec/swagger.json" \
    --crds "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
           "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml" \
           "$promop/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml" \
           "$promop/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" \
           "$promop/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
           "$rabbitop/config/crd/bases/rabbitmq.com_rabbitmqclusters.yaml"
  # skaffold's published config schemas ship in its module (docs-v2/content/en/schemas).
  skaffold=$(module_dir "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION")
  mkdir -p "$TOOLS/schemas/skaffold"
  cp "$skaffold"/docs-v2/content/en/schemas/v4beta*.json "$TOOLS/schemas/skaffold/"
  # skaffold itself, from the same module. Its go.mod has replace directives, which
  # `go install pkg@version` refuses, so it is built in a writable copy of the module.
  echo "k8s-tools: building skaffold $SKAFFOLD_VERSION (about 5 minutes on two cores, once)"
  build=$(mktemp -d)
  cp -r "$skaffold"/. "$build"
  chmod -R u+w "$build"
  (cd "$build" && go build -trimpath -o "$BIN/skaffold" \
    -ldflags "-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION" \
    ./cmd/skaffold)
  rm -rf "$build"
}

# One stamp for the set: the tools, the schemas (bump "schemas-N" when kube_schemas.py
# changes what it writes) and skaffold's binary.
for tool in helm kubeconform kustomize actionlint skaffold; do
  [[ -x $BIN/$tool ]] || rm -f "$TOOLS/.versions"
done
build_once "$TOOLS/.versions" "$HELM_VERSION $KUBECONFORM_VERSION $KUSTOMIZE_VERSION $KUBERNETES_VERSION $KEDA_VERSION $PROMETHEUS_OPERATOR_VERSION $RABBITMQ_OPERATOR_VERSION $SKAFFOLD_VERSION $ACTIONLINT_VERSION schemas-4 skaffold-bin" build_tools
