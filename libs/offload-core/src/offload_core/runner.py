"""Consumer runner: the one consume loop every queue runner uses.

pika's I/O loop runs on the calling thread and only moves bytes; handlers run on a
pool of worker threads and hand their ack back with `add_callback_threadsafe`, so a
slow handler never starves heartbeats. A handler settles a message by how it returns:

    return normally       -> ack
    raise Retry(reason)   -> publish to the next delay tier (confirmed), then ack
    raise Park(reason)    -> publish to offload.dead with the reason (confirmed), then ack
    any other exception   -> Retry, until max_attempts, then Park

Messages that fail their contract are parked at once ("invalid"). If the runner dies
mid-message, the broker redelivers; the quorum queue's delivery limit parks a message
that keeps killing runners.

SIGTERM / SIGINT (pika's asynchronous consumer example): cancel the consumers, give
back what was delivered but not started, let running handlers finish within the grace
period and ack, close, exit 0.
"""

from __future__ import annotations

import collections
import logging
import queue as queue_module
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.channel import Channel

from offload_core import metrics
from offload_core.backoff import reconnect_delay, worth_logging
from offload_core.brokers import BrokerNodes
from offload_core.config import CoreConfig
from offload_core.contracts import ContractError, Contracts, default_contracts
from offload_core.envelope import (
    ATTEMPT_HEADER,
    ENQUEUED_AT_HEADER,
    PARK_REASON_HEADER,
    PARKED_FROM_HEADER,
    Envelope,
    decode,
)
from offload_core.publisher import LANE_HEADER, Publisher, PublishError
from offload_core.topology import DEAD_EXCHANGE, RETRY_EXCHANGE, Topology, delay_queue_name, routing_key

log = logging.getLogger("offload.runner")


class Retry(Exception):
    """Raise from a handler: this may work later; go through the delay tiers."""


class Park(Exception):
    """Raise from a handler: this will never work; park the message with the reason."""


@dataclass(frozen=True)
class Message:
    """What a handler sees: the validated envelope and where it came from."""

    envelope: Envelope
    queue: str
    lane: str
    attempt: int
    redelivered: bool
    correlation_id: str | None
    headers: Mapping[str, Any]

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope.data


Handler = Callable[[Message], None]
# Gets every message of one queue taken in one go (up to batch_size); its outcome
# (return, Retry, Park, exception) applies to each of them.
# A batch handler settles the whole batch, except the messages it returns (id → reason):
# those are parked one by one, so one message it cannot use does not park its neighbours.
BatchHandler = Callable[[list[Message]], Mapping[str, str] | None]


