"""The envelope every message travels in, and its AMQP properties.

Body: `{"type", "version", "id", "occurred_at", "data"}` as UTF-8 JSON.
Properties: message_id (= id), type, content_type, timestamp (s), delivery_mode=2,
correlation_id, and header `x-enqueued-at-ms`, the start of time-on-queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pika

from offload_core.contracts import ContractError, Contracts, default_contracts
from offload_core.headers import ENQUEUED_AT_HEADER
from offload_core.ids import random_uuid

CONTENT_TYPE = "application/json"
# Bodies above this are refused on publish and parked on consume: a message is a fact,
# not a payload store.
MAX_BODY_BYTES = 256 * 1024


def derived_id(message_type: str, source_id: str) -> str:
    """The id of a message that follows from another (a signup's `signup.accepted`, a
    mailer's `mail.sent`): the same source gives the same id, so a repeat is de-duplicated
    downstream like the first."""
    return f"{message_type}-{source_id}"


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Envelope:
    type: str
    data: dict[str, Any]
    version: int = 1
    id: str = field(default_factory=lambda: str(random_uuid()))
    occurred_at: str = field(default_factory=utc_now_iso)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "version": self.version,
            "id": self.id,
            "occurred_at": self.occurred_at,
            "data": self.data,
        }

    def to_bytes(self) -> bytes:
        # orjson: a tenth of the stdlib's time, which counts for batched analytics events
        # (hundreds of requests per message). Compact UTF-8 either way.
        try:
            return orjson.dumps(self.to_dict())
        except orjson.JSONEncodeError as exc:  # lone surrogates, ints over 64 bits, non-str keys
            raise ValueError(f"{self.type} cannot be encoded as JSON: {exc}") from None

    def properties(
        self, *, correlation_id: str | None = None, headers: dict[str, Any] | None = None
    ) -> pika.BasicProperties:
        now = time.time()
        all_headers = {ENQUEUED_AT_HEADER: int(now * 1000)}
        if headers:
            all_headers.update(headers)
        return pika.BasicProperties(
            content_type=CONTENT_TYPE,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=self.id,
            type=self.type,
            timestamp=int(now),
            correlation_id=correlation_id,
            headers=all_headers,
        )


def decode(body: bytes, properties: pika.BasicProperties, contracts: Contracts | None = None) -> Envelope:
    """Parse and validate a delivered body; ContractError says why it is unusable."""
    contracts = contracts or default_contracts()
    if len(body) > MAX_BODY_BYTES:
        raise ContractError(f"body is {len(body)} bytes, over the {MAX_BODY_BYTES} byte limit")
    if properties.content_type not in (None, CONTENT_TYPE):
        raise ContractError(f"content_type {properties.content_type!r} is not {CONTENT_TYPE}")
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # invalid UTF-8 included
        raise ContractError(f"body is not JSON: {exc}") from None
    contracts.check_envelope(raw)
    if properties.type and properties.type != raw["type"]:
        raise ContractError(f"property type {properties.type!r} differs from body type {raw['type']!r}")
    if properties.message_id and properties.message_id != raw["id"]:
        raise ContractError(f"message_id {properties.message_id!r} differs from body id {raw['id']!r}")
    return Envelope(
        type=raw["type"],
        version=raw["version"],
        id=raw["id"],
        occurred_at=raw["occurred_at"],
        data=raw["data"],
    )
