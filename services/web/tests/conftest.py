from __future__ import annotations

from collections.abc import Iterator

import pytest

from offload_testkit.stack import Service, start_web

# The guarantees the web gives (202 only after a confirm, 503 in time, body and request
# limits, reports flushed on exit) are checked under each gunicorn worker it offers.
WORKER_CLASSES = ("gthread", "gevent")


def web_env(core_config, **env: str) -> dict[str, str]:
    return {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_CONFIRM_TIMEOUT": "2",
        "OFFLOAD_BLOCKED_TIMEOUT": "5",
        "OFFLOAD_RECONNECT_MAX_DELAY": "1",
        **env,
    }


class WebServer:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.process = service.process
        self.base_url = service.url

    def url(self, path: str) -> str:
        return self.base_url + path

    def status(self, path: str) -> str:
        """`path` on the status port (/metrics, /healthz, /readyz)."""
        return self.service.status_url + path


@pytest.fixture(params=WORKER_CLASSES)
def worker_class(request) -> str:
    return request.param


@pytest.fixture
def web(core_config, tmp_path, worker_class) -> Iterator[WebServer]:
    server = WebServer(start_web(web_env(core_config, OFFLOAD_WEB_WORKER_CLASS=worker_class), tmp_path))
    yield server
    assert server.process.terminate() == 0, server.process.logs()
