"""The runner's one observer: every settled message becomes a metric and a log line."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from offload_core import metrics
from offload_core.settlement import Outcome, Verdict

log = logging.getLogger("offload.runner")


@dataclass(slots=True)  # one per message: slots, and no frozen-init cost
class Settled:
    """One message's end on this runner, with what a reader of the log needs to follow it."""

    queue: str
    verdict: Verdict
    message_id: str | None
    correlation_id: str | None
    message_type: str | None
    attempt: int
    time_on_queue: float | None  # seconds; None when the publisher did not stamp it
    duration: float  # seconds in the handler (or until the hard time limit)


def declare_series(queue: str, lanes: list[str]) -> None:
    """A labelled series that first appears already at N hides its first N events from
    rate() and increase(): every series a runner can produce starts at 0, up front."""
    for lane in lanes:
        metrics.TIME_ON_QUEUE.labels(queue, lane)
    metrics.HANDLER_DURATION.labels(queue)
    metrics.IN_FLIGHT.labels(queue)
    for outcome in Outcome:
        metrics.MESSAGES.labels(queue, outcome.value)


def picked_up(queue: str, lane: str, time_on_queue: float | None) -> None:
    if time_on_queue is not None:
        metrics.TIME_ON_QUEUE.labels(queue, lane).observe(time_on_queue)


def settled(event: Settled) -> None:
    outcome = event.verdict.outcome
    metrics.MESSAGES.labels(event.queue, outcome.value).inc()
    level = logging.INFO if outcome is Outcome.ACKED else logging.WARNING
    if outcome is Outcome.REQUEUED or not log.isEnabledFor(level):
        return  # given back unprocessed (its reason was logged where it happened), or not logged
    fields: dict[str, object] = {
        "outcome": outcome.value,
        "queue": event.queue,
        "message_id": event.message_id,
        "correlation_id": event.correlation_id,
        "type": event.message_type,
        "attempt": event.attempt,
        "time_on_queue_ms": None if event.time_on_queue is None else round(event.time_on_queue * 1000, 1),
        "duration_ms": round(event.duration * 1000, 1),
    }
    if event.verdict.reason:
        fields["reason"] = event.verdict.reason
    log.log(level, "message %s", outcome.value, extra={"fields": fields})
