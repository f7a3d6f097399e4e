"""The chart's broker scripts (readiness and preStop), rendered by helm and run against three
real RabbitMQ nodes on this machine: each script runs as the pod runs it, with the node's
name, $HOME (cookie and mark) and the cluster size in its environment."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pika
import pytest
import yaml

from offload_testkit.amqp import wait_for
from offload_testkit.k8s_tools import tool
from offload_testkit.processes import free_port
from offload_testkit.rabbitmq import PrivateBroker
from offload_testkit.rabbitmq_cluster import PrivateCluster

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def scripts() -> dict[str, str]:
    rendered = subprocess.run(
        [
            tool("helm"), "template", "r", str(ROOT / "charts" / "offload"),
            "-f", str(ROOT / "charts" / "offload" / "ci" / "broker-cluster-values.yaml"),
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    [config] = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "r-offload-rabbitmq"
    ]
    return {name: config["data"][name] for name in ("ready.sh", "pre-stop.sh")}


def run_script(text: str, node: PrivateBroker, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    if not cookie.exists():  # the nodes' cookie, as the chart's init container installs it
        shutil.copy(node.cookie, cookie)
        cookie.chmod(0o600)
    environment = {
        # The broker's own tools, from where the node runs (the tree, or the host).
        "PATH": f"/usr/lib/rabbitmq/bin:{os.environ['PATH']}",
        "HOME": str(home),
        "RABBITMQ_NODENAME": node.node_name,
        "OFFLOAD_BROKER_NODES": "3",
        "OFFLOAD_BROKER_AMQP_PORT": str(node.amqp_port),
        "OFFLOAD_BROKER_STOP_WAIT": "3",
        **env,
    }
    command = node.program("/bin/bash", "-c", text)
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


@pytest.fixture
def cluster(tmp_path):
    nodes = PrivateCluster(tmp_path / "rabbitmq").boot()
    yield nodes
    nodes.stop()


def test_ready_only_once_formed_then_queues_declared_early_get_a_member_on_every_node(cluster, tmp_path):
    ready = scripts()["ready.sh"]
    first, second, third = cluster.nodes
    # A quorum queue declared while the first node is still alone: one member.
    connection = pika.BlockingConnection(pika.URLParameters(first.amqp_url()))
    connection.channel().queue_declare("early", durable=True, arguments={"x-queue-type": "quorum"})
    connection.close()

    alone = run_script(ready, second, tmp_path / "home-1")
    assert alone.returncode != 0 and "1 of 3 broker nodes running" in alone.stdout, alone
    assert not (tmp_path / "home-1" / ".offload-cluster-formed").exists()

    cluster.join()
    assert cluster.queue("/", "early")["members"] == [first.node_name]  # joining alone adds no member
    for i, node in enumerate(cluster.nodes):
        formed = run_script(ready, node, tmp_path / f"home-{i}")
        assert formed.returncode == 0, formed
        assert (tmp_path / f"home-{i}" / ".offload-cluster-formed").exists()
    everywhere = sorted(n.node_name for n in cluster.nodes)
    wait_for(
        lambda: sorted(cluster.queue("/", "early")["members"]) == everywhere,
        timeout=10,
        what="a member of 'early' on every node",
    )

    # Once formed, readiness is the AMQP port alone: a peer's absence does not matter, a closed port does.
    cluster.kill(third.node_name)
    assert run_script(ready, second, tmp_path / "home-1").returncode == 0
    closed = run_script(ready, second, tmp_path / "home-1", OFFLOAD_BROKER_AMQP_PORT=str(free_port()))
    assert closed.returncode != 0


def test_pre_stop_waits_while_a_node_is_quorum_critical(cluster, tmp_path):
    pre_stop = scripts()["pre-stop.sh"]
    cluster.join()
    first, _, third = cluster.nodes
    connection = pika.BlockingConnection(pika.URLParameters(first.amqp_url()))
    connection.channel().queue_declare("work", durable=True, arguments={"x-queue-type": "quorum"})
    connection.close()
    assert len(cluster.queue("/", "work")["members"]) == 3

    calm = run_script(pre_stop, first, tmp_path / "home")
    assert calm.returncode == 0 and "would lose their majority" not in calm.stdout, calm

    # With a peer down, the first node is one of the last two members: stopping it would
    # leave the queue without a majority, so the hook waits (3 s here) and says so.
    cluster.kill(third.node_name)
    critical = run_script(pre_stop, first, tmp_path / "home")
    assert critical.returncode == 0 and "would lose their majority" in critical.stdout, critical
