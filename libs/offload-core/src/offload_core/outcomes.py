"""The runner's one observer: what happens to a message on its way through the runner
becomes metrics, trace spans and log lines here, and only here.

The runner calls one hook per step (delivered, picked up, handled, settled, and the ways a
message leaves unhandled), as dramatiq's Prometheus middleware hangs off its worker's
before/after hooks; the runner itself touches no metric, span or message log line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import INVALID_SPAN, Span

from offload_core import metrics, tracing
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
    span: Span = INVALID_SPAN  # the message's CONSUMER span, ended here


def declare_series(queue: str, lanes: list[str]) -> None:
    """A labelled series that first appears already at N hides its first N events from
    rate() and increase(): every series a runner can produce starts at 0, up front."""
    for lane in lanes:
        metrics.TIME_ON_QUEUE.labels(queue, lane)
    metrics.HANDLER_DURATION.labels(queue)
    metrics.IN_FLIGHT.labels(queue)
    for outcome in Outcome:
        metrics.MESSAGES.labels(queue, outcome.value)


def delivered(queue: str) -> None:
    metrics.IN_FLIGHT.labels(queue).inc()


def released(queue: str) -> None:
    """Acked or given back: no longer in flight."""
    metrics.IN_FLIGHT.labels(queue).dec()


def picked_up(
    queue: str, lane: str, headers: Mapping[str, Any], message_id: str | None, time_on_queue: float | None
) -> Span:
    """A worker took the message up: its time on queue, and its CONSUMER span (returned)."""
    if time_on_queue is not None:
        metrics.TIME_ON_QUEUE.labels(queue, lane).observe(time_on_queue)
    return tracing.start_consumer(queue, headers, message_id, time_on_queue)


def handler_span(queue: str, spans: list[Span], *, batched: bool) -> contextlib.AbstractContextManager[Any]:
    """A handler of one message runs in its CONSUMER span; a batch handler in a span of
    its own linked to each of them."""
    return tracing.batch_span(queue, spans) if batched else tracing.within(spans[0])


def handler_failed(queue: str, message_ids: list[str]) -> None:
    """An exception other than Retry or Park (called from its except block)."""
    log.exception("handler failed", extra={"fields": {"message_ids": message_ids[:10], "queue": queue}})


def handled(queue: str, duration: float) -> None:
    metrics.HANDLER_DURATION.labels(queue).observe(duration)


def abandoned_by_worker(span: Span) -> None:
    """The worker finished after the watchdog had settled its message."""
    tracing.end(span, outcome="abandoned", error="hard time limit exceeded")


def over_time_limit(queue: str, message_id: str | None, limit: float) -> None:
    metrics.RUNNER_ABANDONED.labels(queue).inc()
    log.error(
        "handler exceeded the hard time limit; settling its message without it",
        extra={"fields": {"queue": queue, "message_id": message_id, "limit_s": limit}},
    )


def not_moved(queue: str, error: Exception, span: Span) -> None:
    """The broker did not take the retry or park publish: the message goes back instead."""
    log.error(
        "could not move message, returning it to the queue",
        extra={"fields": {"queue": queue, "error": str(error)}},
    )
    tracing.end(span, outcome=Outcome.REQUEUED.value, error=str(error))


def settled(event: Settled) -> None:
    """A message's end on this runner: its count, its log line (carrying its trace id),
    and the end of its span."""
    with tracing.within(event.span):
        _count_and_log(event)
    tracing.end(event.span, outcome=event.verdict.outcome.value, error=event.verdict.reason)


def _count_and_log(event: Settled) -> None:
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
