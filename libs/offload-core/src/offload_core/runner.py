"""Consumer runner: the one consume loop every queue runner uses.

Three parts, each in its own module: a session per broker connection (`session`), a pool
of worker threads (`workers`), and the settlement rules (`settlement`): return to ack,
raise Retry to go through the delay tiers, raise Park to park; anything else retries
until max_attempts. This module joins them. pika's I/O loop runs on the calling thread
and only moves bytes; handlers run on the pool and hand their ack back with one
threadsafe callback, so a slow handler never starves heartbeats.

A delivery belongs to the session it came on. When that session ends, the broker puts
its unacked deliveries back, so they are neither acked nor started here any more.

SIGTERM / SIGINT (pika's asynchronous consumer example): cancel the consumers, give back
what was delivered but not started, let running handlers finish within the grace period
and ack, close, exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pika
from opentelemetry.trace import INVALID_SPAN, Span
from pika.adapters.select_connection import IOLoop
from pika.channel import Channel

from offload_core import outcomes
from offload_core.brokers import BrokerNodes
from offload_core.coalescer import Handoff
from offload_core.config import CoreConfig
from offload_core.contracts import ContractError, Contracts, default_contracts
from offload_core.envelope import Envelope, decode
from offload_core.headers import ENQUEUED_AT_HEADER, LANE_HEADER
from offload_core.publisher import Publisher, PublishError
from offload_core.session import AmqpSession, SessionKeeper, SessionOwner, SessionSetup
from offload_core.settlement import (
    Outcome,
    Park,
    Retry,
    Verdict,
    attempt_of,
    message_verdict,
    move_for,
    settle,
    verdict_of,
)
from offload_core.topology import Topology, routing_key
from offload_core.workers import WorkerPool

__all__ = ["BatchHandler", "Handler", "Message", "Park", "Retry", "Runner", "hold_stop_signals"]

log = logging.getLogger("offload.runner")


@dataclass(frozen=True)
class Message:
    """What a handler sees: the validated envelope and where it came from."""

    envelope: Envelope
    queue: str
    lane: str
    attempt: int
    max_attempts: int
    redelivered: bool
    correlation_id: str | None
    headers: Mapping[str, Any]

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope.data

    @property
    def is_last_attempt(self) -> bool:
        """A Retry raised now parks the message instead (settlement.settle)."""
        return self.attempt >= self.max_attempts


Handler = Callable[[Message], None]
# Gets every message of one queue taken in one go (up to batch_size); its outcome
# (return, Retry, Park, exception) applies to each of them, except the messages it
# returns (id → reason): those are parked one by one, so one message it cannot use does
# not park its neighbours.
BatchHandler = Callable[[list[Message]], Mapping[str, str] | None]


@dataclass(eq=False)
class _Consuming:
    """One consuming session: its consumer tags (tag -> queue) and how many of its
    deliveries are not yet acked or nacked (I/O thread). A new one per session, so what a
    lost session held ends with it."""

    session: AmqpSession
    consumer_tags: dict[str, str] = field(default_factory=dict)
    unsettled: int = 0


@dataclass(eq=False)
class _Delivery:
    consuming: _Consuming  # the session it came on
    delivery_tag: int
    queue: str
    body: bytes
    properties: pika.BasicProperties
    redelivered: bool
    _claimed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self) -> bool:
        """The first caller (worker or time-limit watchdog) decides the outcome."""
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})


@dataclass(slots=True)  # one per message: slots, and no frozen-init cost
class _Taken:
    """A delivery as a worker took it up: its attempt, its time on queue, and its message
    (None, with the reason in `invalid`, when it broke its contract)."""

    delivery: _Delivery
    attempt: int
    time_on_queue: float | None
    message: Message | None
    invalid: str = ""
    span: Span = INVALID_SPAN  # its CONSUMER span (tracing), ended when it is settled


@dataclass(frozen=True)
class _Route:
    handler: BatchHandler
    batched: bool


_STOP_BEFORE_RUN = threading.Event()


def hold_stop_signals() -> None:
    """Call first in a runner's main. A SIGTERM or SIGINT that arrives while the process
    connects and opens its stores is remembered instead of killing it; `Runner.run` then
    returns 0 at once, having consumed nothing. (A scale-down often hits a runner that is
    still starting; the default action would end it with status -15 instead of 0.)"""
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: _STOP_BEFORE_RUN.set())


class Runner:
    def __init__(
        self,
        config: CoreConfig,
        topology: Topology,
        handlers: Mapping[str, Handler] | None = None,
        *,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        batch_size: int = 1,
        batch_wait: float = 0.05,
        publisher: Publisher | None = None,
        contracts: Contracts | None = None,
    ) -> None:
        routes = {queue: _Route(_one_at_a_time(h), batched=False) for queue, h in (handlers or {}).items()}
        routes.update({queue: _Route(h, batched=True) for queue, h in (batch_handlers or {}).items()})
        if not routes:
            raise ValueError("a runner needs at least one handler")
        for queue in routes:
            topology.queue(queue)  # fail at start on a queue the topology does not know
        self.config = config
        self.topology = topology
        self.contracts = contracts or default_contracts()
        self.publisher = publisher or Publisher(config, topology=None, name="runner-publisher")
        self._routes = routes
        self._own_publisher = publisher is None
        self._ioloop = IOLoop()
        self._keeper = SessionKeeper(
            self._ioloop,
            BrokerNodes(
                config.amqp_url, connection_name=f"{config.service_name}:runner", heartbeat=config.heartbeat
            ),
            SessionSetup(prefetch=config.prefetch, topology=config.topology_to_declare(topology)),
            SessionOwner(
                "runner", on_ready=self._start_consuming, on_lost=self._on_lost, on_stopped=self._ioloop.stop
            ),
            max_delay=config.reconnect_max_delay,
        )
        self._pool: WorkerPool[_Delivery] = WorkerPool(
            self._work,
            threads=config.worker_threads,
            batch_size=batch_size if any(r.batched for r in routes.values()) else 1,
            batch_wait=batch_wait,
            name="offload-runner-worker",
        )
        self._settlements: Handoff[tuple[_Delivery, bool]] = Handoff(self._ioloop, self._settle_on_io)
        self._consuming: _Consuming | None = None  # the live session's; None between sessions
        self._stop_by: float | None = None  # once stopping: when the grace period ends

    # -- public --------------------------------------------------------------------

    @property
    def queues(self) -> list[str]:
        return sorted(self._routes)

    @property
    def ready(self) -> bool:
        return self._consuming is not None and self.publisher.ready

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Consume until stopped; returns the process exit code."""
        if install_signal_handlers:
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
            signal.signal(signal.SIGINT, lambda *_: self.stop())
            if _STOP_BEFORE_RUN.is_set():
                log.info("stop requested while starting: exiting without consuming")
                if self._own_publisher:
                    self.publisher.close(timeout=2.0)
                return 0
        self._declare_series()
        self.publisher.start()
        self._pool.start()
        self._keeper.open()
        self._ioloop.call_later(1.0, self._check_time_limits)
        fields = {
            "queues": self.queues,
            "prefetch": self.config.prefetch,
            "worker_threads": self.config.worker_threads,
        }
        log.info("runner starting", extra={"fields": fields})
        self._ioloop.start()
        self._pool.stop()
        if self._own_publisher:
            self.publisher.close(timeout=2.0)
        log.info("runner stopped")
        return 0

    def stop(self) -> None:
        """Begin a graceful stop; safe from any thread and from signal handlers."""
        self._ioloop.add_callback_threadsafe(self._begin_shutdown)

    def _declare_series(self) -> None:
        keys = [
            (routing_key(name, lane), lane)
            for name, version in self.contracts.known()
            for lane in self.contracts.get(name, version).lanes
        ]
        for queue in self.queues:
            outcomes.declare_series(queue, self.topology.lanes_into(queue, keys))

    # -- the session (I/O thread) -------------------------------------------------------

    @property
    def _live(self) -> _Consuming | None:
        """The consuming session if it is still usable: what deliveries belong to."""
        consuming = self._consuming
        return consuming if consuming is not None and consuming.session is self._keeper.live else None

    def _start_consuming(self, session: AmqpSession) -> None:
        assert session.channel is not None
        if self._stop_by is not None:
            self._keeper.stop()
            return
        consuming = _Consuming(session)
        for queue in self.queues:
            consuming.consumer_tags[session.channel.basic_consume(queue, self._on_message)] = queue
        self._consuming = consuming
        log.info("consuming", extra={"fields": {"queues": self.queues, "broker": session.broker}})

    def _on_lost(self, _session: AmqpSession, _reason: Exception) -> None:
        # The broker puts the lost session's unacked deliveries back on their queues.
        self._consuming = None

    def _on_message(
        self, _channel: Channel, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        consuming = self._consuming
        assert consuming is not None
        queue = consuming.consumer_tags.get(method.consumer_tag, "?")
        consuming.unsettled += 1
        outcomes.delivered(queue)
        self._pool.submit(
            _Delivery(consuming, method.delivery_tag, queue, body, properties, method.redelivered)
        )

    def _settle(self, delivery: _Delivery, *, ack: bool) -> None:
        """From any thread: ack or give back `delivery` on the I/O thread."""
        outcomes.released(delivery.queue)
        self._settlements.put((delivery, ack))

    def _settle_on_io(self, settlement: tuple[_Delivery, bool]) -> None:
        delivery, ack = settlement
        consuming = delivery.consuming
        if consuming is not self._live:
            return  # its session is gone; the broker has already put it back
        channel = consuming.session.channel
        assert channel is not None
        consuming.unsettled -= 1
        if ack:
            channel.basic_ack(delivery.delivery_tag)
        else:
            channel.basic_nack(delivery.delivery_tag, requeue=True)

    # -- shutdown (I/O thread) ---------------------------------------------------------

    def _begin_shutdown(self) -> None:
        if self._stop_by is not None:
            return
        self._stop_by = time.monotonic() + self.config.grace_period
        log.info(
            "stop requested: cancelling consumers, finishing in-flight work",
            extra={"fields": {"grace_period_s": self.config.grace_period}},
        )
        consuming = self._live
        if consuming is not None and consuming.session.channel is not None:
            for tag in list(consuming.consumer_tags):
                consuming.session.channel.basic_cancel(tag)
        self._check_drained()

    def _check_drained(self) -> None:
        consuming = self._live
        if consuming is not None and consuming.unsettled > 0:
            assert self._stop_by is not None
            if time.monotonic() < self._stop_by:
                self._ioloop.call_later(0.05, self._check_drained)
                return
            log.warning(
                "grace period over: unfinished messages go back to the queue",
                extra={"fields": {"unsettled": consuming.unsettled}},
            )
        self._keeper.stop()

    # -- workers -----------------------------------------------------------------------

    def _work(self, batch: list[_Delivery]) -> None:
        by_queue: dict[str, list[_Delivery]] = {}
        live = None if self._stop_by is not None else self._live
        for delivery in batch:
            if delivery.consuming is not live:
                # Delivered but not started: give it back for another runner.
                if delivery.claim():
                    self._give_back(delivery)
                continue
            by_queue.setdefault(delivery.queue, []).append(delivery)
        for queue, deliveries in by_queue.items():
            route = self._routes[queue]
            if route.batched:
                self._process(deliveries, route)
            else:
                for delivery in deliveries:
                    self._process([delivery], route)

    def _take(self, delivery: _Delivery) -> _Taken:
        headers = delivery.headers
        lane = str(headers.get(LANE_HEADER, "normal"))
        enqueued_ms = headers.get(ENQUEUED_AT_HEADER)
        time_on_queue = max(0.0, time.time() - enqueued_ms / 1000) if isinstance(enqueued_ms, int) else None
        span = outcomes.picked_up(
            delivery.queue, lane, headers, delivery.properties.message_id, time_on_queue
        )
        attempt = attempt_of(headers)
        try:
            envelope = decode(delivery.body, delivery.properties, self.contracts)
        except ContractError as exc:
            return _Taken(delivery, attempt, time_on_queue, None, f"invalid message: {exc.reason}", span)
        message = Message(
            envelope,
            delivery.queue,
            lane,
            attempt,
            self.config.max_attempts,
            delivery.redelivered,
            delivery.properties.correlation_id,
            headers,
        )
        return _Taken(delivery, attempt, time_on_queue, message, span=span)

    def _process(self, deliveries: list[_Delivery], route: _Route) -> None:
        started = time.monotonic()
        taken = [self._take(delivery) for delivery in deliveries]
        messages = [t.message for t in taken if t.message is not None]
        error: Exception | None = None
        singled_out: Mapping[str, str] = {}
        try:
            if messages:
                spans = [t.span for t in taken]
                with outcomes.handler_span(deliveries[0].queue, spans, batched=route.batched):
                    singled_out = route.handler(messages) or {}
        except Exception as exc:
            error = exc
            if not isinstance(exc, Retry | Park):
                outcomes.handler_failed(deliveries[0].queue, [m.id for m in messages])
        duration = time.monotonic() - started
        outcomes.handled(deliveries[0].queue, duration)
        batch_verdict = verdict_of(error)
        for t in taken:
            if not t.delivery.claim():
                outcomes.abandoned_by_worker(t.span)
                continue  # the watchdog settled it when the hard time limit passed
            message_id = None if t.message is None else t.message.id
            verdict = message_verdict(
                batch_verdict, invalid=t.invalid, singled_out=singled_out, message_id=message_id
            )
            self._carry_out(t, settle(verdict, t.attempt, self.config.max_attempts), duration)

    def _carry_out(self, taken: _Taken, verdict: Verdict, duration: float) -> None:
        """Publish the retry or park the verdict asks for, then ack; if the broker does not
        take that publish, give the delivery back instead of losing it."""
        delivery = taken.delivery
        headers = delivery.properties.headers or {}
        move = move_for(
            verdict, queue=delivery.queue, headers=headers, topology=self.topology, now=time.time()
        )
        if move is not None:
            try:
                properties = _persistent_copy(delivery.properties, move.headers)
                self.publisher.publish_raw(move.exchange, move.routing_key, delivery.body, properties)
            except PublishError as exc:
                outcomes.not_moved(delivery.queue, exc, taken.span)
                self._give_back(delivery)
                return
        self._settle(delivery, ack=True)
        self._report(taken, verdict, duration)

    def _give_back(self, delivery: _Delivery) -> None:
        self._settle(delivery, ack=False)
        self._report(
            _Taken(delivery, attempt_of(delivery.headers), None, None), Verdict(Outcome.REQUEUED), 0.0
        )

    def _report(self, taken: _Taken, verdict: Verdict, duration: float) -> None:
        p = taken.delivery.properties
        outcomes.settled(
            outcomes.Settled(
                queue=taken.delivery.queue,
                verdict=verdict,
                message_id=p.message_id,
                correlation_id=p.correlation_id,
                message_type=p.type,
                attempt=taken.attempt,
                time_on_queue=taken.time_on_queue,
                duration=duration,
                span=taken.span,
            )
        )

    # -- hard time limit (I/O thread) ----------------------------------------------------

    def _check_time_limits(self) -> None:
        now = time.monotonic()
        limit = self.config.hard_time_limit
        for overdue in self._pool.take_overdue(limit, now):
            for delivery in overdue.items:
                if not delivery.claim():
                    continue
                outcomes.over_time_limit(delivery.queue, delivery.properties.message_id, limit)
                taken = _Taken(delivery, attempt_of(delivery.headers), None, None)
                verdict = settle(
                    Verdict(Outcome.RETRIED, f"hard time limit of {limit:g}s exceeded"),
                    taken.attempt,
                    self.config.max_attempts,
                )
                # Off the I/O thread: carrying out waits for the publisher's confirm.
                threading.Thread(
                    target=self._carry_out, args=(taken, verdict, now - overdue.started), daemon=True
                ).start()
        self._ioloop.call_later(min(1.0, limit / 4), self._check_time_limits)


def _one_at_a_time(handler: Handler) -> BatchHandler:
    def batch_of_one(messages: list[Message]) -> None:
        handler(messages[0])

    return batch_of_one


def _persistent_copy(properties: pika.BasicProperties, headers: dict[str, Any]) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=properties.content_type,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=properties.message_id,
        type=properties.type,
        timestamp=properties.timestamp,
        correlation_id=properties.correlation_id,
        headers=headers,
    )
