"""Publisher with confirms, safe to call from many threads of one process.

One connection per process, owned by one I/O thread running pika's SelectConnection.
Callers hand a message over and wait on a Future for the broker's confirm; many
confirms are in flight at once (pipelined), so throughput does not pay one round trip
per message. Messages are published `mandatory` and persistent: a confirm means the
broker routed the message to at least one queue and took responsibility for it.

A caller that waits for its confirm is told the truth about a failure:

- gave up before the message was written (broker down, reconnecting): the message is
  withdrawn and never sent later (`PublishTimeout`, `withdrawn=True`);
- written, but no confirm before the timeout or before the connection dropped: the
  broker may or may not have it (`withdrawn=False`). Such a message is never published
  again on the next connection: its caller has been told it failed, and may retry with
  the same message id, which consumers de-duplicate.

Fire-and-forget messages that were written but not confirmed when the connection
dropped are published again on the next one (at-least-once, de-duplicated by id).

`publish_nowait` is the fire-and-forget mode for analytics: a bounded buffer, drops
counted, flushed on close.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pika
from opentelemetry.trace import Span
from pika.adapters.select_connection import IOLoop
from pika.channel import Channel

from offload_core import fewer_syscalls, metrics, tracing
from offload_core.brokers import BrokerNodes
from offload_core.coalescer import Coalescer
from offload_core.config import CoreConfig
from offload_core.contracts import Contracts, default_contracts
from offload_core.envelope import MAX_BODY_BYTES, Envelope
from offload_core.headers import LANE_HEADER
from offload_core.outgoing import Confirmation, Confirms, Outbox, Outgoing, settle
from offload_core.session import AmqpSession, SessionKeeper, SessionOwner, SessionSetup
from offload_core.topology import DEAD_EXCHANGE, EVENTS_EXCHANGE, RETRY_EXCHANGE, Topology, routing_key

log = logging.getLogger("offload.publisher")

# Fire-and-forget messages do not wake the I/O thread one by one: it sends them every
# FLUSH_INTERVAL, or at once when this many are waiting. A wake-up per web request cost a
# pipe write and a GIL hand-off each, which showed up as lost page throughput.
FLUSH_INTERVAL = 0.02
FLUSH_BACKLOG = 256
# A caller waiting for a confirm while the publisher sits in a long reconnect backoff
# brings the next attempt forward to at most this long after the last one: a broker that
# came back is found within a request's timeout, and an outage costs one attempt per
# interval, not one per request.
DEMAND_RECONNECT_INTERVAL = 1.0
LOST_BEFORE_CONFIRM = "connection lost before the broker confirmed; the broker may still have the message"


class PublishError(Exception):
    """The broker did not take the message."""


class PublishTimeout(PublishError):
    """No confirm within the timeout: broker down, blocked by an alarm, or slow.

    `withdrawn` is True when the message had not been written yet and never will be;
    False when it was written and the broker may still route it."""

    def __init__(self, message: str, *, withdrawn: bool) -> None:
        super().__init__(message)
        self.withdrawn = withdrawn


class PublishNacked(PublishError):
    """The broker refused the message (basic.nack)."""


class Unroutable(PublishError):
    """No queue is bound for this routing key: the broker returned the message."""


class PublisherClosed(PublishError):
    """The publisher is closed or closing."""


class ConnectionLost(PublishError):
    """The connection dropped after the message was written and before its confirm."""


class Publisher:
    def __init__(
        self,
        config: CoreConfig,
        topology: Topology | None = None,
        *,
        contracts: Contracts | None = None,
        name: str = "publisher",
    ) -> None:
        self.config = config
        self.topology = topology
        self.contracts = contracts or default_contracts()
        self.name = name
        # Every core connection of a process goes through a publisher (a runner holds one).
        fewer_syscalls.apply(config.fewer_syscalls)
        self._outbox = Outbox(budget=config.buffer_size)
        self._confirms: Confirms | None = None  # the live session's; None between sessions
        self._ioloop: IOLoop | None = None
        self._keeper: SessionKeeper | None = None
        self._wake_up: Coalescer | None = None  # one scheduled flush for many callers
        self._ready = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def last_error(self) -> str | None:
        """Why the last session ended or failed to open; None while connected."""
        return None if self._keeper is None else self._keeper.last_error

    @property
    def _live(self) -> AmqpSession | None:
        """The keeper's live session; None before start and between sessions."""
        return None if self._keeper is None else self._keeper.live

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Publisher:
        """Start the I/O thread; connecting happens in the background."""
        if self._thread is not None:
            return self
        # Series at 0 from the start, so rate() sees the first drop, confirm or failure.
        for reason in metrics.DROP_REASONS:
            metrics.PUBLISHER_DROPPED.labels(reason)
        for exchange in (EVENTS_EXCHANGE, RETRY_EXCHANGE, DEAD_EXCHANGE):
            metrics.PUBLISH_CONFIRM.labels(exchange)
            for result in ("confirmed", "nacked", "unroutable", "timeout"):
                metrics.PUBLISHED.labels(exchange, result)
        self._ioloop = IOLoop()
        self._wake_up = Coalescer(self._ioloop, self._flush)
        setup = SessionSetup(
            confirms=True, topology=self.topology, on_confirm=self._on_confirm, on_return=self._on_return
        )
        nodes = BrokerNodes(
            self.config.amqp_url,
            connection_name=f"{self.config.service_name}:{self.name}",
            heartbeat=self.config.heartbeat,
            blocked_connection_timeout=self.config.blocked_connection_timeout,
        )
        self._keeper = SessionKeeper(
            self._ioloop,
            nodes,
            setup,
            SessionOwner(
                "publisher", on_ready=self._on_ready, on_lost=self._on_lost, on_stopped=self._ioloop.stop
            ),
            max_delay=self.config.reconnect_max_delay,
        )
        self._thread = threading.Thread(target=self._run, name=f"offload-{self.name}-io", daemon=True)
        self._thread.start()
        return self

    @property
    def ready(self) -> bool:
        """Connected, channel in confirm mode, topology declared."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking messages, wait up to `timeout` for the outstanding ones, disconnect."""
        if self._thread is None or self._closing:
            return
        self._closing = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self._outbox or self._confirms):
            self._wake()
            time.sleep(0.01)
        assert self._ioloop is not None and self._keeper is not None
        self._ioloop.add_callback_threadsafe(self._keeper.stop)
        self._thread.join(timeout=max(1.0, deadline - time.monotonic() + 1.0))
        self._fail_everything(PublisherClosed("publisher closed before the broker confirmed"))

    # -- publishing (any thread) ---------------------------------------------------

    def publish_async(
        self,
        envelope: Envelope,
        *,
        lane: str | None = None,
        correlation_id: str | None = None,
    ) -> Future[None]:
        """Validate and queue `envelope` on offload.events; the Future resolves on confirm."""
        return self._submit(self._prepare(envelope, lane, correlation_id, fire_and_forget=False))

    def publish(
        self,
        envelope: Envelope,
        *,
        lane: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Publish and block until the broker confirms; PublishError if it does not."""
        outgoing = self._prepare(envelope, lane, correlation_id, fire_and_forget=False)
        self.wait(self._submit(outgoing), timeout)

    def publish_nowait(
        self, envelope: Envelope, *, lane: str | None = None, correlation_id: str | None = None
    ) -> bool:
        """Fire and forget: buffer the message and return at once; False if it was dropped."""
        outgoing = self._prepare(envelope, lane, correlation_id, fire_and_forget=True)
        if self._closing:
            metrics.PUBLISHER_DROPPED.labels("shutdown").inc()
            return False
        if not self._outbox.hold():
            metrics.PUBLISHER_DROPPED.labels("buffer_full").inc()
            return False
        self._submit(outgoing, wake=len(self._outbox) >= FLUSH_BACKLOG)
        return True

    def publish_raw(
        self,
        exchange: str,
        routing_key_: str,
        body: bytes,
        properties: pika.BasicProperties,
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish prepared bytes (retry and park paths of the runner) and wait for the confirm."""
        outgoing = Outgoing(exchange, routing_key_, body, properties, fire_and_forget=False)
        self.wait(self._submit(outgoing), timeout)

    def wait(self, future: Future[None], timeout: float | None) -> None:
        """Block until `future` (from publish_async) is confirmed; PublishError if it is not.
        On timeout a message not yet written is withdrawn: it will never be sent."""
        timeout = self.config.confirm_timeout if timeout is None else timeout
        try:
            future.result(timeout)
        except FutureTimeout:
            outgoing = future.outgoing if isinstance(future, Confirmation) else None
            withdrawn = outgoing is not None and self._outbox.withdraw(outgoing)
            if not withdrawn and future.done():
                future.result(0)  # settled between the timeout and now: that answer stands
                return
            exchange = outgoing.exchange if outgoing else EVENTS_EXCHANGE
            metrics.PUBLISHED.labels(exchange, "timeout").inc()
            state = "connected" if self.ready else f"not connected ({self.last_error or 'connecting'})"
            fate = "withdrawn, not sent" if withdrawn else "sent; the broker may still have it"
            error = PublishTimeout(
                f"broker did not confirm within {timeout:g}s ({fate}); publisher {state}",
                withdrawn=withdrawn,
            )
            if withdrawn:  # never written: nothing else will settle it (its span ends here)
                with contextlib.suppress(InvalidStateError):
                    future.set_exception(error)
            raise error from None

    def _prepare(
        self, envelope: Envelope, lane: str | None, correlation_id: str | None, *, fire_and_forget: bool
    ) -> Outgoing:
        message_type = self.contracts.get(envelope.type, envelope.version)
        lane = lane or message_type.default_lane
        if lane not in message_type.lanes:
            raise ValueError(f"{envelope.type} travels in lanes {message_type.lanes}, not {lane!r}")
        self.contracts.check_envelope(envelope.to_dict())
        body = envelope.to_bytes()
        if len(body) > MAX_BODY_BYTES:
            raise ValueError(f"message body is {len(body)} bytes, over the {MAX_BODY_BYTES} byte limit")
        headers: dict[str, Any] = {LANE_HEADER: lane}
        key = routing_key(envelope.type, lane)
        span = tracing.start_producer(EVENTS_EXCHANGE, key, envelope.id, headers)
        properties = envelope.properties(correlation_id=correlation_id, headers=headers)
        outgoing = Outgoing(EVENTS_EXCHANGE, key, body, properties, fire_and_forget)
        if tracing.enabled():
            outgoing.future.add_done_callback(lambda future: _end_publish_span(span, future))
        return outgoing

    def _submit(self, outgoing: Outgoing, *, wake: bool = True) -> Future[None]:
        if self._closing and not outgoing.fire_and_forget:
            raise PublisherClosed("publisher is closed")
        if self._thread is None:
            raise PublisherClosed("publisher was not started")
        self._outbox.put(outgoing)
        # A caller waiting for its confirm is written at once, even while other confirms are
        # due: leaving it for the flush that follows the next confirm added a round trip to
        # its wait (docs/benchmarks.md, "Waking the I/O thread for every caller").
        # The wake-ups stay fewer than the messages: one scheduled flush serves every message
        # queued before it runs (_wake).
        if wake:
            self._wake()
        return outgoing.future

    def _wake(self) -> None:
        if self._wake_up is not None:
            self._wake_up.request()

    # -- I/O thread ------------------------------------------------------------------

    def _run(self) -> None:
        assert self._ioloop is not None and self._keeper is not None
        self._keeper.open()
        self._ioloop.call_later(FLUSH_INTERVAL, self._periodic_flush)
        self._ioloop.start()

    def _on_ready(self, session: AmqpSession) -> None:
        self._confirms = Confirms(session)
        self._ready.set()
        metrics.PUBLISHER_CONNECTED.set(1)
        log.info("publisher connected", extra={"fields": {"broker": session.broker}})
        self._flush_now()

    def _periodic_flush(self) -> None:
        self._flush_now()
        assert self._ioloop is not None
        self._ioloop.call_later(FLUSH_INTERVAL, self._periodic_flush)

    def _flush(self) -> None:
        # A caller waiting for a confirm brings a distant reconnect attempt closer.
        assert self._keeper is not None
        if self._keeper.live is None and self._outbox.someone_waits():
            self._keeper.bring_forward(DEMAND_RECONNECT_INTERVAL)
        self._flush_now()

    def _flush_now(self) -> None:
        session, confirms = self._live, self._confirms
        if session is None or confirms is None or confirms.session is not session or not self._outbox:
            return
        channel = session.channel
        assert channel is not None

        def send(outgoing: Outgoing) -> None:
            channel.basic_publish(
                outgoing.exchange, outgoing.routing_key, outgoing.body, outgoing.properties, mandatory=True
            )
            confirms.written(outgoing)

        failure = self._outbox.write(send)
        if failure is not None:
            log.warning("publish failed, will retry on reconnect", extra={"fields": {"error": repr(failure)}})

    def _on_return(
        self, _channel: Channel, method: Any, properties: pika.BasicProperties, _body: bytes
    ) -> None:
        # The broker returns an unroutable mandatory message before it confirms it.
        if properties.message_id and self._confirms is not None:
            self._confirms.returned(properties.message_id)

    def _on_confirm(self, frame: Any) -> None:
        confirms = self._confirms
        if confirms is None:
            return
        method = frame.method
        nacked = isinstance(method, pika.spec.Basic.Nack)
        now = time.monotonic()
        resend: list[Outgoing] = []
        for outgoing in confirms.answered(method.delivery_tag, method.multiple):
            if nacked and outgoing.fire_and_forget and not self._closing:
                # Nobody waits for it: it goes again, first, on the fresh channel (the
                # events it carries are deduplicated by id downstream).
                metrics.PUBLISHED.labels(outgoing.exchange, "nacked").inc()
                resend.append(outgoing)
            else:
                self._resolve(confirms, outgoing, nacked, now)
        if nacked:
            self._outbox.put_first(resend)
            self._replace_after_nack()
            return
        # Fire-and-forget messages queued since the last flush leave with this one, before
        # the periodic flush would take them.
        self._flush_now()

    def _replace_after_nack(self) -> None:
        """A nack is the broker failing to store a message, not a verdict on it: none of our
        queues has a length limit. On RabbitMQ 3.10 a channel whose quorum queue leader died
        with its node goes on refusing every message (seen: minutes of nacks in a three-node
        cluster while a new channel on the same node was acked at once). So the connection
        is replaced: a caller waiting on what is unconfirmed is told it was lost, the
        fire-and-forget messages go again, and the next attempt takes the next node."""
        session = self._live
        if session is not None:
            log.warning("broker refused a message: reconnecting for a fresh channel")
            session.close()

    def _resolve(self, confirms: Confirms, outgoing: Outgoing, nacked: bool, now: float) -> None:
        returned = confirms.was_returned(outgoing)
        error: PublishError | None
        if nacked:
            result, error = "nacked", PublishNacked(f"broker refused {outgoing.routing_key}")
        elif returned:
            result, error = (
                "unroutable",
                Unroutable(f"no queue bound to {outgoing.exchange}/{outgoing.routing_key}"),
            )
        else:
            result, error = "confirmed", None
            metrics.PUBLISH_CONFIRM.labels(outgoing.exchange).observe(now - outgoing.created)
        metrics.PUBLISHED.labels(outgoing.exchange, result).inc()
        if outgoing.fire_and_forget:
            self._outbox.release()
            if error is not None:
                metrics.PUBLISHER_DROPPED.labels(result).inc()
                log.warning("fire-and-forget message dropped", extra={"fields": {"reason": str(error)}})
        settle(outgoing.future, error)

    def _on_lost(self, _session: AmqpSession, _reason: Exception) -> None:
        self._ready.clear()
        metrics.PUBLISHER_CONNECTED.set(0)
        confirms, self._confirms = self._confirms, None
        if confirms is not None:
            self._requeue_unconfirmed(confirms.take_all())

    def _requeue_unconfirmed(self, pending: list[Outgoing]) -> None:
        """What the lost session left unanswered: its callers are told, fire-and-forget
        messages go again first."""
        again = [outgoing for outgoing in pending if not outgoing.fire_and_forget]
        if again and not self._closing:
            log.warning(
                "connection lost with messages unconfirmed; their callers are told",
                extra={"fields": {"unconfirmed": len(again)}},
            )
        for outgoing in again:
            settle(outgoing.future, ConnectionLost(LOST_BEFORE_CONFIRM))
        self._outbox.put_first(outgoing for outgoing in pending if outgoing.fire_and_forget)

    def _fail_everything(self, error: PublishError) -> None:
        confirms, self._confirms = self._confirms, None
        leftovers = self._outbox.take_all() + ([] if confirms is None else confirms.take_all())
        for outgoing in leftovers:
            if outgoing.fire_and_forget and not outgoing.future.done():
                metrics.PUBLISHER_DROPPED.labels("shutdown").inc()
            settle(outgoing.future, error)


def _end_publish_span(span: Span, future: Future[None]) -> None:
    """A publish's span ends with the broker's answer: confirmed, or why not."""
    error = None if future.cancelled() else future.exception()
    tracing.end(span, outcome="confirmed" if error is None else "failed", error=str(error or ""))
