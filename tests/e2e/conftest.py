"""The e2e suite's cluster, release and failure reports.

OFFLOAD_E2E_PROVIDER chooses the cluster (kind | existing; default kind, built here, see
docs/kind.md). Every test module here sets `pytestmark = pytest.mark.e2e`:
`make test` leaves them out, `make e2e` runs them.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from offload_testkit.kube import api_client
from tests.e2e.clusters.providers import E2E_NAMESPACE as NAMESPACE
from tests.e2e.clusters.providers import PROVIDERS, ROOT, Cluster

RELEASE = "offload"
E2E_VALUES = Path(__file__).with_name("e2e-values.yaml")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    provider = os.environ.get("OFFLOAD_E2E_PROVIDER") or "kind"
    if provider not in PROVIDERS:
        raise pytest.UsageError(f"OFFLOAD_E2E_PROVIDER={provider!r}: choose one of {', '.join(PROVIDERS)}")
    created = PROVIDERS[provider](tmp_path_factory.mktemp(f"e2e-{provider}"))
    try:
        created.start()
        yield created
    finally:
        created.close()


@pytest.fixture(scope="session")
def admin(cluster: Cluster) -> client.ApiClient:
    return api_client(cluster.kubeconfig)


def import_headers(admin: client.ApiClient, namespace: str = NAMESPACE) -> dict[str, str]:
    """The batch import's Authorization header, with the token the chart generated."""
    # The chart names it <fullname>-batch-import; the release "offload" is the full name.
    secret = client.CoreV1Api(admin).read_namespaced_secret("offload-batch-import", namespace)
    return {"Authorization": "Bearer " + base64.b64decode(secret.data["token"]).decode()}


def helm_values_args(cluster: Cluster, *extra: Path) -> list[str]:
    args = []
    for values in [*cluster.values_files, E2E_VALUES, *extra]:
        args += ["-f", str(values)]
    return args


@pytest.fixture(scope="session")
def release(cluster: Cluster) -> str:
    """The chart installed once for the session (the last scenario uninstalls it)."""
    cluster.helm(
        "install", RELEASE, str(ROOT / "charts" / "offload"), "-n", NAMESPACE, "--create-namespace",
        *helm_values_args(cluster), "--wait", "--timeout", "10m", timeout=900,
    )  # fmt: skip
    return RELEASE


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.when == "call" and "cluster" in getattr(item, "funcargs", {}):
        report.sections.append(("cluster state", cluster_state(item.funcargs["cluster"])))
    return report


def cluster_state(cluster: Cluster) -> str:
    """What a person needs after a failure: pods, events, and the logs of unready pods."""
    lines = []
    try:
        api = api_client(cluster.kubeconfig)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        for d in apps.list_namespaced_deployment(NAMESPACE).items:
            lines.append(
                f"deployment {d.metadata.name}: spec={d.spec.replicas} ready={d.status.ready_replicas or 0}"
            )
        pods = core.list_namespaced_pod(NAMESPACE).items
        for pod in pods:
            lines.append(f"pod {pod.metadata.name}: {pod.status.phase}")
        for event in core.list_namespaced_event(NAMESPACE).items[-40:]:
            involved = event.involved_object
            lines.append(f"event {involved.kind}/{involved.name}: {event.reason} {event.message}")
        for pod in pods:
            if pod.status.phase != "Running":
                continue
            for container in pod.spec.containers:
                log = core.read_namespaced_pod_log(
                    pod.metadata.name, NAMESPACE, container=container.name, tail_lines=30
                )
                lines.append(f"--- logs {pod.metadata.name}/{container.name}\n{log}")
        # The HPA and the Deployment controllers live here (kubeadm's static pod label).
        for pod in core.list_namespaced_pod(
            "kube-system", label_selector="component=kube-controller-manager"
        ).items:
            log = core.read_namespaced_pod_log(pod.metadata.name, "kube-system", tail_lines=20)
            lines.append(f"--- {pod.metadata.name}\n{log}")
    except Exception as exc:  # the report must not hide the failure it explains
        lines.append(f"(could not read the cluster state: {exc!r})")
    return "\n".join(lines)
