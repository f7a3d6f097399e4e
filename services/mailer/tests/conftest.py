from __future__ import annotations

from collections.abc import Iterator

import pytest

from offload_testkit.processes import ServiceProcess
from offload_testkit.stack import start_mailer


class MailerProcesses:
    """Start (and restart) mailer processes against the test's broker, SMTP sink and store."""

    def __init__(self, core_config, smtp_sink, tmp_path, store_url: str) -> None:
        self.env = {
            "OFFLOAD_AMQP_URL": core_config.amqp_url,
            "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
            "OFFLOAD_RECONNECT_MAX_DELAY": "1",
            "OFFLOAD_MAILER_BACKEND": "smtp",
            "OFFLOAD_SMTP_HOST": "127.0.0.1",
            "OFFLOAD_SMTP_PORT": str(smtp_sink.port),
            "OFFLOAD_SMTP_TIMEOUT": "3",
            "OFFLOAD_MAILER_STORE_URL": store_url,
            "OFFLOAD_LOG_FORMAT": "text",
        }
        self.tmp_path = tmp_path
        self.running: list[ServiceProcess] = []

    def start(self, **env: str) -> ServiceProcess:
        service = start_mailer(self.env | env, self.tmp_path, name=f"mailer-{len(self.running)}")
        service.process.status_url = service.url  # type: ignore[attr-defined]  # a test-only attribute
        self.running.append(service.process)
        return service.process

    def stop_all(self) -> None:
        for process in self.running:
            if process.process and process.process.poll() is None:
                assert process.terminate() == 0, process.logs()


@pytest.fixture
def mailers(core_config, smtp_sink, tmp_path) -> Iterator[MailerProcesses]:
    processes = MailerProcesses(core_config, smtp_sink, tmp_path, f"sqlite:///{tmp_path}/sent.db")
    yield processes
    processes.stop_all()


@pytest.fixture
def redis_mailers(core_config, smtp_sink, tmp_path, redis_url) -> Iterator[MailerProcesses]:
    processes = MailerProcesses(core_config, smtp_sink, tmp_path, redis_url)
    yield processes
    processes.stop_all()
