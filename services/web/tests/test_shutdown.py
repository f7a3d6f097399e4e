"""SIGTERM under each gunicorn worker: the request reports a worker collected are sent
before it exits (its exit hook flushes them into the publisher, then the publisher's buffer).

The reports are sent every ten minutes here, so only the exit hook can have sent them; the
negative control runs the same server with that hook switched off."""

from __future__ import annotations

import requests

from offload_testkit.amqp import take
from offload_testkit.stack import start_web

REQUESTS = 12


def reports_sent_before_exit(core_config, amqp_url, tmp_path, worker_class, config=None) -> int:
    env = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_WEB_WORKER_CLASS": worker_class,
        "OFFLOAD_WEB_ANALYTICS_INTERVAL": "600",
    }
    service = start_web(env, tmp_path, config=config)
    for number in range(REQUESTS):
        assert requests.get(f"{service.url}/nope-{number}", timeout=10).status_code == 404
    assert service.terminate() == 0, service.process.logs()
    # The server is gone: whatever it sent is in the queue now, and nothing more will come.
    events = take(amqp_url, "stats.requests")
    return sum(len(event.json()["data"]["requests"]) for event in events)


def test_reports_collected_before_sigterm_are_sent_on_exit(core_config, amqp_url, tmp_path, worker_class):
    assert reports_sent_before_exit(core_config, amqp_url, tmp_path, worker_class) == REQUESTS


def test_without_the_exit_flush_the_collected_reports_are_lost(core_config, amqp_url, tmp_path, worker_class):
    """Negative control: the web's gunicorn settings with an exit hook that does nothing."""
    config = tmp_path / "no_exit_flush.py"
    config.write_text(
        "from offload_web.gunicorn_conf import *  # noqa: F403\n\n\n"
        "def worker_exit(server, worker):\n    pass\n"
    )
    assert reports_sent_before_exit(core_config, amqp_url, tmp_path, worker_class, str(config)) == 0
