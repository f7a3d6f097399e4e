"""The parking queues' policy, on the private broker: parked messages expire after the
retention, and browsing them (offload-deadletters list) never drops one."""

from __future__ import annotations

import io
from urllib.parse import quote

import pika

from offload_core import deadletters
from offload_core.topology import (
    DEAD_EXCHANGE,
    MAILER_QUEUE_BY_LANE,
    declare,
    parked_retention_policy,
    stack_topology,
)
from offload_testkit.amqp import ready_count, wait_for

QUEUE = MAILER_QUEUE_BY_LANE["high"]
PARKED = f"{QUEUE}.parked"


def park(url: str, body: bytes) -> None:
    """What the broker does with a message past its delivery limit: onto offload.dead."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(DEAD_EXCHANGE, QUEUE, body, pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()


def major(broker) -> int:
    return int(broker.version().split(".")[0])


def set_policy(broker, vhost: str, policy: dict) -> None:
    policy = dict(policy)
    name = policy.pop("name")
    url = f"{broker.management_url}/api/policies/{quote(vhost, safe='')}/{name}"
    answer = broker.http.put(url, json=policy, timeout=10)
    assert answer.ok, answer.text


def test_a_parked_message_expires_under_the_retention_policy(rabbitmq_broker):
    """Two vhosts, the stack's topology in each, one parked message in each; the retention
    policy (a second here instead of 14 days) on one. Its message goes; the control's, in
    the vhost without the policy, is still there when it has gone."""
    with_policy, without = rabbitmq_broker.create_vhost(), rabbitmq_broker.create_vhost()
    set_policy(
        rabbitmq_broker,
        with_policy,
        parked_retention_policy(1 / 86400, rabbitmq_major=major(rabbitmq_broker)),
    )
    for vhost in (with_policy, without):
        url = rabbitmq_broker.amqp_url(vhost)
        declare(url, stack_topology())
        park(url, b'{"name": "Ada", "email": "ada@example.com"}')
    wait_for(
        lambda: ready_count(rabbitmq_broker.amqp_url(with_policy), PARKED) == 0,
        timeout=30,
        what="the parked message expiring",
    )
    assert ready_count(rabbitmq_broker.amqp_url(without), PARKED) == 1


BROWSES = 50


def test_a_parked_message_browsed_fifty_times_is_still_there(rabbitmq_broker, monkeypatch):
    """RabbitMQ 4.0 gives a quorum queue a delivery limit of 20 unless told otherwise, and
    counts every return of a message toward it: offload-deadletters list (a get, then the
    message goes back) would drop a parked message at its 21st look, since a parking queue has
    no dead-letter target. With the policy it is there after 50 lists; the control, the same
    topology in a vhost without the policy, loses it."""
    assert major(rabbitmq_broker) >= 4, f"this checks RabbitMQ 4, not {rabbitmq_broker.version()}"
    with_policy, without = rabbitmq_broker.create_vhost(), rabbitmq_broker.create_vhost()
    set_policy(rabbitmq_broker, with_policy, parked_retention_policy(rabbitmq_major=major(rabbitmq_broker)))

    def listed_after_browses(vhost: str) -> list[int]:
        url = rabbitmq_broker.amqp_url(vhost)
        declare(url, stack_topology())
        park(url, b'{"parked": true}')
        monkeypatch.setenv("OFFLOAD_AMQP_URL", url)
        counts = []
        for _ in range(BROWSES):
            out = io.StringIO()
            deadletters.run(["list", QUEUE], out=out)
            counts.append(len(out.getvalue().splitlines()))
        return counts

    assert listed_after_browses(with_policy) == [1] * BROWSES
    assert ready_count(rabbitmq_broker.amqp_url(with_policy), PARKED) == 1
    control = listed_after_browses(without)
    assert 0 in control and ready_count(rabbitmq_broker.amqp_url(without), PARKED) == 0, control


def test_the_policy_keeps_parked_messages_fourteen_days_and_unlimited_from_rabbitmq_4():
    three, four = parked_retention_policy(rabbitmq_major=3), parked_retention_policy(rabbitmq_major=4)
    assert three["definition"] == {"message-ttl": 14 * 24 * 3600 * 1000}
    # -1: unlimited on 4.x (which would otherwise give 20); 3.x refuses it, and is unlimited.
    assert four["definition"] == {"message-ttl": 14 * 24 * 3600 * 1000, "delivery-limit": -1}
    assert four["pattern"] == r"\.parked$" and four["apply-to"] == "queues"
