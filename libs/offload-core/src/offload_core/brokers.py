"""Where the broker is: one node, or the nodes of a RabbitMQ cluster.

`OFFLOAD_AMQP_URL` holds one URL, or several separated by `;` (Kombu's failover syntax),
one per node of a cluster. Each connection attempt takes the next node in turn, so a
publisher or runner whose node died reaches a live one on its next attempt; each process
starts at a random node, so a cluster's connections spread over its nodes. Behind a
Kubernetes Service one URL is enough: the Service picks a ready node for each connection.
"""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import pika

SEPARATOR = ";"


def split_urls(raw: str) -> tuple[str, ...]:
    """The node URLs in `raw`, in order; a ValueError names what is wrong with one."""
    urls = tuple(part.strip() for part in raw.split(SEPARATOR) if part.strip())
    if not urls:
        raise ValueError("must name at least one broker URL")
    for url in urls:
        scheme = urlsplit(url).scheme
        if scheme not in ("amqp", "amqps"):
            shown = url.split("@")[-1]  # never echo a password
            raise ValueError(f"{shown!r} is not an amqp:// or amqps:// URL")
    return urls


class BrokerNodes:
    """Connection parameters for each attempt: the next node in turn, with our settings."""

    def __init__(
        self,
        raw_urls: str,
        *,
        connection_name: str,
        heartbeat: int,
        blocked_connection_timeout: float | None = None,
    ) -> None:
        self.urls = split_urls(raw_urls)
        self.connection_name = connection_name
        self.heartbeat = heartbeat
        self.blocked_connection_timeout = blocked_connection_timeout
        self._attempts = random.randrange(len(self.urls))

    def next_parameters(self) -> pika.URLParameters:
        url = self.urls[self._attempts % len(self.urls)]
        self._attempts += 1
        parameters = pika.URLParameters(url)
        parameters.heartbeat = self.heartbeat
        parameters.client_properties = {"connection_name": self.connection_name}
        if self.blocked_connection_timeout is not None:
            parameters.blocked_connection_timeout = self.blocked_connection_timeout
        return parameters


def blocking_connection(raw_urls: str) -> pika.BlockingConnection:
    """A blocking connection to the first node that answers (command-line tools, start-up)."""
    failure: Exception | None = None
    for url in split_urls(raw_urls):
        try:
            return pika.BlockingConnection(pika.URLParameters(url))
        except pika.exceptions.AMQPConnectionError as exc:
            failure = exc
    assert failure is not None
    raise failure
