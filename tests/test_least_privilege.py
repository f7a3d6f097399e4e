"""The stack with one broker user per service (offload_core.grants): the topology step
declares everything as the administrator, then a signup through the web is mailed once and
counted by services that may only publish and consume their own queues."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import requests

from offload_core.grants import service_grants
from offload_core.publisher import Publisher
from offload_core.topology import stack_topology
from offload_testkit.amqp import wait_for
from offload_testkit.stack import start_mailer, start_stats_runner, start_web
from tests.test_log_trail import outcome_lines

pytestmark = pytest.mark.slow

GRANTS = service_grants(stack_topology())


def run_topology_step(admin_url: str, delay_tiers: tuple[float, ...]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "offload_core.topology_step", "declare"],
        env={
            "OFFLOAD_AMQP_URL": admin_url,
            "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in delay_tiers),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_signup_is_mailed_and_counted_with_a_broker_user_per_service(
    rabbitmq_broker, amqp_vhost, core_config, tmp_path
):
    print(run_topology_step(core_config.amqp_url, core_config.delay_tiers))
    common = {
        "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
        "OFFLOAD_DECLARE_TOPOLOGY": "false",
    }

    def env(service: str) -> dict[str, str]:
        return common | {"OFFLOAD_AMQP_URL": rabbitmq_broker.add_user(amqp_vhost, GRANTS[service])}

    outbox = tmp_path / "outbox"
    services = [
        start_web(env("web"), tmp_path),
        start_mailer(
            env("mailer")
            | {
                "OFFLOAD_MAILER_OUTBOX": str(outbox),
                "OFFLOAD_MAILER_STORE_URL": f"sqlite:///{tmp_path}/sent.db",
            },
            tmp_path,
        ),
        start_stats_runner(
            env("stats") | {"OFFLOAD_STATS_STORE_URL": f"sqlite:///{tmp_path}/stats.db"}, tmp_path
        ),
    ]
    request_id = "least-privilege-7d21"
    try:
        answer = requests.post(
            services[0].url + "/api/v1/signups",
            json={"name": "Ada", "email": "ada@example.org", "fruit": "apple"},
            headers={"X-Request-ID": request_id},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        wait_for(lambda: list(outbox.glob("*.eml")), timeout=30, what="the welcome mail")
        wait_for(
            lambda: (
                {"signup.accepted", "mail.sent"}
                <= {
                    e["type"]
                    for e in outcome_lines(tmp_path / "stats.log", request_id)
                    if e["outcome"] == "acked"
                }
            ),
            timeout=30,
            what="stats counting the signup and its mail",
        )
    finally:
        for service in services:
            service.terminate()
    assert len(list(outbox.glob("*.eml"))) == 1
    for log in ("web.log", "mailer.log", "stats.log"):
        assert "ACCESS_REFUSED" not in (tmp_path / log).read_text(errors="replace"), log


def test_a_service_that_declares_is_refused_with_its_own_user(rabbitmq_broker, amqp_vhost, core_config):
    """Why the services run with OFFLOAD_DECLARE_TOPOLOGY off: the web's publisher, declaring
    as it does by default, never gets ready with the web's user, and says why. Control: the
    same publisher that leaves declaring to the topology step is ready."""
    run_topology_step(core_config.amqp_url, core_config.delay_tiers)
    web_config = replace(core_config, amqp_url=rabbitmq_broker.add_user(amqp_vhost, GRANTS["web"]))
    topology = stack_topology(core_config.delay_tiers)

    declaring = Publisher(web_config, web_config.topology_to_declare(topology), name="declaring").start()
    try:
        wait_for(
            lambda: "ACCESS_REFUSED" in (declaring.last_error or ""),
            timeout=20,
            what="the declaring publisher refused",
        )
        assert not declaring.ready
    finally:
        declaring.close()

    not_declaring = replace(web_config, declare_topology=False)
    publisher = Publisher(
        not_declaring, not_declaring.topology_to_declare(topology), name="publishing"
    ).start()
    try:
        assert publisher.wait_ready(20), publisher.last_error
    finally:
        publisher.close()
