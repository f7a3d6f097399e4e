"""A private RabbitMQ cluster on this machine: three PrivateBroker nodes joined into one.

Each node has its own name, ports and data dir; they share the Erlang cookie in $HOME, as
nodes started by one user do. Quorum queues declared once the cluster has formed get a
member on each node (RabbitMQ's default group size is min(3, cluster size)).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests

from offload_testkit.amqp import wait_for
from offload_testkit.rabbitmq import PrivateBroker


class PrivateCluster:
    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.nodes = [PrivateBroker(workdir / f"node-{i}") for i in range(size)]
        self.down: set[str] = set()  # node names killed and not started again

    # What PrivateBroker offers, for the cluster as a whole.

    @property
    def live(self) -> list[PrivateBroker]:
        return [node for node in self.nodes if node.node_name not in self.down]

    @property
    def management_url(self) -> str:
        return self.live[0].management_url

    @property
    def amqp_port(self) -> int:
        return self.live[0].amqp_port

    def amqp_url(self, vhost: str = "/") -> str:
        """Every node's URL, `;`-separated (offload_core.brokers)."""
        return ";".join(node.amqp_url(vhost) for node in self.nodes)

    def create_vhost(self, name: str | None = None) -> str:
        return self.live[0].create_vhost(name)

    def ctl(self, *args: str) -> str:
        return self.live[0].ctl(*args)

    def start(self) -> PrivateCluster:
        return self.boot().join()

    def boot(self) -> PrivateCluster:
        """Start every node, each a cluster of its own."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.start(), self.nodes))
        return self

    def join(self) -> PrivateCluster:
        """Join every node to the first."""
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node_name)
            node.ctl("start_app")
        self.wait_running(len(self.nodes))
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    # Inspection and faults.

    def running_nodes(self) -> set[str]:
        answer = requests.get(f"{self.management_url}/api/nodes", auth=("guest", "guest"), timeout=5)
        return {n["name"] for n in answer.json() if n.get("running")}

    def wait_running(self, count: int, timeout: float = 60.0) -> None:
        wait_for(
            lambda: len(self.running_nodes()) == count,
            timeout=timeout,
            interval=0.25,
            what=f"{count} running nodes in the cluster",
        )

    def queue(self, vhost: str, name: str) -> dict:
        url = f"{self.management_url}/api/queues/{quote(vhost, safe='')}/{quote(name, safe='')}"
        return requests.get(url, auth=("guest", "guest"), timeout=5).json()

    def connections_on(self, name: str) -> int:
        answer = requests.get(f"{self.management_url}/api/connections", auth=("guest", "guest"), timeout=5)
        return sum(1 for connection in answer.json() if connection.get("node") == name)

    def node(self, name: str) -> PrivateBroker:
        return next(node for node in self.nodes if node.node_name == name)

    def kill(self, name: str) -> None:
        """SIGKILL the node's Erlang VM: no shutdown, no goodbye to its peers."""
        node = self.node(name)
        pid = int(node.ctl("eval", "os:getpid().").strip().strip('"'))
        self.down.add(name)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{name} (pid {pid}) outlived SIGKILL")

    def shrink_to_leader(self, vhost: str, queue: str) -> None:
        """Remove every member of a quorum queue but its leader: a queue without replicas."""
        found = self.queue(vhost, queue)
        for member in found["members"]:
            if member != found["leader"]:
                self.live[0].queues_cli("delete_member", "--vhost", vhost, queue, member)
        wait_for(
            lambda: self.queue(vhost, queue).get("members") == [found["leader"]],
            timeout=30,
            what=f"{queue} down to its leader",
        )
