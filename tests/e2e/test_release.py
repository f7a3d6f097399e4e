"""The chart's life on a cluster: install, scale by queue depth, upgrade, uninstall.

The scenarios run in file order on one release, and talk to the running stack (web, stats,
the mail sink) through Cluster.service_url.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.stream import stream
from prometheus_client.parser import text_string_to_metric_families

from offload_core.topology import MAILER_QUEUE_BY_LANE, declare, delay_queue_name, stack_topology
from offload_testkit.amqp import wait_for
from offload_testkit.kube import KUBE_BIN, api_client
from offload_testkit.mailpit import mailpit_copies
from offload_testkit.signup_load import SignupLoad
from offload_testkit.stack import start_autoscaler
from tests.e2e.clusters.providers import E2E_NAMESPACE as NAMESPACE
from tests.e2e.clusters.providers import ROOT, Cluster
from tests.e2e.conftest import import_headers

# Generous: the first scenario also builds the cluster and the images (minutes when cold).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

MAILER, WEB, AUTOSCALER = "offload-mailer", "offload-web", "offload-autoscaler"
# In every node of the kind provider's image (kubeadm v1.35's PauseVersion).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
MAILER_QUEUE = MAILER_QUEUE_BY_LANE["high"]  # where the web's signups wait for a mailer
AUTOSCALER_PODS = "app.kubernetes.io/component=autoscaler"


def mailer_replicas(admin: client.ApiClient) -> int:
    return client.AppsV1Api(admin).read_namespaced_deployment_scale(MAILER, NAMESPACE).spec.replicas


def rendered(cluster: Cluster, release: str, kind: str) -> set[str]:
    manifest = cluster.helm("get", "manifest", release, "-n", NAMESPACE)
    return {d["metadata"]["name"] for d in yaml.safe_load_all(manifest) if d and d["kind"] == kind}


def test_install_creates_every_component(cluster: Cluster, release: str, admin: client.ApiClient):
    apps = client.AppsV1Api(admin)
    expected = rendered(cluster, release, "Deployment")
    assert {WEB, MAILER, "offload-stats-runner", "offload-stats-api", AUTOSCALER} <= expected
    deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(NAMESPACE).items}
    assert expected <= set(deployments)
    statefulsets = {s.metadata.name for s in apps.list_namespaced_stateful_set(NAMESPACE).items}
    assert (
        rendered(cluster, release, "StatefulSet")
        == statefulsets
        == {"offload-rabbitmq", "offload-redis", "offload-stats-redis"}
    )
    for name in expected:
        deployment = deployments[name]
        assert deployment.status.available_replicas == deployment.spec.replicas, name


def test_a_pod_runs_on_a_node_of_the_cluster(cluster: Cluster, release: str, admin: client.ApiClient):
    """The cluster's nodes run pods (on kind: the node image built here, its pod sandbox
    image built from upstream's pause.c). Bound to a node directly, by name."""
    core = client.CoreV1Api(admin)
    nodes = [n.metadata.name for n in core.list_node().items]
    assert nodes
    wait_for(
        lambda: any(
            sa.metadata.name == "default" for sa in core.list_namespaced_service_account(NAMESPACE).items
        ),
        timeout=30,
        what="the namespace's default ServiceAccount",
    )
    name = f"probe-{uuid.uuid4().hex[:6]}"
    pod = {
        "metadata": {"name": name},
        "spec": {
            "nodeName": nodes[0],
            "automountServiceAccountToken": False,
            "containers": [{"name": "pause", "image": PAUSE_IMAGE, "imagePullPolicy": "IfNotPresent"}],
        },
    }
    core.create_namespaced_pod(NAMESPACE, pod)
    try:
        running = wait_for(
            lambda: (p := core.read_namespaced_pod(name, NAMESPACE)).status.phase == "Running" and p,
            timeout=90,
            interval=1,
            what="the probe pod running",
        )
        assert running.status.pod_ip
    finally:
        core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)


def can(api: client.AuthorizationV1Api, verb: str, resource: str, name: str = "", **extra: str) -> bool:
    review = {
        "spec": {
            "resourceAttributes": {
                "namespace": extra.get("namespace", NAMESPACE),
                "verb": verb,
                "group": extra.get("group", "apps"),
                "resource": resource,
                "subresource": extra.get("subresource", ""),
                "name": name,
            }
        }
    }
    return api.create_self_subject_access_review(review).status.allowed


def test_the_autoscaler_may_change_the_runners_scale_and_nothing_more(cluster, release, tmp_path):
    """Asked of the API server as the autoscaler's ServiceAccount (SelfSubjectAccessReview)."""
    kubeconfig = cluster.service_account_kubeconfig(NAMESPACE, AUTOSCALER, tmp_path / "autoscaler.kubeconfig")
    api = client.AuthorizationV1Api(api_client(kubeconfig))
    for runner in (MAILER, "offload-stats-runner"):
        for verb in ("get", "patch", "update"):
            assert can(api, verb, "deployments", runner, subresource="scale"), (verb, runner)
    assert not can(api, "patch", "deployments", WEB, subresource="scale")
    assert not can(api, "patch", "deployments", MAILER)  # the Deployment itself: no
    assert not can(api, "delete", "deployments", MAILER)
    assert not can(api, "create", "deployments")
    assert not can(api, "get", "secrets", "offload-rabbitmq", group="")
    assert not can(api, "list", "pods", group="")
    assert not can(api, "patch", "deployments", MAILER, subresource="scale", namespace="kube-system")
    # Leader election: its own Lease only.
    assert can(api, "update", "leases", AUTOSCALER, group="coordination.k8s.io")
    assert not can(api, "update", "leases", "kube-controller-manager", group="coordination.k8s.io")


