"""The web when the broker is down or blocked: 503 quickly, never a hang, never a false 202."""

from __future__ import annotations

import time

import pytest
import requests

from offload_testkit.amqp import take, wait_for
from offload_testkit.forms import form_session
from offload_testkit.plugin import own_rabbitmq_broker

GOOD = {"name": "Ada", "email": "ada@example.com", "fruit": "kiwi"}

pytestmark = [pytest.mark.slow, pytest.mark.timing]
# These tests restart or reconfigure the broker: a node of their own.
rabbitmq_broker = own_rabbitmq_broker()


def signup(web):
    return requests.post(web.url("/api/v1/signups"), json=GOOD, timeout=15)


def accepted_id(response) -> str:
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_broker_stopped_gives_503_within_the_timeout_then_recovers_without_restart(
    web, rabbitmq_broker, amqp_url
):
    accepted = {accepted_id(signup(web))}
    rabbitmq_broker.stop()
    try:
        started = time.monotonic()
        response = signup(web)
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert "uncertain_ids" not in response.json()  # never written: withdrawn, never sent
        assert response.headers["Retry-After"] == "5"
        assert response.headers["Content-Type"] == "application/problem+json"
        assert elapsed < 4  # confirm timeout is 2 s in this test
        session, fields = form_session(web.base_url)
        form = session.post(web.url("/signup"), data=GOOD | fields, allow_redirects=False, timeout=15)
        assert form.status_code == 503 and "try again" in form.text
        not_ready = requests.get(web.status("/readyz"), timeout=5)
        assert not_ready.status_code == 503
        assert not_ready.json()["broker"] in ("unreachable", "connecting")  # never the error's text
    finally:
        rabbitmq_broker.start()
    wait_for(lambda: requests.get(web.status("/readyz"), timeout=5).ok, timeout=30, what="web ready again")
    accepted.add(accepted_id(signup(web)))
    landed = [g.properties.message_id for g in take(amqp_url, "mailer.signups.high")]
    # Every 202 is in the queue once; the two refused while the broker was down never went out
    # (the publisher withdrew them at the timeout; libs/offload-core tests hold the negative control).
    assert sorted(landed) == sorted(accepted)


def test_memory_alarm_gives_503_not_a_hang_and_no_false_202(web, rabbitmq_broker, amqp_url):
    rabbitmq_broker.ctl("set_vm_memory_high_watermark", "0")
    try:
        for _ in range(3):
            started = time.monotonic()
            response = signup(web)
            assert time.monotonic() - started < 4
            assert response.status_code == 503, response.text
    finally:
        rabbitmq_broker.ctl("set_vm_memory_high_watermark", "0.4")
    wait_for(lambda: requests.get(web.status("/readyz"), timeout=5).ok, timeout=30, what="web ready again")
    after = accepted_id(signup(web))
    landed = {g.properties.message_id for g in take(amqp_url, "mailer.signups.high")}
    assert after in landed
