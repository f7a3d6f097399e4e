"""Each service's broker user, on the private broker: refused what it must not do, allowed
what it needs. The control of every refusal is the same operation by the administrator
(the one shared user every service had before), which succeeds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pika
import pika.exceptions
import pytest
import requests

from offload_core.grants import CONSUMED_BY, NOTHING, BrokerGrant, exactly, service_grants
from offload_core.topology import (
    DEAD_EXCHANGE,
    EVENTS_EXCHANGE,
    MAILER_QUEUE_BY_LANE,
    RETRY_EXCHANGE,
    STATS_ACTIVITY_QUEUE,
    declare,
    stack_topology,
)

GRANTS = service_grants(stack_topology())
MAILER_QUEUE = MAILER_QUEUE_BY_LANE["high"]

# -- the expressions -----------------------------------------------------------------


def test_no_service_may_configure_anything():
    names = [q.name for q in stack_topology().queues] + [EVENTS_EXCHANGE, RETRY_EXCHANGE, DEAD_EXCHANGE]
    for grant in GRANTS.values():
        assert grant.configure == NOTHING
        assert not any(grant.may("configure", name) for name in names), grant


def test_the_web_may_publish_facts_and_nothing_else():
    web = GRANTS["web"]
    assert web.may("write", EVENTS_EXCHANGE)
    assert not web.may("write", RETRY_EXCHANGE) and not web.may("write", DEAD_EXCHANGE)
    assert not any(web.may("read", q.name) for q in stack_topology().queues)


def test_stats_may_not_read_the_queues_that_carry_names_and_addresses():
    stats, mailer = GRANTS["stats"], GRANTS["mailer"]
    for queue in CONSUMED_BY["mailer"]:
        assert mailer.may("read", queue) and not stats.may("read", queue)
        assert not mailer.may("read", f"{queue}.parked")  # parked messages are the operator's
    for queue in CONSUMED_BY["stats"]:
        assert stats.may("read", queue) and not mailer.may("read", queue)
    assert not stats.may("write", EVENTS_EXCHANGE) and mailer.may("write", EVENTS_EXCHANGE)


def test_the_autoscaler_only_monitors():
    autoscaler = GRANTS["autoscaler"]
    assert autoscaler.tags == ("monitoring",)
    assert autoscaler.permissions() == {"configure": NOTHING, "write": NOTHING, "read": NOTHING}


def test_names_are_matched_exactly_not_as_patterns():
    """re.escape: a dot in a name is a dot, and a longer name is another name."""
    pattern = exactly(["offload.events"])
    grant = BrokerGrant("x", write=pattern)
    assert grant.may("write", "offload.events")
    assert not grant.may("write", "offloadXevents")
    assert not grant.may("write", "offload.events.more")
    assert exactly([]) == NOTHING


def test_a_consumed_queue_the_topology_does_not_declare_is_refused():
    with pytest.raises(KeyError, match="no work queue"):
        service_grants(stack_topology().__class__(queues=stack_topology().queues[:1]))


# -- on the broker ---------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One AMQP operation on a fresh connection and channel."""

    what: str
    run: Callable[[pika.adapters.blocking_connection.BlockingChannel], object]


def publish_to(exchange: str, key: str) -> Attempt:
    def run(channel) -> None:
        channel.confirm_delivery()
        channel.basic_publish(exchange, key, b"{}", pika.BasicProperties(delivery_mode=2))

    return Attempt(f"publish to {exchange}", run)


def consume(queue: str) -> Attempt:
    return Attempt(f"consume {queue}", lambda channel: channel.basic_consume(queue, lambda *_: None))


def get(queue: str) -> Attempt:
    return Attempt(f"basic.get {queue}", lambda channel: channel.basic_get(queue))


def purge(queue: str) -> Attempt:
    return Attempt(f"purge {queue}", lambda channel: channel.queue_purge(queue))


def declare_queue(name: str) -> Attempt:
    return Attempt(
        f"declare queue {name}",
        lambda channel: channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"}),
    )


def declare_exchange(name: str) -> Attempt:
    return Attempt(f"declare exchange {name}", lambda channel: channel.exchange_declare(name, "topic"))