def test_autoscalers_elect_a_leader_that_scales_from_a_rabbitmq_backlog(
    cluster, release, admin, rabbitmq_broker, tmp_path
):
    """Two autoscalers on this machine, with the chart's rendered config and settings and the
    ServiceAccount's token and RBAC, against a broker of their own: one leads and scales the
    release's mailer from the backlog, and hands over when it stops. The in-cluster
    autoscalers are scaled to 0 meanwhile, so that the scale and the Lease are theirs alone."""
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    config = core.read_namespaced_config_map(AUTOSCALER, NAMESPACE).data["autoscaler.yaml"]
    (tmp_path / "autoscaler.yaml").write_text(config)
    # The chart's settings for the autoscaler (leader election here), minus paths and ports.
    [container] = apps.read_namespaced_deployment(AUTOSCALER, NAMESPACE).spec.template.spec.containers
    local = {"OFFLOAD_AUTOSCALER_CONFIG", "OFFLOAD_AUTOSCALER_STATUS_PORT"}
    chart_env = {
        e.name: e.value
        for e in container.env
        if e.value is not None and e.name.startswith("OFFLOAD_AUTOSCALER_") and e.name not in local
    }
    assert chart_env["OFFLOAD_AUTOSCALER_LEADER_ELECTION"] == "on"
    kubeconfig = cluster.service_account_kubeconfig(NAMESPACE, AUTOSCALER, tmp_path / "autoscaler.kubeconfig")
    url = rabbitmq_broker.amqp_url("/")
    declare(url, stack_topology())
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for i in range(100):
        channel.basic_publish("", "mailer.signups.low", json.dumps({"n": i}).encode())
    web_before = apps.read_namespaced_deployment_scale(WEB, NAMESPACE).spec.replicas
    in_cluster = apps.read_namespaced_deployment_scale(AUTOSCALER, NAMESPACE).spec.replicas
    env = {
        **chart_env,
        "OFFLOAD_AUTOSCALER_CONFIG": str(tmp_path / "autoscaler.yaml"),
        "OFFLOAD_AUTOSCALER_NAMESPACE": NAMESPACE,
        "OFFLOAD_MANAGEMENT_URL": rabbitmq_broker.management_url_with_credentials(),
        "KUBECONFIG": str(kubeconfig),
        "POD_NAME": "autoscaler-on-this-machine",
    }
    autoscalers = []
    try:
        apps.patch_namespaced_deployment_scale(AUTOSCALER, NAMESPACE, {"spec": {"replicas": 0}})
        wait_for(
            lambda: not core.list_namespaced_pod(NAMESPACE, label_selector=AUTOSCALER_PODS).items,
            timeout=90,
            interval=1,
            what="the in-cluster autoscalers gone",
        )
        for i in range(2):  # appended one by one: a failed start still stops the first
            autoscalers.append(start_autoscaler(env, tmp_path, name=f"autoscaler-{i}"))
        # 100 messages, 10 per replica, at most 4: the mailer goes to 4 (the HPA's +4 pods step).
        wait_for(lambda: mailer_replicas(admin) == 4, timeout=60, interval=0.5, what="mailer at 4 replicas")
        lease = client.CoordinationV1Api(admin).read_namespaced_lease(AUTOSCALER, NAMESPACE)
        assert lease.spec.holder_identity.startswith("autoscaler-on-this-machine_")
        channel.queue_purge("mailer.signups.low")
        # Queue empty, minReplicaCount 1: down to 1 after the 5 s stabilization window.
        wait_for(lambda: mailer_replicas(admin) == 1, timeout=60, interval=0.5, what="mailer back at 1")
        assert apps.read_namespaced_deployment_scale(WEB, NAMESPACE).spec.replicas == web_before
        # One of the two led all along (the other stood by): it alone scaled.
        logs = [(tmp_path / f"autoscaler-{i}.log").read_text() for i in range(2)]
        assert sorted(log.count("became leader") for log in logs) == [0, 1], logs
        leader = next(i for i, log in enumerate(logs) if "became leader" in log)
        assert '"msg": "scaled"' not in logs[1 - leader]
        # Its shutdown releases the Lease, and the standby takes over at once.
        autoscalers[leader].terminate()
        wait_for(
            lambda: "became leader" in (tmp_path / f"autoscaler-{1 - leader}.log").read_text(),
            timeout=15,
            what="the standby taking over",
        )
    finally:
        connection.close()
        for autoscaler in autoscalers:
            autoscaler.terminate()
        apps.patch_namespaced_deployment_scale(AUTOSCALER, NAMESPACE, {"spec": {"replicas": in_cluster}})


def test_helm_test_passes(cluster, release):
    cluster.helm("test", release, "-n", NAMESPACE, "--timeout", "5m", timeout=600)


def redis_cli(admin: client.ApiClient, *args: str, user: str = "default") -> str:
    """redis-cli in the Redis pod, as the stores' user (default) or the web's."""
    password = "$REDIS_PASSWORD" if user == "default" else "$REDIS_WEB_PASSWORD"
    script = f'REDISCLI_AUTH="{password}" exec redis-cli --no-auth-warning --user {user} "$@"'
    return stream(
        client.CoreV1Api(admin).connect_get_namespaced_pod_exec, running_pod(admin, "redis").metadata.name,
        NAMESPACE, command=["sh", "-c", script, "redis-cli", *args],
        stdout=True, stderr=True, stdin=False, tty=False,
    )  # fmt: skip


