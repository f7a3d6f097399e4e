"""Parked messages expire after the retention policy's time, on the private broker."""

from __future__ import annotations

from urllib.parse import quote

import pika

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


def test_a_parked_message_expires_under_the_retention_policy(rabbitmq_broker):
    """Two vhosts, the stack's topology in each, one parked message in each; the retention
    policy (a second here instead of 14 days) on one. Its message goes; the control's, in
    the vhost without the policy, is still there when it has gone."""
    with_policy, without = rabbitmq_broker.create_vhost(), rabbitmq_broker.create_vhost()
    policy = parked_retention_policy(days=1 / 86400)
    name = policy.pop("name")
    answer = rabbitmq_broker.http.put(
        f"{rabbitmq_broker.management_url}/api/policies/{quote(with_policy, safe='')}/{name}",
        json=policy,
        timeout=10,
    )
    assert answer.ok, answer.text
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


def test_the_policy_keeps_parked_messages_fourteen_days_by_default():
    policy = parked_retention_policy()
    assert policy["definition"] == {"message-ttl": 14 * 24 * 3600 * 1000}
    assert policy["pattern"] == r"\.parked$" and policy["apply-to"] == "queues"
