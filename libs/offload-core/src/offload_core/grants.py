"""What each service's broker user may do, derived from the topology.

RabbitMQ authorises every operation against three regular expressions a user holds per
vhost (https://www.rabbitmq.com/docs/access-control#authorisation):

- configure: declaring or deleting a queue or exchange (a passive declare needs nothing);
- write: publishing to an exchange; binding, as the queue's side;
- read: consuming, basic.get and purging a queue; binding, as the exchange's side.

Here the topology step, run once as the administrator, declares everything, so no service
configures anything. The web only publishes facts; the runners read their own queues and
publish what settlement moves (retries, parked messages) plus, for the mailer, its outcome
events; the autoscaler reads queue depths through the management API (the `monitoring`
tag) and has no AMQP rights at all. RabbitMQ ties purge to read, so a runner can purge its
own queues and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from offload_core.topology import (
    DEAD_EXCHANGE,
    EVENTS_EXCHANGE,
    MAILER_QUEUE_BY_LANE,
    RETRY_EXCHANGE,
    STATS_ACTIVITY_QUEUE,
    STATS_REQUESTS_QUEUE,
    Topology,
    stack_topology,
)

NOTHING = "^$"  # matches no resource name: RabbitMQ's way of granting nothing

# Which work queues each runner service consumes.
CONSUMED_BY = {
    "mailer": tuple(MAILER_QUEUE_BY_LANE.values()),
    "stats": (STATS_ACTIVITY_QUEUE, STATS_REQUESTS_QUEUE),
}
# Settlement publishes retries to offload.retry and parks to offload.dead.
SETTLEMENT_EXCHANGES = (RETRY_EXCHANGE, DEAD_EXCHANGE)


@dataclass(frozen=True)
class BrokerGrant:
    """One broker user's rights on the stack's vhost: RabbitMQ's configure, write and read
    expressions, and the user's tags (management API access)."""

    service: str
    configure: str = NOTHING
    write: str = NOTHING
    read: str = NOTHING
    tags: tuple[str, ...] = ()

    def permissions(self) -> dict[str, str]:
        """The management API / definitions form of the vhost permissions."""
        return {"configure": self.configure, "write": self.write, "read": self.read}

    def may(self, right: str, resource: str) -> bool:
        """Whether RabbitMQ grants `right` (configure, write, read) on `resource` (a queue or
        exchange name): its check is an unanchored regex search, as re.search."""
        return re.search(self.permissions()[right], resource) is not None


def exactly(names: Iterable[str]) -> str:
    """An anchored expression matching these names and nothing else."""
    listed = sorted(set(names))
    return "^(" + "|".join(re.escape(name) for name in listed) + ")$" if listed else NOTHING


def service_grants(topology: Topology) -> dict[str, BrokerGrant]:
    """Each service's grant for `topology` (its queues must be the ones CONSUMED_BY names)."""
    for queues in CONSUMED_BY.values():
        for queue in queues:
            topology.queue(queue)  # a queue the topology does not declare is a mistake here
    return {
        "web": BrokerGrant("web", write=exactly([EVENTS_EXCHANGE])),
        "mailer": BrokerGrant(
            "mailer",
            write=exactly([EVENTS_EXCHANGE, *SETTLEMENT_EXCHANGES]),
            read=exactly(CONSUMED_BY["mailer"]),
        ),
        "stats": BrokerGrant(
            "stats", write=exactly(SETTLEMENT_EXCHANGES), read=exactly(CONSUMED_BY["stats"])
        ),
        "autoscaler": BrokerGrant("autoscaler", tags=("monitoring",)),
    }


def main() -> None:
    """Print the stack's grants as JSON: the chart's broker definitions read this file
    (charts/offload/files/broker-grants.json), so no expression is spelled twice."""
    import json

    grants = service_grants(stack_topology())
    print(
        json.dumps(
            {
                service: {**grant.permissions(), "tags": ",".join(grant.tags)}
                for service, grant in sorted(grants.items())
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
