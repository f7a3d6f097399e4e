"""Run a service as a real process for a test: start, wait until it answers, stop with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests
from port_for import get_port

# Ports for the tests' servers, below the kernel's ephemeral range (32768 and up by default),
# where outgoing connections take their source ports. Under pytest-xdist each worker draws
# from a range of its own: a port one worker picked and whose server is still starting is
# never picked by another.
PORTS = (10000, 32000)


def port_range(worker: str | None = None) -> tuple[int, int]:
    """The ports of xdist worker `worker` ("gw0", "gw1", ...; default: this process's)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return PORTS
    index = int(worker.removeprefix("gw"))
    width = (PORTS[1] - PORTS[0]) // count
    return (PORTS[0] + index * width, PORTS[0] + (index + 1) * width - 1)


# Ports this process handed out lately. A port is free when picked but taken only once its
# server starts: a test that picks several (a broker cluster: four per node, all picked
# before any node starts) could otherwise be handed the same free port twice.
_HANDED_OUT: deque[int] = deque(maxlen=1024)
_HANDING_OUT = threading.Lock()


def free_port(*, other_than: list[int] | None = None) -> int:
    with _HANDING_OUT:
        port = get_port(port_range(), [*_HANDED_OUT, *(other_than or [])])
        assert port is not None
        _HANDED_OUT.append(port)
    return port


class ServiceProcess:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        health_url: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.health_url = health_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if self.health_url:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.argv[0]} exited with {self.process.returncode}:\n{self.logs()}"
                    )
                try:
                    if requests.get(self.health_url, timeout=1).ok:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            raise RuntimeError(f"{self.health_url} did not answer in {timeout:g}s:\n{self.logs()}")
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (kills after `timeout`)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