def test_the_web_counts_signups_in_redis_as_a_user_limited_to_its_keys(cluster, release, admin):
    """The web's rate-limit counters are in the built-in Redis (not in a worker's memory, the
    fallback when Redis is unreachable), and the web's Redis user can write its own keys and
    nothing else: not the sent-store's, and no FLUSHALL. Its control: the stores' user can."""
    with cluster.service_url(NAMESPACE, f"svc/{WEB}", 80) as web:
        body = {"name": "Counted", "email": f"rl-{uuid.uuid4().hex[:8]}@example.com", "fruit": "kiwi"}
        assert requests.post(f"{web}/api/v1/signups", json=body, timeout=10).status_code == 202
    counters = redis_cli(admin, "--scan", "--pattern", "offload:web:ratelimit:*")
    assert counters.strip(), "no rate-limit counter in Redis after a signup"
    assert redis_cli(admin, "set", "offload:web:probe", "1", user="web").strip() == "OK"
    assert "NOPERM" in redis_cli(admin, "set", "offload:mailer:sent:probe", "1", user="web")
    assert "NOPERM" in redis_cli(admin, "flushall", user="web")
    assert redis_cli(admin, "set", "offload:mailer:probe", "1").strip() == "OK"
    redis_cli(admin, "del", "offload:mailer:probe", "offload:web:probe")


def test_a_signup_is_mailed_once_and_counted(cluster, release):
    with (
        cluster.service_url(NAMESPACE, f"svc/{WEB}", 80) as web,
        cluster.service_url(NAMESPACE, "svc/offload-stats-api", 80) as stats,
        cluster.service_url(NAMESPACE, "svc/offload-mailpit", 8025) as mailpit,
    ):
        stats_before = requests.get(f"{stats}/api/v1/stats", timeout=10).json()
        before, sent_before = stats_before["signups"]["total"], stats_before["mails"]["sent"]
        email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
        answer = requests.post(
            f"{web}/api/v1/signups", json={"name": "E2E", "email": email, "fruit": "kiwi"}, timeout=10
        )
        assert answer.status_code == 202, answer.text

        def mails_to_signup() -> int:
            found = requests.get(f"{mailpit}/api/v1/search", params={"query": f"to:{email}"}, timeout=10)
            return found.json()["messages_count"]

        wait_for(mails_to_signup, timeout=60, interval=1, what="the welcome email")

        def counted() -> bool:
            stats_now = requests.get(f"{stats}/api/v1/stats", timeout=10).json()
            return (
                stats_now["signups"]["total"] == before + 1 and stats_now["mails"]["sent"] >= sent_before + 1
            )

        # mail.sent leaves the mailer after its sent-store write: once stats has it, a
        # redelivery of the signup is skipped, so the count of copies is final.
        wait_for(counted, timeout=60, interval=1, what="stats counting the signup and its mail")
        assert mails_to_signup() == 1


# Connects to argv[1]:argv[2] from inside a pod; exits 0 only if the connection opened. A
# policy drops the first packet, so a denied connection times out.
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
except OSError as exc:
    sys.exit(repr(exc))
