"""What becomes of a delivered message, as pure functions of what its handler did.

    handler returned          -> acked
    raised Retry(reason)      -> retried: republished to the next delay tier, then acked
    raised Park(reason)       -> parked: published to offload.dead with the reason, then acked
    raised anything else      -> retried, like Retry
    retried at max_attempts   -> parked, "gave up after N attempts: ..."
    broke its contract        -> invalid: parked at once

This is dramatiq's Retries middleware reduced to a function (dramatiq/middleware/retries.py
decides retry-or-dead from the attempt count and the exception); the runner carries the
decision out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from offload_core.headers import (
    ATTEMPT_HEADER,
    DEATH_HEADER,
    ENQUEUED_AT_HEADER,
    LAST_ERROR_HEADER,
    PARK_REASON_HEADER,
    PARKED_AT_HEADER,
    PARKED_FROM_HEADER,
)
from offload_core.topology import DEAD_EXCHANGE, RETRY_EXCHANGE, Topology, delay_queue_name


class Retry(Exception):
    """Raise from a handler: this may work later; go through the delay tiers."""


class Park(Exception):
    """Raise from a handler: this will never work; park the message with the reason."""


class Outcome(enum.Enum):
    ACKED = "acked"
    RETRIED = "retried"
    PARKED = "parked"
    INVALID = "invalid"
    # Given back to its queue unprocessed (stopping, or its move could not be published).
    REQUEUED = "requeued"


@dataclass(frozen=True)
class Verdict:
    """What happens to one message, and why."""

    outcome: Outcome
    reason: str = ""


ACKED = Verdict(Outcome.ACKED)


def verdict_of(error: BaseException | None) -> Verdict:
    """The verdict a handler gave by how it ended."""
    if error is None:
        return ACKED
    if isinstance(error, Park):
        return Verdict(Outcome.PARKED, str(error) or "parked by handler")
    if isinstance(error, Retry):
        return Verdict(Outcome.RETRIED, str(error) or "retry requested by handler")
    return Verdict(Outcome.RETRIED, f"{type(error).__name__}: {error}")


def message_verdict(
    batch: Verdict, *, invalid: str, singled_out: Mapping[str, str], message_id: str | None
) -> Verdict:
    """One message's verdict in a batch: invalid is invalid whatever the handler did; a
    message the handler singled out of a batch it otherwise took is parked alone."""
    if invalid:
        return Verdict(Outcome.INVALID, invalid)
    if batch.outcome is Outcome.ACKED and message_id is not None and message_id in singled_out:
        return Verdict(Outcome.PARKED, singled_out[message_id])
    return batch


def settle(verdict: Verdict, attempt: int, max_attempts: int) -> Verdict:
    """The final verdict: a retry at the last attempt becomes a park."""
    if verdict.outcome is Outcome.RETRIED and attempt >= max_attempts:
        return Verdict(Outcome.PARKED, f"gave up after {attempt} attempts: {verdict.reason}")
    return verdict


def attempt_of(headers: Mapping[str, Any]) -> int:
    """The delivery's attempt number (1 for a first delivery or a header that makes no sense)."""
    attempt = headers.get(ATTEMPT_HEADER, 1)
    return attempt if isinstance(attempt, int) and attempt >= 1 else 1


@dataclass(frozen=True)
class Move:
    """Where a retried or parked message is published before its delivery is acked."""

    exchange: str
    routing_key: str
    headers: dict[str, Any]


def move_for(
    verdict: Verdict,
    *,
    queue: str,
    headers: Mapping[str, Any],
    topology: Topology,
    now: float,
) -> Move | None:
    """The publish that carries out `verdict` (None for an ack). `now` is wall-clock seconds."""
    if verdict.outcome is Outcome.ACKED or verdict.outcome is Outcome.REQUEUED:
        return None  # the common case first, without copying the headers
    moved = dict(headers)
    if verdict.outcome is Outcome.RETRIED:
        attempt = attempt_of(headers)
        delay = topology.delay_for_attempt(attempt)
        moved.pop(DEATH_HEADER, None)
        moved[ATTEMPT_HEADER] = attempt + 1
        moved[LAST_ERROR_HEADER] = verdict.reason[:500]
        # Time on queue counts from when the message is due again, not from the chosen delay.
        moved[ENQUEUED_AT_HEADER] = int((now + delay) * 1000)
        return Move(RETRY_EXCHANGE, delay_queue_name(queue, delay), moved)
    if verdict.outcome in (Outcome.PARKED, Outcome.INVALID):
        moved[PARK_REASON_HEADER] = verdict.reason[:1000]
        moved[PARKED_FROM_HEADER] = queue
        moved[PARKED_AT_HEADER] = int(now * 1000)
        return Move(DEAD_EXCHANGE, queue, moved)
    return None
