"""KEDA itself scales the chart's runners (`autoscaling.engine=keda`): KEDA's operator and
metrics API server, built from the Go module proxy (scripts/keda-build.sh), run on the test
cluster; the HPA they drive is kube-controller-manager's own. A burst of signups takes the
mailer from 0 to its max and back to 0, and every signup is mailed exactly once: once with
KEDA's own rabbitmq trigger (QueueLength), once with mode ExpectedWaitTime, which KEDA
reaches through the release's external scaler (`type: external`, offload-external-scaler).

This module installs its own releases, each in its own namespace, and removes them, KEDA
included, before the main release's scenarios run.
"""

from __future__ import annotations

import copy
import datetime
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from google.protobuf import descriptor_pb2
from kubernetes import client

from offload_autoscaler.external_scaler import METRIC_NAME
from offload_testkit.amqp import wait_for
from offload_testkit.kube import api_client
from offload_testkit.mailpit import mailpit_copies
from tests.e2e.clusters import keda
from tests.e2e.clusters.providers import ROOT, Cluster
from tests.e2e.conftest import import_headers

# The first run builds KEDA (about half an hour cold); later ones take minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

RELEASE = "offload"  # in a namespace of its own: the same object names as the main release
MAILER = "offload-mailer"
SCALER = "offload-external-scaler"
E2E_VALUES = Path(__file__).with_name("e2e-values.yaml")
PROTO = ROOT / "services/autoscaler/proto/externalscaler.proto"
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


# Per mode: the namespace of its release and what the mailer's autoscaling adds to KEDA_VALUES.
MODES = {
    "QueueLength": ("offload-keda-e2e", {}),
    # Seconds and a first guess at 2 mails a second per replica: 200 signups ask for
    # ceil(200 / 5 / 2) = 20 replicas at the first reading, capped at 4.
    "ExpectedWaitTime": ("offload-keda-wait-e2e", {"expectedWaitSeconds": 5, "initialThroughput": 2}),
}


@dataclass(frozen=True)
class KedaRelease:
    mode: str
    namespace: str
    ready_at: datetime.datetime  # helm's --wait returned: every Deployment ready


@pytest.fixture(scope="module")
def keda_installed(cluster: Cluster) -> Iterator[None]:
    keda.install(cluster)
    try:
        yield
    finally:
        keda.uninstall(cluster)


@pytest.fixture(scope="module", params=sorted(MODES))
def keda_release(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    keda_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KedaRelease]:
    mode = request.param
    namespace, autoscaling = MODES[mode]
    values = tmp_path_factory.mktemp("keda") / "keda-values.yaml"
    chosen = copy.deepcopy(KEDA_VALUES)
    chosen["mailer"]["autoscaling"].update(autoscaling)
    values.write_text(yaml.safe_dump(chosen))
    args = []
    for path in [*cluster.values_files, E2E_VALUES, values]:
        args += ["-f", str(path)]
    cluster.helm(
        "install", RELEASE, str(ROOT / "charts" / "offload"), "-n", namespace, "--create-namespace",
        *args, "--wait", "--timeout", "10m", timeout=900,
    )  # fmt: skip
    yield KedaRelease(mode, namespace, datetime.datetime.now(datetime.UTC))
    cluster.helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "5m", timeout=400)
    client.CoreV1Api(api_client(cluster.kubeconfig)).delete_namespace(namespace)


def replicas(cluster: Cluster, namespace: str, name: str = MAILER) -> int:
    apps = client.AppsV1Api(api_client(cluster.kubeconfig))
    # The API leaves out a count of 0: the client reads it as None.
    return apps.read_namespaced_deployment_scale(name, namespace).spec.replicas or 0


def test_keda_scales_the_mailer_from_zero_to_max_and_back_and_mails_each_signup_once(
    cluster: Cluster, keda_release: KedaRelease
):
    try:
        _burst_from_zero_to_max_and_back(cluster, keda_release)
    except AssertionError as exc:  # what KEDA said is what a reader needs first
        raise AssertionError(f"{exc}\n{keda.operator_log(cluster)}") from None