def delete_queue(name: str) -> Attempt:
    return Attempt(f"delete queue {name}", lambda channel: channel.queue_delete(name))


def attempt(url: str, operation: Attempt) -> str:
    """'ok', or the broker's refusal ('403 ACCESS_REFUSED ...')."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        operation.run(connection.channel())
        return "ok"
    except pika.exceptions.ChannelClosedByBroker as error:
        return f"{error.reply_code} {error.reply_text}"
    finally:
        if connection.is_open:
            connection.close()


REFUSED = [
    ("web", consume(MAILER_QUEUE)),
    ("web", get(STATS_ACTIVITY_QUEUE)),
    ("web", purge(MAILER_QUEUE)),
    ("web", declare_queue("web.own")),
    ("web", declare_exchange("web.own")),
    ("web", publish_to(RETRY_EXCHANGE, f"{MAILER_QUEUE}.delay.5000ms")),
    ("mailer", consume(STATS_ACTIVITY_QUEUE)),
    ("mailer", get(f"{MAILER_QUEUE}.parked")),
    ("mailer", declare_queue("mailer.own")),
    ("mailer", delete_queue(MAILER_QUEUE)),
    ("stats", consume(MAILER_QUEUE)),
    ("stats", publish_to(EVENTS_EXCHANGE, "signup.created.high")),
    ("autoscaler", publish_to(EVENTS_EXCHANGE, "signup.created.high")),
    ("autoscaler", get(MAILER_QUEUE)),
]


@pytest.fixture
def vhost(rabbitmq_broker, amqp_vhost) -> str:
    declare(rabbitmq_broker.amqp_url(amqp_vhost), stack_topology())
    return amqp_vhost


@pytest.mark.parametrize(("service", "operation"), REFUSED, ids=lambda v: getattr(v, "what", v))
def test_a_service_user_is_refused_what_it_must_not_do(rabbitmq_broker, vhost, service, operation):
    own = attempt(rabbitmq_broker.add_user(vhost, GRANTS[service]), operation)
    assert own.startswith("403 ACCESS_REFUSED"), f"{service} may {operation.what}: {own}"
    # Control: the administrator, the one user every service shared, is allowed.
    assert attempt(rabbitmq_broker.amqp_url(vhost), operation) == "ok"


ALLOWED = [
    ("web", publish_to(EVENTS_EXCHANGE, "signup.created.high")),
    ("mailer", consume(MAILER_QUEUE)),
    ("mailer", publish_to(EVENTS_EXCHANGE, "mail.sent.high")),
    ("mailer", publish_to(RETRY_EXCHANGE, f"{MAILER_QUEUE}.delay.5000ms")),
    ("mailer", publish_to(DEAD_EXCHANGE, MAILER_QUEUE)),
    ("stats", consume(STATS_ACTIVITY_QUEUE)),
    ("stats", publish_to(RETRY_EXCHANGE, f"{STATS_ACTIVITY_QUEUE}.delay.5000ms")),
]


@pytest.mark.parametrize(("service", "operation"), ALLOWED, ids=lambda v: getattr(v, "what", v))
def test_a_service_user_may_do_what_it_needs(rabbitmq_broker, vhost, service, operation):
    assert attempt(rabbitmq_broker.add_user(vhost, GRANTS[service]), operation) == "ok"


def test_the_autoscaler_user_reads_queue_depths_through_the_management_api(rabbitmq_broker, vhost):
    url = rabbitmq_broker.add_user(vhost, GRANTS["autoscaler"])
    user, password = url.split("//", 1)[1].split("@", 1)[0].split(":", 1)
    queues = requests.get(
        f"{rabbitmq_broker.management_url}/api/queues/{vhost}", auth=(user, password), timeout=10
    )
    assert queues.status_code == 200, queues.text
    assert MAILER_QUEUE in {q["name"] for q in queues.json()}
    # Control: with no tag the same user is refused the management API.
    untagged = rabbitmq_broker.add_user(vhost, BrokerGrant("untagged"))
    user, password = untagged.split("//", 1)[1].split("@", 1)[0].split(":", 1)
    refused = requests.get(
        f"{rabbitmq_broker.management_url}/api/queues/{vhost}", auth=(user, password), timeout=10
    )
    assert refused.status_code == 401