@dataclass(eq=False)
class _Delivery:
    generation: int
    delivery_tag: int
    queue: str
    body: bytes
    properties: pika.BasicProperties
    redelivered: bool
    started: float | None = None
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
        self.handlers = dict(handlers or {})
        self.batch_handlers = dict(batch_handlers or {})
        if not self.handlers and not self.batch_handlers:
            raise ValueError("a runner needs at least one handler")
        for queue in [*self.handlers, *self.batch_handlers]:
            topology.queue(queue)  # fail at start on a queue the topology does not know
        self.batch_size = batch_size if self.batch_handlers else 1
        self.batch_wait = batch_wait
        self.config = config
        self.topology = topology
        self.contracts = contracts or default_contracts()
        self._own_publisher = publisher is None
        self.publisher = publisher or Publisher(config, topology=None, name="runner-publisher")
        self._nodes = BrokerNodes(
            config.amqp_url, connection_name=f"{config.service_name}:runner", heartbeat=config.heartbeat
        )
        self._params = self._nodes.next_parameters()
        self._ioloop = IOLoop()
        self._connection: SelectConnection | None = None
        self._channel: Channel | None = None
        self._generation = 0
        self._consumer_tags: dict[str, str] = {}
        self._work: queue_module.SimpleQueue[_Delivery | None] = queue_module.SimpleQueue()
        # delivery -> (start time, ident of the worker thread running its handler)
        self._running: dict[_Delivery, tuple[float, int]] = {}
        self._running_lock = threading.Lock()
        self._unsettled = 0  # delivered and not yet acked/nacked; touched on the I/O thread only
        self._retired: set[int] = set()
        self._settlements: collections.deque[tuple[_Delivery, bool]] = collections.deque()
        self._settle_lock = threading.Lock()
        self._settle_scheduled = False
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self._deadline = 0.0
        self._attempt = 0
        self._consuming = threading.Event()

    # -- public --------------------------------------------------------------------

    @property
    def queues(self) -> list[str]:
        return sorted([*self.handlers, *self.batch_handlers])

    @property
    def ready(self) -> bool:
        return self._consuming.is_set() and self.publisher.ready

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
        self._create_metric_series()
        self.publisher.start()
        for _ in range(self.config.worker_threads):
            self._start_worker()
        self._connect()
        self._ioloop.call_later(1.0, self._check_time_limits)
        log.info(
            "runner starting",
            extra={
                "fields": {
                    "queues": self.queues,
                    "prefetch": self.config.prefetch,
                    "worker_threads": self.config.worker_threads,
                }
            },
        )
        self._ioloop.start()
        for _ in self._workers:
            self._work.put(None)
        for worker in self._workers:
            worker.join(timeout=0.5)
        if self._own_publisher:
            self.publisher.close(timeout=2.0)
        log.info("runner stopped")
        return 0

    def _create_metric_series(self) -> None:
        # A labelled series that first appears already at N hides its first N events from
        # rate()/increase(): create every series this runner can produce at 0, up front.
        keys = [
            (routing_key(name, lane), lane)
            for name, version in self.contracts.known()
            for lane in self.contracts.get(name, version).lanes
        ]
        for queue in self.queues:
            for lane in self.topology.lanes_into(queue, keys):
                metrics.TIME_ON_QUEUE.labels(queue, lane)
            metrics.HANDLER_DURATION.labels(queue)
            metrics.IN_FLIGHT.labels(queue)
            for outcome in metrics.OUTCOMES:
                metrics.MESSAGES.labels(queue, outcome)

    def stop(self) -> None:
        """Begin a graceful stop; safe from any thread and from signal handlers."""
        self._ioloop.add_callback_threadsafe(self._begin_shutdown)

    # -- connection (I/O thread) -----------------------------------------------------

    def _connect(self) -> None:
        if self._stopping:
            self._ioloop.stop()
            return
        self._params = self._nodes.next_parameters()
        self._connection = SelectConnection(
            self._params,
            on_open_callback=lambda c: c.channel(on_open_callback=self._on_channel_open),
            on_open_error_callback=lambda _c, err: self._reconnect_later(
                err, "runner cannot reach the broker"
            ),
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self._ioloop,
        )

    def _on_channel_open(self, channel: Channel) -> None:
        self._generation += 1
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.basic_qos(
            prefetch_count=self.config.prefetch,
            callback=lambda _f: self.topology.declare_async(channel, self._start_consuming),
        )

    def _start_consuming(self) -> None:
        assert self._channel is not None
        for queue in self.queues:
            tag = self._channel.basic_consume(queue, self._on_message)
            self._consumer_tags[tag] = queue
        self._attempt = 0
        self._consuming.set()
        log.info("consuming", extra={"fields": {"queues": self.queues, "broker": self._params.host}})

    def _on_channel_closed(self, _channel: Channel, reason: Exception) -> None:
        self._consuming.clear()
        self._channel = None
        if self._connection is not None and self._connection.is_open:
            if not self._stopping:
                log.error("runner channel closed", extra={"fields": {"reason": repr(reason)}})
            self._connection.close()

    def _on_connection_closed(self, _connection: SelectConnection, reason: Exception) -> None:
        self._consuming.clear()
        self._channel = None
        self._consumer_tags.clear()
        # Deliveries of the lost channel cannot be acked any more: the broker redelivers them.
        self._unsettled = 0
        if self._stopping:
            self._ioloop.stop()
            return
        self._reconnect_later(reason, "broker connection lost")

    def _reconnect_later(self, reason: Exception, what: str) -> None:
        if self._stopping:
            self._ioloop.stop()
            return
        self._attempt += 1
        delay = reconnect_delay(self._attempt, self.config.reconnect_max_delay)
        if worth_logging(self._attempt):
            log.warning(
                f"{what}, reconnecting",
                extra={
                    "fields": {
                        "reason": repr(reason),
                        "attempts": self._attempt,
                        "retry_in_s": round(delay, 2),
                    }
                },
            )
        self._ioloop.call_later(delay, self._connect)

    def _on_message(
        self, _channel: Channel, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        queue = self._consumer_tags.get(method.consumer_tag, "?")
        self._unsettled += 1
        metrics.IN_FLIGHT.labels(queue).inc()
        self._work.put(
            _Delivery(self._generation, method.delivery_tag, queue, body, properties, method.redelivered)
        )

    def _settle_on_io(self, delivery: _Delivery, ack: bool) -> None:
        if delivery.generation != self._generation or self._channel is None or not self._channel.is_open:
            return  # its channel is gone; the broker has already put it back
        self._unsettled -= 1
        if ack:
            self._channel.basic_ack(delivery.delivery_tag)
        else:
            self._channel.basic_nack(delivery.delivery_tag, requeue=True)

    def _settle(self, delivery: _Delivery, *, ack: bool) -> None:
        metrics.IN_FLIGHT.labels(delivery.queue).dec()
        self._settlements.append((delivery, ack))
        # One wake-up of the I/O loop carries every ack queued before it runs: a wake-up
        # per ack costs a pipe write and a loop turn each, and capped throughput.
        with self._settle_lock:
            if self._settle_scheduled:
                return
            self._settle_scheduled = True
        self._ioloop.add_callback_threadsafe(self._drain_settlements)

    def _drain_settlements(self) -> None:
        with self._settle_lock:
            self._settle_scheduled = False
        while self._settlements:
            delivery, ack = self._settlements.popleft()
            self._settle_on_io(delivery, ack)

    # -- shutdown (I/O thread) ---------------------------------------------------------

    def _begin_shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._deadline = time.monotonic() + self.config.grace_period
        log.info(
            "stop requested: cancelling consumers, finishing in-flight work",
            extra={"fields": {"grace_period_s": self.config.grace_period}},
        )
        if self._channel is not None and self._channel.is_open:
            for tag in list(self._consumer_tags):
                self._channel.basic_cancel(tag)
        self._check_drained()

    def _check_drained(self) -> None:
        connection = self._connection
        if connection is None or connection.is_closed:
            self._ioloop.stop()
            return
        if self._unsettled > 0 and time.monotonic() < self._deadline:
            self._ioloop.call_later(0.05, self._check_drained)
            return
        if self._unsettled > 0:
            log.warning(
                "grace period over: unfinished messages go back to the queue",
                extra={"fields": {"unsettled": self._unsettled}},
            )
        if not connection.is_closing:
            connection.close()

    # -- workers -----------------------------------------------------------------------

    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._work_loop, name="offload-runner-worker", daemon=True)
        self._workers.append(worker)
        worker.start()

    def _work_loop(self) -> None:
        while True:
            first = self._work.get()
            if first is None:
                return
            batch = [first]
            if self.batch_size > 1:
                # Batch handlers get what is already waiting, up to batch_size, for at most
                # batch_wait: one store transaction per batch instead of one per message.
                deadline = time.monotonic() + self.batch_wait
                while len(batch) < self.batch_size:
                    remaining = deadline - time.monotonic()
                    try:
                        item = (
                            self._work.get(timeout=max(remaining, 0))
                            if remaining > 0
                            else self._work.get_nowait()
                        )
                    except queue_module.Empty:
                        break
                    if item is None:
                        self._work.put(None)  # the stop sentinel is for this loop too, after the batch
                        break
                    batch.append(item)
            by_queue: dict[str, list[_Delivery]] = {}
            for delivery in batch:
                if self._stopping or delivery.generation != self._generation:
                    # Delivered but not started: give it back for another runner.
                    if delivery.claim():
                        metrics.MESSAGES.labels(delivery.queue, "requeued").inc()
                        self._settle(delivery, ack=False)
                    continue
                by_queue.setdefault(delivery.queue, []).append(delivery)
            for queue, deliveries in by_queue.items():
                if queue in self.batch_handlers:
                    self._process(deliveries, self.batch_handlers[queue])
                else:
                    handler = self.handlers[queue]
                    for delivery in deliveries:
                        self._process([delivery], lambda messages, h=handler: h(messages[0]))
            if threading.get_ident() in self._retired:
                return  # this thread outlived the hard time limit; a replacement took its place

    def _process(self, deliveries: list[_Delivery], handler: BatchHandler) -> None:
        started = time.monotonic()
        with self._running_lock:
            for delivery in deliveries:
                delivery.started = started
                self._running[delivery] = (started, threading.get_ident())
        queue = deliveries[0].queue
        # delivery, attempt, time on queue, why it is invalid ("" if valid), message id
        prepared: list[tuple[_Delivery, int, float | None, str, str]] = []
        messages: list[Message] = []
        for delivery in deliveries:
            headers = delivery.headers
            lane = str(headers.get(LANE_HEADER, "normal"))
            enqueued_ms = headers.get(ENQUEUED_AT_HEADER)
            time_on_queue = None
            if isinstance(enqueued_ms, int):
                time_on_queue = max(0.0, time.time() - enqueued_ms / 1000)
                metrics.TIME_ON_QUEUE.labels(queue, lane).observe(time_on_queue)
            attempt = headers.get(ATTEMPT_HEADER, 1)
            attempt = attempt if isinstance(attempt, int) and attempt >= 1 else 1
            try:
                envelope = decode(delivery.body, delivery.properties, self.contracts)
            except ContractError as exc:
                prepared.append((delivery, attempt, time_on_queue, f"invalid message: {exc.reason}", ""))
                continue
            prepared.append((delivery, attempt, time_on_queue, "", envelope.id))
            correlation_id = delivery.properties.correlation_id
            messages.append(
                Message(envelope, queue, lane, attempt, delivery.redelivered, correlation_id, headers)
            )
        outcome, reason = "acked", ""
        singled_out: Mapping[str, str] = {}
        try:
            if messages:
                singled_out = handler(messages) or {}
        except Park as exc:
            outcome, reason = "parked", str(exc) or "parked by handler"
        except Retry as exc:
            outcome, reason = "retried", str(exc) or "retry requested by handler"
        except Exception as exc:
            outcome, reason = "retried", f"{type(exc).__name__}: {exc}"
            ids = [m.id for m in messages][:10]
            log.exception("handler failed", extra={"fields": {"message_ids": ids, "queue": queue}})
        finally:
            with self._running_lock:
                for delivery in deliveries:
                    self._running.pop(delivery, None)
        duration = time.monotonic() - started
        metrics.HANDLER_DURATION.labels(queue).observe(duration)
        for delivery, attempt, time_on_queue, invalid, message_id in prepared:
            if not delivery.claim():
                continue  # the watchdog settled it when the hard time limit passed
            if invalid:
                self._finish(delivery, "invalid", invalid, attempt, time_on_queue, duration)
            elif outcome == "acked" and message_id in singled_out:
                park_reason = singled_out[message_id]
                self._finish(delivery, "parked", park_reason, attempt, time_on_queue, duration)
            else:
                self._finish(delivery, outcome, reason, attempt, time_on_queue, duration)

    def _finish(
        self,
        delivery: _Delivery,
        outcome: str,
        reason: str,
        attempt: int,
        time_on_queue: float | None,
        duration: float,
    ) -> None:
        if outcome == "retried" and attempt >= self.config.max_attempts:
            outcome, reason = "parked", f"gave up after {attempt} attempts: {reason}"
        try:
            if outcome == "retried":
                self._republish_for_retry(delivery, attempt, reason)
            elif outcome in ("parked", "invalid"):
                self._park(delivery, reason)
        except PublishError as exc:
            # Could not move it: put it back on its queue instead of losing it.
            log.error(
                "could not move message, returning it to the queue",
                extra={"fields": {"queue": delivery.queue, "error": str(exc)}},
            )
            metrics.MESSAGES.labels(delivery.queue, "requeued").inc()
            self._settle(delivery, ack=False)
            return
        metrics.MESSAGES.labels(delivery.queue, outcome).inc()
        self._settle(delivery, ack=True)
        fields = {
            "outcome": outcome,
            "queue": delivery.queue,
            "message_id": delivery.properties.message_id,
            "correlation_id": delivery.properties.correlation_id,
            "type": delivery.properties.type,
            "attempt": attempt,
            "time_on_queue_ms": None if time_on_queue is None else round(time_on_queue * 1000, 1),
            "duration_ms": round(duration * 1000, 1),
        }
        if reason:
            fields["reason"] = reason
        log.log(
            logging.INFO if outcome == "acked" else logging.WARNING,
            "message %s",
            outcome,
            extra={"fields": fields},
        )

    def _copy_properties(self, delivery: _Delivery, headers: dict[str, Any]) -> pika.BasicProperties:
        p = delivery.properties
        return pika.BasicProperties(
            content_type=p.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=p.message_id,
            type=p.type,
            timestamp=p.timestamp,
            correlation_id=p.correlation_id,
            headers=headers,
        )

    def _republish_for_retry(self, delivery: _Delivery, attempt: int, reason: str) -> None:
        delay = self.topology.delay_for_attempt(attempt)
        headers = delivery.headers
        headers.pop("x-death", None)
        headers[ATTEMPT_HEADER] = attempt + 1
        headers["x-offload-last-error"] = reason[:500]
        # Time-on-queue counts from when the message is due again, not the chosen delay.
        headers[ENQUEUED_AT_HEADER] = int((time.time() + delay) * 1000)
        target = delay_queue_name(delivery.queue, delay)
        self.publisher.publish_raw(
            RETRY_EXCHANGE, target, delivery.body, self._copy_properties(delivery, headers)
        )

    def _park(self, delivery: _Delivery, reason: str) -> None:
        headers = delivery.headers
        headers[PARK_REASON_HEADER] = reason[:1000]
        headers[PARKED_FROM_HEADER] = delivery.queue
        headers["x-offload-parked-at-ms"] = int(time.time() * 1000)
        self.publisher.publish_raw(
            DEAD_EXCHANGE, delivery.queue, delivery.body, self._copy_properties(delivery, headers)
        )

    # -- hard time limit (I/O thread) ----------------------------------------------------

    def _check_time_limits(self) -> None:
        now = time.monotonic()
        limit = self.config.hard_time_limit
        with self._running_lock:
            overdue = [(d, t, ident) for d, (t, ident) in self._running.items() if now - t > limit]
        for delivery, started, ident in overdue:
            if not delivery.claim():
                continue
            with self._running_lock:
                self._running.pop(delivery, None)
            metrics.RUNNER_ABANDONED.labels(delivery.queue).inc()
            log.error(
                "handler exceeded the hard time limit; settling its message without it",
                extra={
                    "fields": {
                        "queue": delivery.queue,
                        "message_id": delivery.properties.message_id,
                        "limit_s": limit,
                    }
                },
            )
            # Python cannot kill a thread: retire the stuck one and keep capacity with a new worker
            # (once per thread, though a stuck batch holds several messages).
            if ident not in self._retired:
                self._retired.add(ident)
                self._start_worker()
            attempt = delivery.headers.get(ATTEMPT_HEADER, 1)
            threading.Thread(
                target=self._finish,
                args=(
                    delivery,
                    "retried",
                    f"hard time limit of {limit:g}s exceeded",
                    attempt if isinstance(attempt, int) else 1,
                    None,
                    now - started,
                ),
                daemon=True,
            ).start()
        self._ioloop.call_later(min(1.0, limit / 4), self._check_time_limits)
