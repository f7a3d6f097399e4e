"""Where queue depth comes from: RabbitMQ's management API (http) or a passive declare (amqp).

One reused HTTP session / AMQP connection per broker. Any missing or malformed field
is an error, never 0 (a 0 would scale runners away while work waits: kedacore/keda#7180).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika
import requests

from offload_autoscaler.decision import Observation
from offload_autoscaler.spec import Trigger
from offload_autoscaler.wait_time import QueueFlow

PAGE_SIZE = 500


class ReadError(Exception):
    pass


def _number(item: dict[str, Any], *path: str) -> float:
    value: Any = item
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise ReadError(
                f"queue {item.get('name')!r}: field {'.'.join(path)} missing from the management API"
            )
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReadError(f"queue {item.get('name')!r}: field {'.'.join(path)} is {value!r}, not a number")
    return float(value)


def _rate(item: dict[str, Any], stat: str, *, added_on_first: bool = False) -> float:
    """message_stats.<stat>_details.rate; 0 for a queue that never saw a message, and, when
    RabbitMQ adds the field only with the first such event (`added_on_first`: acks), 0
    while it is absent."""
    if "message_stats" not in item and _number(item, "messages") == 0:
        return 0.0
    stats = item.get("message_stats")
    if added_on_first and isinstance(stats, dict) and f"{stat}_details" not in stats:
        return 0.0
    return _number(item, "message_stats", f"{stat}_details", "rate")


def _aggregate(values: list[float], operation: str) -> float:
    if not values:
        raise ReadError("no queue matched")
    if operation == "max":
        return max(values)
    if operation == "avg":
        return sum(values) / len(values)
    return sum(values)


class ManagementApiSource:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        self.session = requests.Session()
        if parts.username:
            self.session.auth = (unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self.session.get(self.base + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ReadError(f"management API unreachable: {exc}") from None
        if response.status_code != 200:
            raise ReadError(f"management API answered {response.status_code} for {path}")
        try:
            return response.json()
        except ValueError:
            raise ReadError(f"management API sent a body that is not JSON for {path}") from None

    def queues(self, trigger: Trigger) -> list[dict[str, Any]]:
        vhost = quote(trigger.vhost, safe="")
        if trigger.queue_name is not None:
            item = self._get(f"/api/queues/{vhost}/{quote(trigger.queue_name, safe='')}")
            if not isinstance(item, dict):
                raise ReadError("management API returned no queue object")
            return [item]
        # Every page, not just the first (KEDA reads one page and misses the rest).
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._get(
                f"/api/queues/{vhost}",
                {"page": page, "page_size": PAGE_SIZE, "name": trigger.queue_regex, "use_regex": "true"},
            )
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ReadError("management API page has no items list")
            items += body["items"]
            if page >= int(body.get("page_count", 1)):
                break
            page += 1
        pattern = re.compile(trigger.queue_regex or "")
        return [i for i in items if pattern.search(str(i.get("name", "")))]

    def read(self, trigger: Trigger) -> Observation:
        try:
            items = self.queues(trigger)
            unacked = int(sum(_number(i, "messages_unacknowledged") for i in items))
            field = "messages_ready" if trigger.exclude_unacknowledged else "messages"
            depth = _aggregate([_number(i, field) for i in items], trigger.operation)
            if trigger.mode == "ExpectedWaitTime":
                # The queues a trigger matches are one pool of work for one Deployment.
                flow = QueueFlow(
                    ready=int(sum(_number(i, "messages_ready") for i in items)),
                    unacked=unacked,
                    publish_rate=sum(_rate(i, "publish") for i in items),
                    ack_rate=sum(_rate(i, "ack", added_on_first=True) for i in items),
                    consumers=int(max(_number(i, "consumers") for i in items)),
                )
                return Observation(float(flow.ready + flow.unacked), unacked, flow=flow)
            if trigger.mode != "MessageRate":
                return Observation(depth, unacked)
            rates = [_rate(i, "publish") for i in items]
            # The depth travels with the rate: KEDA counts either for activation.
            return Observation(_aggregate(rates, trigger.operation), unacked, messages=depth)
        except ReadError as exc:
            return Observation(None, 0, str(exc))

    def close(self) -> None:
        self.session.close()


class AmqpSource:
    """Ready messages by passive declare: no unacked count, so the 1 -> 0 guard needs http."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: pika.BlockingConnection | None = None

    def read(self, trigger: Trigger) -> Observation:
        try:
            if self._connection is None or self._connection.is_closed:
                self._connection = pika.BlockingConnection(pika.URLParameters(self.url))
            channel = self._connection.channel()
            ok = channel.queue_declare(trigger.queue_name or "", passive=True)
            channel.close()
            return Observation(float(ok.method.message_count), 0)
        except Exception as exc:  # a missing queue closes the channel; any error is a failed reading
            if self._connection is not None and self._connection.is_closed:
                self._connection = None  # reconnect on the next reading
            return Observation(None, 0, f"amqp: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()


def make_source(trigger: Trigger) -> ManagementApiSource | AmqpSource:
    return ManagementApiSource(trigger.host) if trigger.protocol == "http" else AmqpSource(trigger.host)