def _burst_from_zero_to_max_and_back(cluster: Cluster, release: KedaRelease) -> None:
    namespace = release.namespace
    # KEDA's HPA exists and KEDA (nothing else) takes the idle mailer to zero.
    autoscaling = client.AutoscalingV2Api(api_client(cluster.kubeconfig))

    def hpa_exists() -> bool:
        try:
            autoscaling.read_namespaced_horizontal_pod_autoscaler(f"keda-hpa-{MAILER}", namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            return False
        return True

    wait_for(hpa_exists, timeout=120, interval=2, what="KEDA's HPA for the mailer")
    # The HPA's metric is the trigger's: KEDA's rabbitmq scaler's, or our external scaler's
    # (KEDA prefixes the trigger's index: GenerateMetricNameWithIndex).
    hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(f"keda-hpa-{MAILER}", namespace)
    [metric] = hpa.spec.metrics
    if release.mode == "ExpectedWaitTime":
        assert metric.external.metric.name == f"s0-{METRIC_NAME}", metric
        assert metric.external.target.type == "AverageValue", metric
    else:
        assert metric.external.metric.name.startswith("s0-rabbitmq-"), metric
    wait_for(
        lambda: replicas(cluster, namespace) == 0,
        timeout=180,
        interval=2,
        what="KEDA scaling the idle mailer to 0",
    )
    with (
        cluster.service_url(namespace, "svc/offload-web", 80) as web,
        cluster.service_url(namespace, "svc/offload-mailpit", 8025) as mailpit,
    ):
        batch = [
            {"name": f"Keda {i}", "email": f"keda-{i}-{uuid.uuid4().hex[:8]}@example.com", "fruit": "pear"}
            for i in range(200)
        ]
        addresses = {signup["email"] for signup in batch}
        headers = import_headers(api_client(cluster.kubeconfig), namespace)
        for start in range(0, 200, 50):
            answer = requests.post(
                f"{web}/api/v1/signups:batch", json=batch[start : start + 50], headers=headers, timeout=30
            )
            assert answer.status_code == 202, answer.text
        wait_for(
            lambda: replicas(cluster, namespace) == 4,
            timeout=180,
            interval=1,
            what="KEDA + HPA: mailer at max",
        )
        wait_for(
            lambda: addresses <= set(mailpit_copies(mailpit)), timeout=300, interval=2, what="200 mailed"
        )
        wait_for(
            lambda: replicas(cluster, namespace) == 0, timeout=240, interval=2, what="KEDA: mailer back at 0"
        )
        copies = mailpit_copies(mailpit)
        wrong = {a: copies[a] for a in addresses if copies[a] != 1}
        assert wrong == {}, f"{len(wrong)} addresses not mailed exactly once: {wrong}"


def test_without_the_external_scaler_keda_reports_the_mailers_trigger_failing(
    cluster: Cluster, keda_release: KedaRelease
):
    """Negative control of the scenario above: KEDA's readings of the mailer came from our
    external scaler. With the scaler up, KEDA recorded no failure of the mailer's trigger
    since the release was ready; with it scaled to 0, KEDA's next polls fail and it records
    a KEDAScalerFailed event on the mailer's ScaledObject (pkg/scaling/scale_handler.go,
    getScalerState)."""
    if keda_release.mode != "ExpectedWaitTime":
        pytest.skip("KEDA's own rabbitmq trigger has no external scaler to take away")
    namespace = keda_release.namespace
    apps = client.AppsV1Api(api_client(cluster.kubeconfig))
    assert scaler_failures(cluster, namespace, keda_release.ready_at) == []
    taken_away = datetime.datetime.now(datetime.UTC)
    apps.patch_namespaced_deployment_scale(SCALER, namespace, {"spec": {"replicas": 0}})
    wait_for(lambda: replicas(cluster, namespace, SCALER) == 0, timeout=60, interval=1, what="scaler at 0")
    try:
        messages = wait_for(
            lambda: scaler_failures(cluster, namespace, taken_away),
            timeout=120,
            interval=2,
            what="KEDA reporting the trigger failing",
        )
        # KEDA's words for a scaler it cannot reach: a failed call, or no metric spec from it.
        assert any("rpc error" in m or "empty metric spec" in m for m in messages), messages
    finally:
        apps.patch_namespaced_deployment_scale(SCALER, namespace, {"spec": {"replicas": 1}})


def scaler_failures(cluster: Cluster, namespace: str, since: datetime.datetime) -> list[str]:
    """The messages of KEDAScalerFailed events on the mailer's ScaledObject seen since `since`."""
    core = client.CoreV1Api(api_client(cluster.kubeconfig))
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={MAILER},reason=KEDAScalerFailed"
    ).items
    return [e.message or "" for e in events if _last_seen(e) >= since]


def _last_seen(event: client.CoreV1Event) -> datetime.datetime:
    """When an event was last recorded, whichever API wrote it (KEDA's recorder writes
    events.k8s.io Events: a series, an event time; the core API's have timestamps)."""
    times = [event.last_timestamp, event.event_time, event.metadata.creation_timestamp]
    if event.series is not None:
        times.append(event.series.last_observed_time)
    return max(t for t in times if t is not None)


def test_the_protocol_is_the_pinned_kedas(keda_installed: None, tmp_path: Path):
    """Our externalscaler.proto declares what KEDA's (at the pinned version, in the source
    tree the e2e suite builds KEDA from) does: the same package, service, methods, messages,
    field names, numbers and types. Compared as descriptors, so comments may differ. The
    control is a field renumbered in a copy of ours."""
    theirs = keda.KEDA_CACHE / "src/pkg/scalers/externalscaler/externalscaler.proto"
    renumbered = tmp_path / "renumbered" / PROTO.name
    renumbered.parent.mkdir()
    renumbered.write_text(
        PROTO.read_text().replace("double targetSizeFloat = 3;", "double targetSizeFloat = 4;")
    )
    assert _declared(PROTO, tmp_path) == _declared(theirs, tmp_path)
    assert _declared(renumbered, tmp_path) != _declared(theirs, tmp_path)


def _declared(proto: Path, scratch: Path) -> dict[str, object]:
    """Services, methods and message fields of a proto file, from protoc's descriptor set."""
    out = scratch / f"{uuid.uuid4().hex}.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto.parent}",
            f"--descriptor_set_out={out}",
            proto.name,
        ],
        check=True,
    )
    [file] = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return {
        "package": file.package,
        "services": {
            s.name: {m.name: (m.input_type, m.output_type, m.server_streaming) for m in s.method}
            for s in file.service
        },
        "messages": {
            m.name: {f.name: (f.number, f.type, f.label, f.type_name) for f in m.field}
            for m in file.message_type
        },
    }
