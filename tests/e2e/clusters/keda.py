"""Real KEDA on an e2e cluster: the operator and metrics API server built by
scripts/keda-build.sh, deployed from the manifests of the same source tree.

KEDA's own `config/` kustomizations are rendered part by part (CRDs, namespace, RBAC,
operator, metrics API server, service account), leaving out the admission webhooks (a
third binary, and nothing here needs them); only the images and the operator's arguments
are changed. The operator makes its certificates and patches the APIService's caBundle
itself, so the API server's aggregation layer trusts the metrics server it generated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, utils

from offload_testkit.amqp import wait_for
from offload_testkit.k8s_tools import tool
from offload_testkit.kube import api_client
from offload_testkit.versions import pinned
from tests.e2e.clusters.providers import ROOT, Cluster, run

KEDA_VERSION = pinned("KEDA_VERSION")
KEDA_CACHE = Path(os.environ.get("OFFLOAD_KEDA_CACHE", f"/var/cache/offload/keda-{KEDA_VERSION}"))
KEDA_IMAGE = f"offload-keda:{KEDA_VERSION}"
KEDA_NAMESPACE = "keda"
PARTS = ("crd", "general", "rbac", "service_account", "manager", "metrics-server")
APISERVICE = "v1beta1.external.metrics.k8s.io"


def build_image() -> str:
    """Build (once, cached) the binaries and the image; the image's name."""
    run(["make", "-C", str(ROOT), "keda-image"], timeout=5400)
    return KEDA_IMAGE


def manifests(source: Path = KEDA_CACHE / "src") -> list[dict[str, Any]]:
    """KEDA's manifests for this cluster: our image, no pulls, no webhook patching."""
    documents: list[dict[str, Any]] = []
    for part in PARTS:
        rendered = run([tool("kustomize"), "build", str(source / "config" / part)], timeout=120)
        documents += [d for d in yaml.safe_load_all(rendered) if d]
    for document in documents:
        if document["kind"] != "Deployment":
            continue
        spec = document["spec"]["template"]["spec"]
        for container in spec["containers"]:
            container["image"] = KEDA_IMAGE
            container["imagePullPolicy"] = "Never"
            if container["name"] == "keda-operator":
                # One replica: no election; the webhooks are not installed.
                container["args"] = [a for a in container["args"] if a != "--leader-elect"] + [
                    "--enable-webhook-patching=false"
                ]
    return documents


def install(cluster: Cluster) -> None:
    """Install KEDA and wait until the API server serves external metrics through it."""
    cluster.load_images([build_image()])
    api = api_client(cluster.kubeconfig)
    for document in manifests():
        try:
            utils.create_from_dict(api, document)
        except utils.FailToCreateError as exc:
            if not all(getattr(e, "status", None) == 409 for e in exc.api_exceptions):
                raise
    registration = client.ApiregistrationV1Api(api)

    def available() -> bool:
        conditions = registration.read_api_service(APISERVICE).status.conditions or []
        return any(c.type == "Available" and c.status == "True" for c in conditions)

    wait_for(available, timeout=300, interval=2, what=f"{APISERVICE} available (KEDA's metrics server)")


def uninstall(cluster: Cluster) -> None:
    """Remove what `install` created (cluster-scoped objects too), so the suite leaves no KEDA."""
    api = api_client(cluster.kubeconfig)
    documents = manifests()
    dynamic = {
        "CustomResourceDefinition": lambda n: client.ApiextensionsV1Api(
            api
        ).delete_custom_resource_definition(n),
        "APIService": lambda n: client.ApiregistrationV1Api(api).delete_api_service(n),
        "ClusterRole": lambda n: client.RbacAuthorizationV1Api(api).delete_cluster_role(n),
        "ClusterRoleBinding": lambda n: client.RbacAuthorizationV1Api(api).delete_cluster_role_binding(n),
        "Namespace": lambda n: client.CoreV1Api(api).delete_namespace(n),
    }
    for document in reversed(documents):
        delete = dynamic.get(document["kind"])
        if delete is None:
            continue  # namespaced objects go with the namespace
        try:
            delete(document["metadata"]["name"])
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    # RoleBindings KEDA puts in kube-system (the API server's authentication reader).
    for document in documents:
        meta = document["metadata"]
        if document["kind"] == "RoleBinding" and meta.get("namespace") not in (None, KEDA_NAMESPACE):
            try:
                client.RbacAuthorizationV1Api(api).delete_namespaced_role_binding(
                    meta["name"], meta["namespace"]
                )
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


def operator_log(cluster: Cluster, lines: int = 60) -> str:
    """The operator's last log lines, for a failure report."""
    api = client.CoreV1Api(api_client(cluster.kubeconfig))
    out = []
    for pod in api.list_namespaced_pod(KEDA_NAMESPACE).items:
        try:
            out.append(
                f"--- {pod.metadata.name}\n"
                + api.read_namespaced_pod_log(pod.metadata.name, KEDA_NAMESPACE, tail_lines=lines)
            )
        except client.ApiException as exc:
            out.append(f"--- {pod.metadata.name}: no log ({exc.status})")
    return "\n".join(out)
