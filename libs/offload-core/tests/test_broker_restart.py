"""Broker restarts under a publisher and a runner (restarts the session's private node)."""

from __future__ import annotations

import threading
import time

import pytest

from offload_core.publisher import Publisher, PublishError, PublishTimeout
from offload_testkit.amqp import take, wait_for
from offload_testkit.messages import signup
from offload_testkit.plugin import own_rabbitmq_broker
from offload_testkit.runner_thread import WORK_TOPOLOGY as TOPOLOGY
from offload_testkit.runner_thread import RunnerThread

pytestmark = pytest.mark.slow
# These tests restart or reconfigure the broker: a node of their own.
rabbitmq_broker = own_rabbitmq_broker()


def test_broker_restart_mid_publish_loses_no_confirmed_message(core_config, amqp_url, rabbitmq_broker):
    publisher = Publisher(core_config, TOPOLOGY).start()
    assert publisher.wait_ready(10)
    confirmed: list[str] = []
    failed = 0
    stop = threading.Event()

    def publish_loop() -> None:
        nonlocal failed
        while not stop.is_set():
            envelope = signup()
            try:
                publisher.publish(envelope, timeout=2.0)
                confirmed.append(envelope.id)
            except PublishError:
                failed += 1

    threads = [threading.Thread(target=publish_loop) for _ in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(confirmed) > 200, what="publishing under way")
    rabbitmq_broker.restart()
    before_recovery = len(confirmed)
    # The publisher reconnects by itself: confirms start flowing again.
    wait_for(lambda: len(confirmed) > before_recovery + 200, timeout=30, what="publishing resumed")
    stop.set()
    for t in threads:
        t.join()
    publisher.close()
    # Everything is settled now; the queue also holds republished duplicates and messages
    # whose caller timed out but which landed (at-least-once), so read it all.
    landed = {g.properties.message_id for g in take(amqp_url, "t.work")}
    assert len(confirmed) > 400
    assert set(confirmed) <= landed, f"{len(set(confirmed) - landed)} confirmed messages lost"


def test_runner_reconnects_and_resumes_after_a_broker_restart(core_config, amqp_url, rabbitmq_broker):
    seen: set[str] = set()
    publisher = Publisher(core_config, TOPOLOGY).start()
    try:
        with RunnerThread(core_config, lambda m: seen.add(m.id)) as runner:
            first = signup()
            publisher.publish(first)
            wait_for(lambda: first.id in seen, what="first message handled")
            rabbitmq_broker.restart()
            wait_for(lambda: runner.runner.ready, timeout=30, what="runner consuming again")
            second = signup()
            publisher.publish(second, timeout=15)
            wait_for(lambda: second.id in seen, timeout=15, what="message after restart handled")
    finally:
        publisher.close()


def test_handler_over_the_hard_time_limit_is_retried_and_capacity_kept(core_config, amqp_url):
    attempts: list[int] = []
    release = threading.Event()

    def handler(message) -> None:
        attempts.append(message.attempt)
        if message.attempt == 1:
            release.wait(10)  # stuck far beyond the limit

    publisher = Publisher(core_config, TOPOLOGY).start()
    try:
        with RunnerThread(core_config, handler, hard_time_limit=0.5, worker_threads=1):
            publisher.publish(signup())
            wait_for(lambda: attempts == [1, 2], timeout=10, what="second attempt after the time limit")
            # The one worker is stuck, yet another message still gets handled.
            publisher.publish(signup())
            wait_for(lambda: len(attempts) == 3, timeout=10, what="a further message handled")
            release.set()
            time.sleep(0.2)
    finally:
        publisher.close()


@pytest.mark.parametrize("withdrawal", ["on", "off (negative control)"])
def test_a_message_refused_while_the_broker_is_down_is_never_sent_later(
    core_config, amqp_url, rabbitmq_broker, withdrawal
):
    publisher = Publisher(core_config, TOPOLOGY).start()
    try:
        assert publisher.wait_ready(10)
        if withdrawal != "on":
            publisher._outbox.withdraw = lambda outgoing: False  # type: ignore[method-assign]  # the mechanism switched off on purpose
        rabbitmq_broker.stop()
        wait_for(lambda: not publisher.ready, what="publisher sees the broker gone")
        refused = signup()
        with pytest.raises(PublishTimeout) as raised:
            publisher.publish(refused, timeout=1.0)
        rabbitmq_broker.start()
        wait_for(lambda: publisher.ready, timeout=30, what="publisher reconnected")
        marker = signup()
        publisher.publish(marker, timeout=10)
    finally:
        publisher.close()
    landed = [g.properties.message_id for g in take(amqp_url, "t.work")]
    if withdrawal == "on":
        assert raised.value.withdrawn
        assert landed == [marker.id], "a message its caller was told failed was sent after all"
    else:
        assert refused.id in landed  # what the check above catches when nothing withdraws
