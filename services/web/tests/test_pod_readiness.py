"""/readyz speaks for the whole pod: every gunicorn worker's publisher, not the answering one's.

The broker is reached through a TCP proxy that lets one connection through at a time, so
of two workers exactly one is connected. Every probe must answer 503 then; the probe loop
runs until an answer came from the connected worker itself (it says so), the worker that
alone would have answered 200. The unit tests hold PodReadiness's counting."""

from __future__ import annotations

import pytest
import requests

from offload_testkit.amqp import wait_for
from offload_testkit.stack import start_web
from offload_testkit.tcp_proxy import TcpProxy
from offload_web.readiness import PodReadiness

from .conftest import web_env

pytestmark = pytest.mark.slow


def test_readiness_is_the_pods_while_one_worker_of_two_is_connected(core_config, rabbitmq_broker, tmp_path):
    proxy = TcpProxy("127.0.0.1", rabbitmq_broker.amqp_port)
    env = web_env(core_config, OFFLOAD_AMQP_URL=proxy.route(core_config.amqp_url), OFFLOAD_WEB_WORKERS="2")
    web = start_web(env, tmp_path)
    try:
        assert requests.get(web.status_url + "/readyz", timeout=5).json() == {"status": "ready", "workers": 2}
        proxy.max_connections = 1
        proxy.cut()
        # The workers notice the cut within a heartbeat of their I/O loop and a readiness check.
        wait_for(
            lambda: requests.get(web.status_url + "/readyz", timeout=5).status_code == 503,
            timeout=30,
            what="503",
        )
        answers: list[tuple[int, dict]] = []

        def the_connected_worker_answered() -> bool:
            response = requests.get(web.status_url + "/readyz", timeout=5)
            answers.append((response.status_code, response.json()))
            return "this worker is connected" in response.json().get("broker", "")

        wait_for(
            the_connected_worker_answered,
            timeout=30,
            interval=0.05,
            what="an answer from the connected worker",
        )
        assert {status for status, _ in answers} == {503}, answers
        assert answers[-1][1]["ready_workers"] == 1 and answers[-1][1]["workers"] == 2
        proxy.max_connections = None
        wait_for(
            lambda: requests.get(web.status_url + "/readyz", timeout=5).ok,
            timeout=30,
            what="both workers ready",
        )
    finally:
        assert web.terminate() == 0, web.process.logs()
        proxy.close()


def test_pod_readiness_counts_ready_workers_and_forgets_dead_ones(tmp_path):
    pod = PodReadiness.create(tmp_path / "ready", workers=2)
    assert not pod.ready
    pod.record(101, True)
    assert not pod.ready and pod.ready_workers() == 1
    pod.record(102, True)
    assert pod.ready
    pod.forget(101)  # the master, when worker 101 exits
    assert not pod.ready
    pod.record(103, True)
    pod.record(102, False)
    assert pod.ready_workers() == 1
    again = PodReadiness.create(tmp_path / "ready", workers=3)  # a new master starts clean
    assert again.ready_workers() == 0
