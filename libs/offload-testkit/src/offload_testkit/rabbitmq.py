"""A private RabbitMQ node for one test session, with the management and prometheus plugins.

Built on pytest-rabbitmq's executor (own node name, ports, data dir). Each test gets
its own vhost, so tests share one node (about 5 s to boot) without seeing each
other's queues.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import requests
from mirakuru.exceptions import ProcessFinishedWithError
from pytest_rabbitmq.factories.executor import RabbitMqExecutor

from offload_core.grants import BrokerGrant
from offload_testkit.processes import free_port
from offload_testkit.rabbitmq_tree import configured_tree, tree_command

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQ_CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
RABBITMQ_QUEUES = "/usr/lib/rabbitmq/bin/rabbitmq-queues"


class PrivateBroker:
    def __init__(self, workdir: Path, tree: Path | None = None) -> None:
        """A node of the RabbitMQ `tree` (by default the one OFFLOAD_RABBITMQ_TREE names:
        rabbitmq_tree.py), or of the host's RabbitMQ where there is none."""
        self.workdir = workdir
        self.tree = tree or configured_tree()
        self.amqp_port = free_port()
        self.dist_port = free_port(other_than=[self.amqp_port])
        self.management_port = free_port(other_than=[self.amqp_port, self.dist_port])
        self.prometheus_port = free_port(other_than=[self.amqp_port, self.dist_port, self.management_port])
        plugins = workdir / "plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        (plugins / "plugins").write_text("[rabbitmq_management,rabbitmq_prometheus].\n")
        config = workdir / "rabbitmq.conf"
        config.write_text(
            f"management.tcp.port = {self.management_port}\n"
            f"management.tcp.ip = 127.0.0.1\n"
            f"prometheus.tcp.port = {self.prometheus_port}\n"
            f"prometheus.tcp.ip = 127.0.0.1\n"
            # Collect queue stats often so depth-based tests do not wait 5 s per sample.
            "collect_statistics_interval = 500\n"
            "management.sample_retention_policies.global.minute = 1\n"
            "management.sample_retention_policies.basic.minute = 1\n"
            "management.sample_retention_policies.detailed.10 = 1\n"
        )
        # Quorum queues report their depth to the management API on every "tick" (5 s by
        # default, and only settable in advanced.config): tick every 500 ms like the stats.
        advanced = workdir / "advanced.config"
        advanced.write_text("[{rabbit, [{quorum_tick_interval, 500}]}].\n")
        self.node_name = f"offload-test-{self.amqp_port}@localhost"
        self.executor = RabbitMqExecutor(
            self.program(RABBITMQ_SERVER),  # type: ignore[arg-type]  # mirakuru takes an argv too
            "127.0.0.1",
            self.amqp_port,
            self.dist_port,
            RABBITMQ_CTL,
            logpath=workdir / "logs",
            path=workdir,
            plugin_path=plugins,
            node_name=self.node_name,
        )
        self.executor._envvars.update(
            {
                "RABBITMQ_CONFIG_FILE": str(config.with_suffix("")),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(advanced),
                "RABBITMQ_NODENAME": self.node_name,
            }
        )
        self.http = requests.Session()
        self.http.auth = ("guest", "guest")

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def amqp_url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"

    def management_url_with_credentials(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def program(self, path: str, *args: str) -> list[str]:
        """argv of one of the broker's programs (a path as the tree or the host has it)."""
        return tree_command(self.tree, path, *args, binds=[self.workdir]) if self.tree else [path, *args]

    @property
    def cookie(self) -> Path:
        """The Erlang cookie the node and its tools share (in $HOME, the tree's when there is one)."""
        home = Path(self.executor._popen_kwargs["env"]["HOME"])
        return (self.tree / home.relative_to("/") if self.tree else home) / ".erlang.cookie"

    def start(self) -> None:
        if self.tree is None and not Path(RABBITMQ_SERVER).exists():
            raise RuntimeError(
                "no RabbitMQ to run: set OFFLOAD_RABBITMQ_TREE=$(scripts/rabbitmq-tree.sh), as every "
                "make target that runs tests does, or install rabbitmq-server on this host"
            )
        # Nodes register with epmd; if the daemon went away with an earlier node's process
        # group, this node fails to boot with no_epmd_port. `epmd -daemon` is idempotent.
        subprocess.run(self.program("/usr/bin/epmd", "-daemon"), check=False)
        self.executor.start()
        self._wait_for_management()
        print(f"RabbitMQ {self.version()} node {self.node_name} on 127.0.0.1:{self.amqp_port}")

    def stop(self) -> None:
        try:
            self.executor.stop()
        except ProcessFinishedWithError as exc:
            # rabbitmq-server is a shell waiting on the VM; 4.0's exits with the VM's status,
            # so a VM killed -9 before (a fault a test placed) reads 128 + 9 here.
            if exc.exit_code != 128 + signal.SIGKILL:
                raise

    def restart(self) -> None:
        self.stop()
        self.start()

    def ctl(self, *args: str) -> str:
        return self._tool(RABBITMQ_CTL, *args)

    def queues_cli(self, *args: str) -> str:
        """rabbitmq-queues against this node (quorum queue membership)."""
        return self._tool(RABBITMQ_QUEUES, "-n", self.node_name, *args)

    def _tool(self, path: str, *args: str) -> str:
        env = self.executor._popen_kwargs["env"]
        return subprocess.check_output(self.program(path, *args), env=env, text=True)

    def version(self) -> str:
        """The node's RabbitMQ version, as its management API reports it."""
        overview = self.http.get(f"{self.management_url}/api/overview", timeout=10).json()
        return str(overview["rabbitmq_version"])

    def _wait_for_management(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get(f"{self.management_url}/api/overview", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"RabbitMQ management API did not answer on {self.management_url}")

    # -- vhosts and inspection ---------------------------------------------------

    def create_vhost(self, name: str | None = None) -> str:
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        v = quote(name, safe="")
        self.http.put(f"{self.management_url}/api/vhosts/{v}", timeout=10).raise_for_status()
        self.http.put(
            f"{self.management_url}/api/permissions/{v}/guest",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            timeout=10,
        ).raise_for_status()
        return name

    def add_user(self, vhost: str, grant: BrokerGrant) -> str:
        """A user of its own for `grant` on `vhost` (deleted with the node); its AMQP URL."""
        user, password = f"{grant.service}-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        api = self.management_url
        self.http.put(
            f"{api}/api/users/{user}", json={"password": password, "tags": ",".join(grant.tags)}, timeout=10
        ).raise_for_status()
        self.http.put(
            f"{api}/api/permissions/{quote(vhost, safe='')}/{user}", json=grant.permissions(), timeout=10
        ).raise_for_status()
        return f"amqp://{user}:{password}@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"

    def delete_vhost(self, name: str) -> None:
        self.http.delete(f"{self.management_url}/api/vhosts/{quote(name, safe='')}", timeout=30)

    def queue(self, vhost: str, name: str) -> dict:
        """The management API's view of one queue (counts, consumers, type), as PrivateCluster.queue."""
        url = f"{self.management_url}/api/queues/{quote(vhost, safe='')}/{quote(name, safe='')}"
        return self.http.get(url, timeout=10).json()