"""


@dataclass(frozen=True)
class NetworkPath:
    source: str  # the component label of the pod it is opened from
    target: str  # a key of network_targets()
    allowed: bool  # by the chart's NetworkPolicies

    @property
    def name(self) -> str:
        return f"{self.source} -> {self.target}"


# The "only through RabbitMQ" design, from inside the pods (docs/security.md has the table).
DESIGNED_PATHS = [
    NetworkPath("web", "rabbitmq", True),
    NetworkPath("web", "redis", True),  # its rate-limit counters, as a Redis user limited to them
    NetworkPath("web", "mailer metrics", False),
    NetworkPath("web", "stats runner metrics", False),
    NetworkPath("web", "stats API", False),
    NetworkPath("web", "API server", False),
    NetworkPath("mailer", "rabbitmq", True),
    NetworkPath("mailer", "redis", True),
    NetworkPath("mailer", "SMTP", True),
    NetworkPath("mailer", "rabbitmq management", False),
    NetworkPath("mailer", "stats API", False),
    NetworkPath("mailer", "API server", False),
    NetworkPath("autoscaler", "rabbitmq management", True),
    NetworkPath("autoscaler", "API server", True),
    NetworkPath("autoscaler", "redis", False),
    # Stats counts in a Redis of its own, which nobody else reaches; nor does stats reach the
    # sent-store's.
    NetworkPath("stats-runner", "stats redis", True),
    NetworkPath("stats-runner", "redis", False),
    NetworkPath("mailer", "stats redis", False),
    NetworkPath("web", "stats redis", False),
]


def running_pod(admin: client.ApiClient, component: str) -> client.V1Pod:
    pods = client.CoreV1Api(admin).list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/component={component}"
    )
    running = [p for p in pods.items if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
    assert running, f"no running {component} pod"
    return running[0]


def network_targets(admin: client.ApiClient) -> dict[str, tuple[str, int]]:
    """Where each target listens: Services by name, metrics ports by pod IP (they have no Service)."""
    return {
        "rabbitmq": ("offload-rabbitmq", 5672),
        "rabbitmq management": ("offload-rabbitmq", 15672),
        "redis": ("offload-redis", 6379),
        "stats redis": ("offload-stats-redis", 6379),
        "SMTP": ("offload-mailpit", 1025),
        "stats API": ("offload-stats-api", 80),
        "mailer metrics": (running_pod(admin, "mailer").status.pod_ip, 9101),
        "stats runner metrics": (running_pod(admin, "stats-runner").status.pod_ip, 9102),
        "API server": ("kubernetes.default.svc", 443),
    }


def opens(admin: client.ApiClient, path: NetworkPath, targets: dict[str, tuple[str, int]]) -> bool:
    host, port = targets[path.target]
    pod = running_pod(admin, path.source).metadata.name
    session = stream(
        client.CoreV1Api(admin).connect_get_namespaced_pod_exec, pod, NAMESPACE,
        command=["python", "-c", CONNECT, host, str(port)],
        stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False,
    )  # fmt: skip
    try:
        session.run_forever(timeout=30)
        code = session.returncode
    finally:
        session.close()
    assert code is not None, f"no exit status from {pod}"
    return code == 0


def test_network_policies_are_enforced_and_only_the_designed_paths_open(cluster, release, admin):
    """Every path probed from inside the pods, with the policies of the install, then with
    networkPolicy.enabled=false (the negative control: every path opens, so a denied probe
    was the policy, not a port nobody listens on), then with the policies back."""
    targets = network_targets(admin)

    def outcomes() -> dict[str, bool]:
        return {p.name: opens(admin, p, targets) for p in DESIGNED_PATHS}

    designed = {p.name: p.allowed for p in DESIGNED_PATHS}
    assert outcomes() == designed

    def upgrade(enabled: bool) -> None:
        cluster.helm(
            "upgrade", release, str(ROOT / "charts" / "offload"), "-n", NAMESPACE, "--reuse-values",
            "--set", f"networkPolicy.enabled={str(enabled).lower()}", "--wait",
        )  # fmt: skip

    upgrade(False)
    try:
        assert not rendered(cluster, release, "NetworkPolicy")
        everything = dict.fromkeys(designed, True)
        seen: dict[str, bool] = {}

        def all_open() -> bool:
            seen.update(outcomes())
            return seen == everything

        try:
            wait_for(all_open, timeout=60, interval=2, what="every path open without policies")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last outcomes {seen}") from None
    finally:
        upgrade(True)
    wait_for(lambda: outcomes() == designed, timeout=60, interval=2, what="the designed paths only, again")


def test_a_burst_scales_the_mailer_to_its_max_and_back(cluster, release, admin):
    with (
        cluster.service_url(NAMESPACE, f"svc/{WEB}", 80) as web,
        cluster.service_url(NAMESPACE, "svc/offload-mailpit", 8025) as mailpit,
    ):
        batch = [
            {"name": f"Burst {i}", "email": f"burst-{i}-{uuid.uuid4().hex[:8]}@example.com", "fruit": "apple"}
            for i in range(200)
        ]
        addresses = {signup["email"] for signup in batch}
        headers = import_headers(admin)
        for start in range(0, 200, 50):
            answer = requests.post(
                f"{web}/api/v1/signups:batch", json=batch[start : start + 50], headers=headers, timeout=30
            )
            assert answer.status_code == 202, answer.text
        wait_for(lambda: mailer_replicas(admin) == 4, timeout=120, interval=1, what="mailer at its max")
        wait_for(
            lambda: addresses <= set(mailpit_copies(mailpit)),
            timeout=300,
            interval=2,
            what="200 addresses mailed",
        )
        wait_for(lambda: mailer_replicas(admin) == 1, timeout=180, interval=2, what="mailer back at its min")
        # Scaled back: the queue was drained, nothing is in flight. Each address exactly once.
        copies = mailpit_copies(mailpit)
        wrong = {a: copies[a] for a in addresses if copies[a] != 1}
        assert wrong == {}, f"{len(wrong)} burst addresses not mailed exactly once: {wrong}"


def test_time_on_queue_is_measured_for_every_message_a_mailer_consumed(cluster, release, admin):
    """Per mailer pod: the time-on-queue histogram counts exactly the messages the pod
    settled (offload_messages_total, every outcome), and it is not zero."""
    with cluster.service_url(NAMESPACE, f"svc/{WEB}", 80) as web:
        for i in range(5):
            body = {
                "name": f"Queue {i}",
                "email": f"toq-{i}-{uuid.uuid4().hex[:8]}@example.com",
                "fruit": "kiwi",
            }
            assert requests.post(f"{web}/api/v1/signups", json=body, timeout=10).status_code == 202
    pods = client.CoreV1Api(admin).list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/component=mailer"
    )
    names = [p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None]

    def figures(pod: str) -> tuple[float, float]:
        with cluster.service_url(NAMESPACE, f"pod/{pod}", 9101) as mailer:
            text = requests.get(f"{mailer}/metrics", timeout=10).text
        observed = settled = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.labels.get("queue", "").startswith("mailer.signups."):
                    continue
                if sample.name == "offload_message_time_on_queue_seconds_count":
                    observed += sample.value
                elif sample.name == "offload_messages_total":
                    settled += sample.value
        return observed, settled

    def all_settled() -> dict[str, tuple[float, float]] | None:
        found = {pod: figures(pod) for pod in names}
        total = sum(observed for observed, _ in found.values())
        return found if total >= 5 and all(o == s for o, s in found.values()) else None

    found = wait_for(all_settled, timeout=60, interval=1, what="every consumed message settled and timed")
    assert sum(observed for observed, _ in found.values()) >= 5, found


# -- the broker as a three-node cluster (tests/e2e/e2e-values.yaml: rabbitmq.replicas 3) -------

BROKER = "offload-rabbitmq"
BROKER_LOAD_RATE = 8.0  # signups a second: more than one mailer replica sends (5/s), so the autoscaler acts


def broker_credentials(admin: client.ApiClient) -> tuple[str, str]:
    data = client.CoreV1Api(admin).read_namespaced_secret(BROKER, NAMESPACE).data
    return base64.b64decode(data["username"]).decode(), base64.b64decode(data["password"]).decode()


class Management:
    """The broker's management API through its Service (whichever node answers)."""

    def __init__(self, url: str, auth: tuple[str, str]) -> None:
        self.url, self.auth = url, auth

    def get(self, path: str) -> Any:
        return requests.get(f"{self.url}/api/{path}", auth=self.auth, timeout=10).json()

    def running_nodes(self) -> set[str]:
        return {n["name"] for n in self.get("nodes") if n.get("running")}

    def quorum_queues(self) -> dict[str, dict]:
        return {q["name"]: q for q in self.get("queues/%2F") if q.get("type") == "quorum"}


def mailers_holding_work(management: Management) -> int:
    """Waits until mailers hold messages of the mailer queue unacknowledged (a fault then
    lands on work in flight); how many they hold."""
    return wait_for(
        lambda: (held := management.quorum_queues()[MAILER_QUEUE]["messages_unacknowledged"]) > 0 and held,
        timeout=60,
        interval=0.2,
        what=f"mailers holding work in {MAILER_QUEUE}",
    )


