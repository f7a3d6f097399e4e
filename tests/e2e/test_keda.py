"""KEDA itself scales the chart's runners (`autoscaling.engine=keda`): KEDA's operator and
metrics API server, built from the Go module proxy (scripts/keda-build.sh), run on the test
cluster; the HPA they drive is kube-controller-manager's own. A burst of signups takes the
mailer from 0 to its max and back to 0, and every signup is mailed exactly once.

This module installs its own release in its own namespace and removes it, KEDA included,
before the main release's scenarios run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client

from offload_testkit.amqp import wait_for
from offload_testkit.kube import api_client
from offload_testkit.mailpit import mailpit_copies
from tests.e2e.clusters import keda
from tests.e2e.clusters.providers import ROOT, Cluster
from tests.e2e.conftest import import_headers

# The first run builds KEDA (about half an hour cold); later ones take minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

NAMESPACE = "offload-keda-e2e"
RELEASE = "offload"  # in a namespace of its own: the same object names as the main release
MAILER = "offload-mailer"
E2E_VALUES = Path(__file__).with_name("e2e-values.yaml")
KEDA_VALUES = {
    "autoscaling": {
        "engine": "keda",
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}},
    },
    # KEDA's scaling is what this release is for: one broker node is enough (the cluster has
    # its own scenarios in test_release.py).
    "rabbitmq": {"replicas": 1},
    "mailer": {
        "autoscaling": {
            "minReplicaCount": 0,
            "maxReplicaCount": 4,
            "queueLength": 10,
            "activationValue": 0,
            "pollingInterval": 2,
            "cooldownPeriod": 20,
        }
    },
}


@pytest.fixture(scope="module")
def keda_release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    values = tmp_path_factory.mktemp("keda") / "keda-values.yaml"
    values.write_text(yaml.safe_dump(KEDA_VALUES))
    keda.install(cluster)
    try:
        args = []
        for path in [*cluster.values_files, E2E_VALUES, values]:
            args += ["-f", str(path)]
        cluster.helm(
            "install", RELEASE, str(ROOT / "charts" / "offload"), "-n", NAMESPACE, "--create-namespace",
            *args, "--wait", "--timeout", "10m", timeout=900,
        )  # fmt: skip
        yield RELEASE
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "5m", timeout=400)
        client.CoreV1Api(api_client(cluster.kubeconfig)).delete_namespace(NAMESPACE)
    finally:
        keda.uninstall(cluster)


def replicas(cluster: Cluster) -> int:
    apps = client.AppsV1Api(api_client(cluster.kubeconfig))
    # The API leaves out a count of 0: the client reads it as None.
    return apps.read_namespaced_deployment_scale(MAILER, NAMESPACE).spec.replicas or 0


def test_keda_scales_the_mailer_from_zero_to_max_and_back_and_mails_each_signup_once(
    cluster: Cluster, keda_release: str
):
    try:
        _burst_from_zero_to_max_and_back(cluster)
    except AssertionError as exc:  # what KEDA said is what a reader needs first
        raise AssertionError(f"{exc}\n{keda.operator_log(cluster)}") from None


def _burst_from_zero_to_max_and_back(cluster: Cluster) -> None:
    # KEDA's HPA exists and KEDA (nothing else) takes the idle mailer to zero.
    autoscaling = client.AutoscalingV2Api(api_client(cluster.kubeconfig))

    def hpa_exists() -> bool:
        try:
            autoscaling.read_namespaced_horizontal_pod_autoscaler(f"keda-hpa-{MAILER}", NAMESPACE)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            return False
        return True

    wait_for(hpa_exists, timeout=120, interval=2, what="KEDA's HPA for the mailer")
    wait_for(
        lambda: replicas(cluster) == 0, timeout=180, interval=2, what="KEDA scaling the idle mailer to 0"
    )
    with (
        cluster.service_url(NAMESPACE, "svc/offload-web", 80) as web,
        cluster.service_url(NAMESPACE, "svc/offload-mailpit", 8025) as mailpit,
    ):
        batch = [
            {"name": f"Keda {i}", "email": f"keda-{i}-{uuid.uuid4().hex[:8]}@example.com", "fruit": "pear"}
            for i in range(200)
        ]
        addresses = {signup["email"] for signup in batch}
        headers = import_headers(api_client(cluster.kubeconfig), NAMESPACE)
        for start in range(0, 200, 50):
            answer = requests.post(
                f"{web}/api/v1/signups:batch", json=batch[start : start + 50], headers=headers, timeout=30
            )
            assert answer.status_code == 202, answer.text
        wait_for(lambda: replicas(cluster) == 4, timeout=180, interval=1, what="KEDA + HPA: mailer at max")
        wait_for(
            lambda: addresses <= set(mailpit_copies(mailpit)), timeout=300, interval=2, what="200 mailed"
        )
        wait_for(lambda: replicas(cluster) == 0, timeout=240, interval=2, what="KEDA: mailer back at 0")
        copies = mailpit_copies(mailpit)
        wrong = {a: copies[a] for a in addresses if copies[a] != 1}
        assert wrong == {}, f"{len(wrong)} addresses not mailed exactly once: {wrong}"
