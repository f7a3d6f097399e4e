from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from offload_testkit.processes import ServiceProcess, free_port


class WebServer:
    def __init__(self, base_url: str, process: ServiceProcess) -> None:
        self.base_url = base_url
        self.process = process

    def url(self, path: str) -> str:
        return self.base_url + path


def start_web(core_config, tmp_path, **env: str) -> WebServer:
    port = free_port()
    environment = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_WEB_BIND": f"127.0.0.1:{port}",
        "OFFLOAD_WEB_WORKERS": "2",
        "OFFLOAD_CONFIRM_TIMEOUT": "2",
        "OFFLOAD_BLOCKED_TIMEOUT": "5",
        "OFFLOAD_RECONNECT_MAX_DELAY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **env,
    }
    (tmp_path / "metrics").mkdir(exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:offload_web.gunicorn_conf",
        "offload_web.wsgi:app",
    ]
    process = ServiceProcess(
        argv, env=environment, log_path=tmp_path / "web.log", health_url=f"http://127.0.0.1:{port}/readyz"
    ).start()
    return WebServer(f"http://127.0.0.1:{port}", process)


@pytest.fixture
def web(core_config, tmp_path) -> Iterator[WebServer]:
    server = start_web(core_config, tmp_path)
    yield server
    assert server.process.terminate() == 0, server.process.logs()