def topology_queues() -> set[str]:
    topology = stack_topology()
    names = set()
    for queue in topology.queues:
        names |= {queue.name, queue.parking_queue}
        names |= {delay_queue_name(queue.name, delay) for delay in topology.delay_tiers}
    return names


@contextlib.contextmanager
def broker_management(cluster: Cluster, admin: client.ApiClient) -> Iterator[Management]:
    with cluster.service_url(NAMESPACE, f"svc/{BROKER}", 15672) as url:
        yield Management(url, broker_credentials(admin))


def whole_cluster(management: Management) -> bool:
    """Three nodes running, and every quorum queue of the topology with three members online."""
    try:
        queues = management.quorum_queues()
        return len(management.running_nodes()) == 3 and all(
            len(queues.get(name, {}).get("online", [])) == 3 for name in topology_queues()
        )
    except (requests.RequestException, ValueError):
        return False  # the Service routed to a node on its way down


def test_the_broker_is_a_cluster_and_every_queue_has_a_member_on_each_node(cluster, release, admin):
    statefulset = client.AppsV1Api(admin).read_namespaced_stateful_set(BROKER, NAMESPACE)
    assert statefulset.spec.replicas == 3 and statefulset.status.ready_replicas == 3
    with broker_management(cluster, admin) as management:
        assert len(management.running_nodes()) == 3
        queues = management.quorum_queues()
        assert topology_queues() <= set(queues)
        for name in topology_queues():
            assert len(queues[name]["members"]) == 3 and len(queues[name]["online"]) == 3, queues[name]
        # RabbitMQ 4 would drop a parked message at its 21st look without the unlimited limit.
        assert management.get("overview")["rabbitmq_version"].startswith("4.")
        for name in (q for q in topology_queues() if q.endswith(".parked")):
            assert queues[name]["effective_policy_definition"].get("delivery-limit") == -1, queues[name]


def test_each_service_talks_to_the_broker_as_its_own_user(cluster, release, admin):
    """The release's topology Job declared the topology as the administrator; the services
    connect as their own users (offload_core.grants), the autoscaler not at all over AMQP."""
    batch = client.BatchV1Api(admin)
    jobs = batch.list_namespaced_job(NAMESPACE, label_selector="app.kubernetes.io/component=topology").items
    assert any((job.status.succeeded or 0) >= 1 for job in jobs), [job.status for job in jobs]
    with broker_management(cluster, admin) as management:

        def users_by_service() -> dict[str, set[str]]:
            found: dict[str, set[str]] = {}
            for connection in management.get("connections"):
                name = (connection.get("client_properties") or {}).get("connection_name", "")
                found.setdefault(name.split(":", 1)[0], set()).add(connection["user"])
            return found

        seen = wait_for(
            lambda: (found := users_by_service()).keys() >= {"web", "mailer", "stats-runner"} and found,
            timeout=60,
            interval=1,
            what="web, mailer and the stats runner connected",
        )
    assert seen["web"] == {"offload-web"} and seen["mailer"] == {"offload-mailer"}, seen
    assert seen["stats-runner"] == {"offload-stats"} and "autoscaler" not in seen, seen


def node_pod(node: str) -> str:
    """The pod of a node name (rabbit@<pod>.<headless>.<namespace>.svc...)."""
    return node.split("@", 1)[1].split(".", 1)[0]


def web_connections_by_node(management: Management) -> dict[str, int]:
    """The web's AMQP connections (named "web:..." by the core) per broker node."""
    counts: dict[str, int] = {}
    for connection in management.get("connections"):
        name = (connection.get("client_properties") or {}).get("connection_name", "")
        if name.startswith("web:"):
            counts[connection["node"]] = counts.get(connection["node"], 0) + 1
    return counts


def require_whole_cluster(management: Management, after: str) -> None:
    wait_for(
        lambda: whole_cluster(management),
        timeout=300,
        interval=2,
        what=f"three running nodes and three online members for every quorum queue {after}",
    )


def statefulset_rolled(apps: client.AppsV1Api) -> bool:
    status = apps.read_namespaced_stateful_set(BROKER, NAMESPACE).status
    return (
        status.updated_replicas == 3
        and status.ready_replicas == 3
        and status.current_revision == status.update_revision
    )


