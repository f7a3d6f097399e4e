"""Small blocking helpers for tests: look into queues without consuming for real."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pika


@dataclass
class Got:
    body: bytes
    properties: pika.BasicProperties
    routing_key: str
    exchange: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def headers(self) -> dict[str, Any]:
        return self.properties.headers or {}


def ready_count(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def take(url: str, queue: str, *, expect: int | None = None, timeout: float = 10.0) -> list[Got]:
    """Get (and ack) messages from `queue`: `expect` of them within `timeout`, else all ready now."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    got: list[Got] = []
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                got.append(Got(body, properties, method.routing_key, method.exchange))
                if expect is not None and len(got) >= expect:
                    return got
                continue
            if expect is None or time.monotonic() > deadline:
                return got
            time.sleep(0.05)
    finally:
        connection.close()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
