"""Exchanges, queues and bindings: declared here, once, for every service.

    offload.events (topic)  --<type>.<lane>-->  work queues (quorum)
    work queue  --delivery limit / park-->  offload.dead (direct, key = queue)  -->  <queue>.parked
    runner retry  -->  offload.retry (direct)  -->  <queue>.delay.<ms>ms (TTL)  --expired-->  <queue>

Every service declares the whole topology at start, so the order services start in
does not matter and a new consumer is one more WorkQueue here; where the services' broker
users may not declare (grants.py), `offload-topology declare` (topology_step.py) does it
once as the administrator and the services run with OFFLOAD_DECLARE_TOPOLOGY off. Declarations are
idempotent as long as the arguments do not change; delay queues carry their delay in
their name so a new tier is a new queue, not a conflicting redeclaration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel

from offload_core.brokers import blocking_connection

EVENTS_EXCHANGE = "offload.events"
RETRY_EXCHANGE = "offload.retry"
DEAD_EXCHANGE = "offload.dead"


# The policy on every parking queue, set where the topology's admin step runs (policies need
# the broker's administrator): the chart's broker definitions, `make dev`'s broker, an
# operator's rabbitmqctl for their own. A policy, not queue arguments, because it can change
# on queues already declared.
# - Retention: parked messages hold names and addresses, so they expire.
# - From RabbitMQ 4.0, an unlimited delivery limit. 4.0 gives every quorum queue a limit of 20
#   (https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling) and counts each
#   return, so browsing a parked message (a get and a requeue, as offload-deadletters
#   list/show do) would drop it at the 21st look: a parking queue has no dead-letter target.
#   -1 is unlimited on 4.x; 3.x refuses -1, and is unlimited already without a limit.
PARKED_RETENTION_POLICY = "offload-parked-retention"
PARKED_RETENTION_DAYS = 14.0


def parked_retention_policy(days: float = PARKED_RETENTION_DAYS, *, rabbitmq_major: int) -> dict[str, Any]:
    """The policy (management API / definitions form) for the parking queues of a broker of
    major version `rabbitmq_major`: messages expire after `days`, browsing never drops one."""
    definition: dict[str, Any] = {"message-ttl": round(days * 24 * 3600 * 1000)}
    if rabbitmq_major >= 4:
        definition["delivery-limit"] = -1
    return {
        "name": PARKED_RETENTION_POLICY,
        "pattern": r"\.parked$",
        "apply-to": "queues",
        "priority": 0,
        "definition": definition,
    }


def routing_key(message_type: str, lane: str) -> str:
    return f"{message_type}.{lane}"


@dataclass(frozen=True)
class WorkQueue:
    name: str
    # Routing-key patterns on offload.events (topic syntax: * one word, # any).
    bindings: tuple[str, ...]
    # Patterns this queue was bound with by an earlier version, unbound at every declare
    # (a no-op once gone): a binding nobody declares any more would otherwise stay for good.
    retired_bindings: tuple[str, ...] = ()

    @property
    def parking_queue(self) -> str:
        return f"{self.name}.parked"


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


def delay_queue_name(queue: str, delay_seconds: float) -> str:
    return f"{queue}.delay.{round(delay_seconds * 1000)}ms"


@dataclass(frozen=True)
class Topology:
    queues: tuple[WorkQueue, ...]
    delay_tiers: tuple[float, ...] = (5.0, 30.0, 300.0)
    delivery_limit: int = 10

    def queue(self, name: str) -> WorkQueue:
        for queue in self.queues:
            if queue.name == name:
                return queue
        known = ", ".join(q.name for q in self.queues)
        raise KeyError(f"no work queue named {name!r} (known: {known})")

    def lanes_into(self, queue: str, routing_keys: list[tuple[str, str]]) -> list[str]:
        """Lanes of the (routing key, lane) pairs that this queue's bindings let in."""
        patterns = self.queue(queue).bindings
        return sorted({lane for key, lane in routing_keys if any(topic_matches(p, key) for p in patterns)})

    def delay_for_attempt(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1`: tiers grow, then stay at the longest."""
        return self.delay_tiers[min(attempt, len(self.delay_tiers)) - 1]

    def work_queue_arguments(self, queue: WorkQueue) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": DEAD_EXCHANGE,
            "x-dead-letter-routing-key": queue.name,
            # at-least-once dead-lettering: the broker keeps the message until the
            # parking queue confirmed it (needs reject-publish overflow).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def delay_queue_arguments(self, queue: WorkQueue, delay: float) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": round(delay * 1000),
            # Expired messages go straight back to their work queue via the default exchange.
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def operations(self) -> list[tuple[str, dict[str, Any]]]:
        """Channel calls that declare this topology, in order (method name, arguments)."""
        ops: list[tuple[str, dict[str, Any]]] = [
            ("exchange_declare", {"exchange": EVENTS_EXCHANGE, "exchange_type": "topic", "durable": True}),
            ("exchange_declare", {"exchange": RETRY_EXCHANGE, "exchange_type": "direct", "durable": True}),
            ("exchange_declare", {"exchange": DEAD_EXCHANGE, "exchange_type": "direct", "durable": True}),
        ]
        for queue in self.queues:
            ops.append(
                (
                    "queue_declare",
                    {"queue": queue.name, "durable": True, "arguments": self.work_queue_arguments(queue)},
                )
            )
            ops += [
                ("queue_bind", {"queue": queue.name, "exchange": EVENTS_EXCHANGE, "routing_key": pattern})
                for pattern in queue.bindings
            ]
            ops += [
                ("queue_unbind", {"queue": queue.name, "exchange": EVENTS_EXCHANGE, "routing_key": pattern})
                for pattern in queue.retired_bindings
            ]
            ops.append(
                (
                    "queue_declare",
                    {"queue": queue.parking_queue, "durable": True, "arguments": {"x-queue-type": "quorum"}},
                )
            )
            ops.append(
                (
                    "queue_bind",
                    {"queue": queue.parking_queue, "exchange": DEAD_EXCHANGE, "routing_key": queue.name},
                )
            )
            for delay in self.delay_tiers:
                name = delay_queue_name(queue.name, delay)
                ops.append(
                    (
                        "queue_declare",
                        {
                            "queue": name,
                            "durable": True,
                            "arguments": self.delay_queue_arguments(queue, delay),
                        },
                    )
                )
                ops.append(("queue_bind", {"queue": name, "exchange": RETRY_EXCHANGE, "routing_key": name}))
        return ops

    def declare(self, channel: BlockingChannel) -> None:
        for method, arguments in self.operations():
            getattr(channel, method)(**arguments)

    def declare_async(self, channel: Channel, on_done: Callable[[], None]) -> None:
        """Declare over an asynchronous channel, one call after the other, then `on_done()`."""
        remaining = self.operations()

        def next_operation(_frame: object = None) -> None:
            if not remaining:
                on_done()
                return
            method, arguments = remaining.pop(0)
            getattr(channel, method)(callback=next_operation, **arguments)

        next_operation()


# The stack's queue names, for the services that consume them: nobody spells one by hand.
MAILER_QUEUE_BY_LANE = {"high": "mailer.signups.high", "low": "mailer.signups.low"}
STATS_ACTIVITY_QUEUE = "stats.activity"
STATS_REQUESTS_QUEUE = "stats.requests"
STACK_QUEUES: tuple[WorkQueue, ...] = (
    WorkQueue(MAILER_QUEUE_BY_LANE["high"], ("signup.created.high",)),
    WorkQueue(MAILER_QUEUE_BY_LANE["low"], ("signup.created.low",)),
    # Stats takes what it counts of a signup (signup.accepted), never the person's data.
    WorkQueue(
        STATS_ACTIVITY_QUEUE,
        ("signup.accepted.*", "mail.sent.*", "mail.failed.*", "mail.suppressed.*"),
        retired_bindings=("signup.created.*",),
    ),
    # One event per request, or (what the web sends) one per worker per quarter second.
    WorkQueue(STATS_REQUESTS_QUEUE, ("http.request.*", "http.request.batch.*")),
)


def stack_topology(delay_tiers: tuple[float, ...] = (5.0, 30.0, 300.0), delivery_limit: int = 10) -> Topology:
    """The topology of the Offload stack."""
    return Topology(STACK_QUEUES, delay_tiers=delay_tiers, delivery_limit=delivery_limit)


def declare(url: str, topology: Topology) -> None:
    """Declare `topology` over a short-lived connection (services call this at start)."""
    connection = blocking_connection(url)
    try:
        topology.declare(connection.channel())
    finally:
        connection.close()