def test_a_rolling_restart_of_the_broker_under_load(cluster, release, admin):
    """`kubectl rollout restart` of the broker's StatefulSet while signups flow and mailers hold
    work: every node stops in turn (its preStop waits until every quorum queue keeps a
    majority without it) and comes back on its volume. Then: every accepted signup mailed
    exactly once (per recipient), nothing mailed that was not accepted, only 202s and 503s
    with Retry-After, stats exact, and the cluster whole again: three running nodes and every
    quorum queue of the topology with three online members (required).

    Until RabbitMQ 3.10.9 a node coming back under its name with a new pod IP could hang in
    global:sync at boot (rabbitmq-server#6034, fixed by #6046); the suite's broker is 4.0.5."""
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    with (
        cluster.service_url(NAMESPACE, f"svc/{WEB}", 80) as web,
        cluster.service_url(NAMESPACE, "svc/offload-stats-api", 80) as stats,
        cluster.service_url(NAMESPACE, "svc/offload-mailpit", 8025) as mailpit,
        broker_management(cluster, admin) as management,
    ):
        require_whole_cluster(management, "before the restart")
        version = management.get("overview")["rabbitmq_version"]
        before = {
            p.metadata.name: p.metadata.uid
            for p in core.list_namespaced_pod(
                NAMESPACE, label_selector="app.kubernetes.io/component=rabbitmq"
            ).items
        }
        counted_before = requests.get(f"{stats}/api/v1/stats", timeout=10).json()
        with SignupLoad(web, BROKER_LOAD_RATE) as load:
            held = mailers_holding_work(management)
            web_connections = sum(web_connections_by_node(management).values())
            # What `kubectl rollout restart` writes.
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            apps.patch_namespaced_stateful_set(
                BROKER,
                NAMESPACE,
                {
                    "spec": {
                        "template": {
                            "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                        }
                    }
                },
            )
            wait_for(
                lambda: (
                    all(_pod_uid(core, name) not in (None, uid) for name, uid in before.items())
                    and statefulset_rolled(apps)
                ),
                timeout=900,
                interval=2,
                what="every broker pod replaced and the StatefulSet rolled out",
            )
            rolled_at = time.monotonic()
            wait_for(
                lambda: sum(1 for t in load.record.accepted_at if t > rolled_at) >= 20,
                timeout=180,
                interval=0.5,
                what="20 signups accepted after the restart",
            )
        require_whole_cluster(management, "after the restart")
        outcome = delivery_outcome(load, mailpit, stats, counted_before)
        line = (
            f"broker rolling_restart: {outcome} version={version} "
            f"fault=[{len(before)} pods restarted in turn, {held} unacked in {MAILER_QUEUE}, "
            f"{web_connections} web connections open, rejoined=yes]"
        )
        print(line)
        assert web_connections > 0, "fault missed the web: " + line
        assert outcome.clean(), line


def test_a_broker_node_holding_web_connections_crashes_under_load(cluster, release, admin):
    """A steady signup load; once mailers hold work, a broker pod holding at least one of the
    web's connections (the one leading the mailer queue if it does) is deleted with no grace
    (`--grace-period=0 --force`): the node gets no chance to hand anything over. The load goes
    on until the nodes left have accepted signups of their own. Then: every accepted signup
    mailed exactly once (per recipient), nothing mailed that was not accepted, only 202s and
    503s with Retry-After, stats exact, the autoscaler still scaling the mailer on the depths it
    reads through the Service, the web's connections moved off the killed node, and the
    replacement back in the cluster with every quorum queue at three online members
    (required)."""
    core = client.CoreV1Api(admin)
    with (
        cluster.service_url(NAMESPACE, f"svc/{WEB}", 80) as web,
        cluster.service_url(NAMESPACE, "svc/offload-stats-api", 80) as stats,
        cluster.service_url(NAMESPACE, "svc/offload-mailpit", 8025) as mailpit,
        broker_management(cluster, admin) as management,
    ):
        require_whole_cluster(management, "before the crash")
        counted_before = requests.get(f"{stats}/api/v1/stats", timeout=10).json()
        with SignupLoad(web, BROKER_LOAD_RATE) as load:
            held = mailers_holding_work(management)
            leader = management.quorum_queues()[MAILER_QUEUE]["leader"]
            on_node = web_connections_by_node(management)
            if not on_node:
                raise AssertionError(f"fault missed the web: no web connection on any node ({on_node})")
            target = leader if on_node.get(leader) else max(on_node, key=lambda node: on_node[node])
            pod = node_pod(target)
            old = core.read_namespaced_pod(pod, NAMESPACE).metadata.uid
            core.delete_namespaced_pod(pod, NAMESPACE, grace_period_seconds=0)
            # Landed: the StatefulSet made a new pod of that name, so the old one is gone.
            wait_for(
                lambda: _pod_uid(core, pod) not in (None, old),
                timeout=300,
                interval=1,
                what=f"{pod} replaced",
            )
            gone_at = time.monotonic()
            wait_for(
                lambda: sum(1 for t in load.record.accepted_at if t > gone_at) >= 40,
                timeout=180,
                interval=0.5,
                what="40 signups accepted after the node went",
            )
            # The load outruns one mailer (8/s against 5/s): the autoscaler, reading depths
            # through the Service from the nodes left, must scale the mailer up.
            mailer_max = wait_for(
                lambda: (n := mailer_replicas(admin)) > 1 and n,
                timeout=180,
                interval=1,
                what="the autoscaler scaling the mailer up after the node went",
            )
            # The web's connections on the killed node died with it: the web opened them again.
            moved = wait_for(
                lambda: (
                    (now := web_connections_by_node(management))
                    and sum(now.values()) >= sum(on_node.values())
                    and now
                ),
                timeout=120,
                interval=1,
                what="the web's connections open again",
            )
        require_whole_cluster(management, f"after {pod} crashed")
        new_leader = management.quorum_queues()[MAILER_QUEUE]["leader"]
        outcome = delivery_outcome(load, mailpit, stats, counted_before)
        line = (
            f"broker node_crash: {outcome} mailer_max={mailer_max} "
            f"fault=[pod {pod} deleted with no grace, {on_node[target]} web connections on it, "
            f"{held} unacked in {MAILER_QUEUE}, it led {MAILER_QUEUE}={'yes' if target == leader else 'no'}, "
            f"leader now {node_pod(new_leader)}, web connections now {sorted(moved.values())}, rejoined=yes]"
        )
        print(line)
        if target == leader:
            assert new_leader != leader, line
        assert outcome.clean(), line


@dataclass(frozen=True)
class DeliveryOutcome:
    """What became of a SignupLoad's signups, per recipient."""

    sent: int
    accepted: int
    refused: int
    failover_seconds: float
    delivered: int
    duplicates: int
    lost: int
    strays: int
    stats_exact: bool
    other_answers: int
    gave_up: int

    def clean(self) -> bool:
        """Every accepted signup mailed once and counted; nothing else mailed or answered."""
        faults = (self.duplicates, self.lost, self.strays, self.other_answers, self.gave_up)
        return faults == (0, 0, 0, 0, 0) and self.stats_exact

    def __str__(self) -> str:
        return (
            f"sent={self.sent} accepted={self.accepted} refused={self.refused} "
            f"failover={self.failover_seconds:.1f}s delivered={self.delivered} duplicates={self.duplicates} "
            f"lost={self.lost} strays={self.strays} stats_exact={'yes' if self.stats_exact else 'no'} "
            f"other_answers={self.other_answers} gave_up={self.gave_up}"
        )


def delivery_outcome(load: SignupLoad, mailpit: str, stats: str, counted_before: dict) -> DeliveryOutcome:
    """Waits for every accepted signup to be mailed and counted (or for the deadlines), then
    reads the mail sink per recipient and the stats' growth since `counted_before`."""
    record = load.record
    accepted = set(record.accepted)
    wait_for(
        lambda: accepted <= set(mailpit_copies(mailpit)),
        timeout=300,
        interval=2,
        what=f"{len(accepted)} accepted signups mailed",
    )

    def counted() -> dict | None:
        now = requests.get(f"{stats}/api/v1/stats", timeout=10).json()
        grown = {
            "signups": now["signups"]["total"] - counted_before["signups"]["total"],
            "sent": now["mails"]["sent"] - counted_before["mails"]["sent"],
        }
        return grown if grown == {"signups": len(accepted), "sent": len(accepted)} else None

    try:
        wait_for(counted, timeout=120, interval=2, what="stats counting every accepted signup and mail")
        stats_exact = True
    except AssertionError:
        stats_exact = False
    copies = mailpit_copies(mailpit)
    ours = {a: n for a, n in copies.items() if a.startswith(f"load-{load.run_id}-")}
    return DeliveryOutcome(
        sent=load.sent,
        accepted=len(accepted),
        refused=record.refused,
        failover_seconds=record.failover_seconds(),
        delivered=len(ours),
        duplicates=sum(n - 1 for n in ours.values() if n > 1),
        lost=len(accepted - set(ours)),
        strays=len(set(ours) - accepted),
        stats_exact=stats_exact,
        other_answers=len(record.unexpected),
        gave_up=len(record.gave_up),
    )


def _pod_uid(core: client.CoreV1Api, name: str) -> str | None:
    try:
        return core.read_namespaced_pod(name, NAMESPACE).metadata.uid
    except client.ApiException:
        return None


STATEFUL_PODS = "app.kubernetes.io/component in (rabbitmq,redis,stats-redis,mailpit)"
MAILER_PODS = "app.kubernetes.io/component=mailer"
WEB_PODS = "app.kubernetes.io/component=web"


def pods_by_node(core: client.CoreV1Api, selector: str) -> dict[str, int]:
    """Running pods of `selector` (not on their way out) per node."""
    counts: dict[str, int] = {}
    for pod in core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
        if pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None:
            counts[pod.spec.node_name] = counts.get(pod.spec.node_name, 0) + 1
    return counts


class BudgetWatch:
    """Samples every PodDisruptionBudget of the namespace while it runs and keeps the
    smallest margin each had: healthy pods less the pods it requires. Evictions that honour
    a budget never take a margin below zero; deleting pods past a budget does."""

    def __init__(self, policy: client.PolicyV1Api) -> None:
        self.policy = policy
        self.lowest: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            for budget in self.policy.list_namespaced_pod_disruption_budget(NAMESPACE).items:
                status = budget.status
                if status is None or status.desired_healthy is None:
                    continue
                margin = status.current_healthy - status.desired_healthy
                name = budget.metadata.name
                self.lowest[name] = min(margin, self.lowest.get(name, margin))

    def __enter__(self) -> BudgetWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def broken(self) -> dict[str, int]:
        return {name: margin for name, margin in self.lowest.items() if margin < 0}


def test_a_worker_is_drained_under_load(cluster, release, admin):
    """Runner pods spread over the workers; under a steady signup load, the worker without
    the stateful parts is drained with `kubectl drain` (evictions, which PodDisruptionBudgets
    may refuse), the autoscalers paused meanwhile so that replica counts hold still. Then: no
    budget was broken while it drained, the node runs none of the release's pods, every
    accepted signup was mailed exactly once (per recipient) and counted, and only 202s and
    503s with Retry-After were answered. The negative control: deleting the web pods
    outright, past their budget, is seen as a broken budget."""
    core, apps, policy = client.CoreV1Api(admin), client.AppsV1Api(admin), client.PolicyV1Api(admin)
    workers = [
        n.metadata.name
        for n in core.list_node().items
        if "node-role.kubernetes.io/control-plane" not in (n.metadata.labels or {})
    ]
    if len(workers) < 2:
        pytest.skip(f"draining a worker needs two; {cluster.provider} has {len(workers)}")
    stateful = set(pods_by_node(core, STATEFUL_PODS))
    drained: str | None = next((w for w in workers if w not in stateful), None)
    assert drained is not None, f"every worker runs a stateful part ({stateful}): nothing to drain"
    kubectl = str(KUBE_BIN / "kubectl")
    with (
        cluster.service_url(NAMESPACE, f"svc/{WEB}", 80) as web,
        cluster.service_url(NAMESPACE, "svc/offload-stats-api", 80) as stats,
        cluster.service_url(NAMESPACE, "svc/offload-mailpit", 8025) as mailpit,
    ):
        counted_before = requests.get(f"{stats}/api/v1/stats", timeout=10).json()
        with SignupLoad(web, BROKER_LOAD_RATE) as load:
            # The load outruns one mailer: the autoscaler scales up, and the pods spread.
            spread = wait_for(
                lambda: (nodes := pods_by_node(core, MAILER_PODS)).get(drained) and len(nodes) >= 2 and nodes,
                timeout=240,
                interval=1,
                what=f"mailer pods on {drained} and another worker",
            )
            # A budget's minimum follows the replica count: a scale-up while an evicted pod is
            # being replaced would read as a broken budget. The autoscalers pause for the drain
            # (the signups keep coming), and the drain starts from every mailer ready.
            autoscalers = apps.read_namespaced_deployment_scale(AUTOSCALER, NAMESPACE).spec.replicas
            apps.patch_namespaced_deployment_scale(AUTOSCALER, NAMESPACE, {"spec": {"replicas": 0}})
            try:
                wait_for(
                    lambda: (
                        not pods_by_node(core, AUTOSCALER_PODS)
                        and (m := apps.read_namespaced_deployment(MAILER, NAMESPACE)).status.ready_replicas
                        == m.spec.replicas
                    ),
                    timeout=120,
                    interval=0.5,
                    what="the autoscalers stopped and every mailer ready",
                )
                with BudgetWatch(policy) as budgets:
                    started = time.monotonic()
                    drain = subprocess.run(
                        [kubectl, "drain", drained, "--ignore-daemonsets", "--delete-emptydir-data",
                         "--timeout=300s"],
                        env=cluster.env(), capture_output=True, text=True, timeout=360,
                    )  # fmt: skip
                    drain_seconds = time.monotonic() - started
            finally:
                apps.patch_namespaced_deployment_scale(
                    AUTOSCALER, NAMESPACE, {"spec": {"replicas": autoscalers}}
                )
            assert drain.returncode == 0, drain.stdout + drain.stderr
            wait_for(
                lambda: sum(1 for t in load.record.accepted_at if t > started + drain_seconds) >= 40,
                timeout=180,
                interval=0.5,
                what="40 signups accepted after the drain",
            )
        left = {
            selector: pods_by_node(core, selector).get(drained, 0) for selector in (MAILER_PODS, WEB_PODS)
        }
        outcome = delivery_outcome(load, mailpit, stats, counted_before)
        line = (
            f"drain worker: node={drained} mailers_before={spread} drain={drain_seconds:.1f}s "
            f"lowest_budget_margins={budgets.lowest} left_on_node={left} {outcome}"
        )
        print(line)
        assert budgets.lowest and not budgets.broken(), line
        assert left == {MAILER_PODS: 0, WEB_PODS: 0}, line
        assert outcome.clean(), line
    subprocess.run([kubectl, "uncordon", drained], env=cluster.env(), check=True, capture_output=True)

    # Negative control: the same watch sees a budget broken when pods go without eviction.
    web_pods = core.list_namespaced_pod(NAMESPACE, label_selector=WEB_PODS).items
    with BudgetWatch(policy) as budgets:
        for pod in web_pods:
            core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
        wait_for(lambda: budgets.broken(), timeout=30, interval=0.25, what="the web budget seen broken")
    wait_for(
        lambda: (
            client.AppsV1Api(admin).read_namespaced_deployment(WEB, NAMESPACE).status.ready_replicas
            == len(web_pods)
        ),
        timeout=120,
        interval=1,
        what="the web pods back",
    )


def test_upgrade_keeps_the_autoscaled_replica_count(cluster, release, admin):
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    # Nothing may change the scale meanwhile, so the autoscalers are stopped for this check:
    # gone before the count is set (a leader still running would scale an idle mailer back
    # down), and kept at 0 by the upgrade (which would otherwise start them again).
    apps.patch_namespaced_deployment_scale(AUTOSCALER, NAMESPACE, {"spec": {"replicas": 0}})
    wait_for(
        lambda: not core.list_namespaced_pod(NAMESPACE, label_selector=AUTOSCALER_PODS).items,
        timeout=120,
        interval=1,
        what="every autoscaler pod gone",
    )
    apps.patch_namespaced_deployment_scale(MAILER, NAMESPACE, {"spec": {"replicas": 3}})
    revision = apps.read_namespaced_deployment(WEB, NAMESPACE).metadata.generation
    cluster.helm(
        "upgrade", release, str(ROOT / "charts" / "offload"), "-n", NAMESPACE, "--reuse-values",
        "--set", "web.replicaCount=3", "--set", "mailer.autoscaling.maxReplicaCount=5",
        "--set", "autoscaler.replicas=0",
    )  # fmt: skip
    web = apps.read_namespaced_deployment(WEB, NAMESPACE)
    assert web.spec.replicas == 3 and web.metadata.generation > revision  # the upgrade was applied
    assert mailer_replicas(admin) == 3  # and left the autoscaled count alone
    config = client.CoreV1Api(admin).read_namespaced_config_map(AUTOSCALER, NAMESPACE).data["autoscaler.yaml"]
    assert "maxReplicaCount: 5" in config


def test_uninstall_leaves_only_what_the_chart_documents(cluster, release, admin):
    cluster.helm("uninstall", release, "-n", NAMESPACE, "--wait", "--timeout", "3m")
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    label = f"app.kubernetes.io/instance={release}"

    def chart_objects() -> dict[str, set[str]]:
        return {
            "deployments": {d.metadata.name for d in apps.list_namespaced_deployment(NAMESPACE).items},
            "statefulsets": {s.metadata.name for s in apps.list_namespaced_stateful_set(NAMESPACE).items},
            "services": {s.metadata.name for s in core.list_namespaced_service(NAMESPACE).items},
            "configmaps": {
                c.metadata.name
                for c in core.list_namespaced_config_map(NAMESPACE, label_selector=label).items
            },
            "serviceaccounts": {
                s.metadata.name
                for s in core.list_namespaced_service_account(NAMESPACE, label_selector=label).items
            },
            "secrets": {s.metadata.name for s in core.list_namespaced_secret(NAMESPACE).items},
        }

    # Documented (charts/offload/README.md): the two generated Secrets, and the volumes.
    kept = {"secrets": {"offload-rabbitmq", "offload-redis"}}
    wait_for(
        lambda: all(names == kept.get(kind, set()) for kind, names in chart_objects().items()),
        timeout=60,
        interval=1,
        what="only the documented objects left",
    )
    claims = {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(NAMESPACE).items}
    assert all(
        name.startswith(("data-offload-rabbitmq-", "data-offload-redis-", "data-offload-stats-redis-"))
        for name in claims
    ), claims
