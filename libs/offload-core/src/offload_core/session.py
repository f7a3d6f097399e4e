"""One AMQP session per connection lifetime, and the keeper that opens the next one.

A session walks connect → channel → qos or confirm mode → declare → ready once, and is
never reused: when its connection or channel closes it reports so exactly once and is
done. What belonged to it (delivery tags, unconfirmed publishes) ends with it, so an
owner asks "is this still my session?" instead of counting generations. The keeper
opens the next session after a backoff, on the next broker node. This is the shape of
pika's asynchronous consumer example, whose reconnecting wrapper builds a new consumer
for every connection.

Everything here runs on the owner's I/O loop thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.channel import Channel

from offload_core.backoff import reconnect_delay, worth_logging
from offload_core.brokers import BrokerNodes
from offload_core.topology import Topology

ConfirmCallback = Callable[[Any], None]
ReturnCallback = Callable[[Channel, Any, pika.BasicProperties, bytes], None]


@dataclass(frozen=True)
class SessionSetup:
    """What a session sets up on its channel before it is ready."""

    prefetch: int | None = None  # basic.qos, for consumers
    confirms: bool = False  # confirm mode, for publishers
    topology: Topology | None = None  # declared before ready
    on_confirm: ConfirmCallback | None = None
    on_return: ReturnCallback | None = None


class AmqpSession:
    """One connection and its channel, from opening to closed."""

    def __init__(
        self,
        ioloop: IOLoop,
        parameters: pika.URLParameters,
        setup: SessionSetup,
        *,
        on_ready: Callable[[AmqpSession], None],
        on_closed: Callable[[AmqpSession, Exception], None],
    ) -> None:
        self.parameters = parameters
        self.channel: Channel | None = None
        self.was_ready = False
        self.is_closed = False
        self._setup = setup
        self._on_ready = on_ready
        self._on_closed = on_closed
        self._channel_error: Exception | None = None
        self.connection = SelectConnection(
            parameters,
            on_open_callback=lambda c: c.channel(on_open_callback=self._on_channel_open),
            on_open_error_callback=self._ended,
            on_close_callback=self._ended,
            custom_ioloop=ioloop,
        )

    @property
    def broker(self) -> str:
        return f"{self.parameters.host}:{self.parameters.port}"

    @property
    def usable(self) -> bool:
        """Ready, and its channel still open: deliveries can be settled, messages published."""
        return self.was_ready and not self.is_closed and self.channel is not None and self.channel.is_open

    def close(self) -> None:
        """End the session (also while it is still opening); `on_closed` follows."""
        if not (self.is_closed or self.connection.is_closing or self.connection.is_closed):
            self.connection.close()

    def _on_channel_open(self, channel: Channel) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        if self._setup.on_return is not None:
            channel.add_on_return_callback(self._setup.on_return)
        if self._setup.confirms:
            assert self._setup.on_confirm is not None
            channel.confirm_delivery(self._setup.on_confirm, callback=lambda _frame: self._declare())
        elif self._setup.prefetch is not None:
            channel.basic_qos(prefetch_count=self._setup.prefetch, callback=lambda _frame: self._declare())
        else:
            self._declare()

    def _declare(self) -> None:
        if self._setup.topology is None or self.channel is None:
            self._ready()
        else:
            self._setup.topology.declare_async(self.channel, self._ready)

    def _ready(self) -> None:
        if self.is_closed or self.channel is None or not self.channel.is_open:
            return
        self.was_ready = True
        self._on_ready(self)

    def _on_channel_closed(self, _channel: Channel, reason: Exception) -> None:
        # A channel error (a topology mismatch, an access refusal) ends the whole session:
        # its reason is the one reported.
        if self.connection.is_open:
            self._channel_error = reason
            self.connection.close()

    def _ended(self, _connection: SelectConnection, reason: Exception) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self._on_closed(self, self._channel_error or reason)


@dataclass(frozen=True)
class ScheduledAttempt:
    """The next session's opening: when (monotonic seconds) and the I/O loop's timer."""

    at: float
    handle: Any


def attempt_on_demand(scheduled_at: float, last_attempt_at: float, min_interval: float) -> float:
    """When to open the next session once a caller is waiting on it: the scheduled time,
    or `min_interval` after the last attempt if that is sooner."""
    return min(scheduled_at, last_attempt_at + min_interval)


@dataclass(frozen=True)
class SessionOwner:
    """Who a SessionKeeper keeps sessions for: its name in log lines ("runner",
    "publisher") and what it hears: `on_ready(session)` for each ready session,
    `on_lost(session, reason)` when one that was ready ends, and `on_stopped()` once,
    after `stop()`."""

    who: str
    on_ready: Callable[[AmqpSession], None]
    on_lost: Callable[[AmqpSession, Exception], None]
    on_stopped: Callable[[], None]


class SessionKeeper:
    """Keeps one session open for its owner until stopped.

    Failed attempts back off with jitter up to `max_delay`; the first failure and every
    tenth are logged.
    """

    def __init__(
        self,
        ioloop: IOLoop,
        nodes: BrokerNodes,
        setup: SessionSetup,
        owner: SessionOwner,
        *,
        max_delay: float,
    ) -> None:
        self.current: AmqpSession | None = None
        self.failures = 0  # attempts failed since the last ready session
        self.last_error: str | None = None
        self.stopping = False
        self._ioloop = ioloop
        self._nodes = nodes
        self._setup = setup
        self._max_delay = max_delay
        self._owner = owner
        self._next: ScheduledAttempt | None = None
        self._last_attempt_at = 0.0

    @property
    def live(self) -> AmqpSession | None:
        """The current session if it is usable: what deliveries and publishes belong to."""
        current = self.current
        return current if current is not None and current.usable else None

    @property
    def waiting(self) -> bool:
        """Between sessions: the next attempt is scheduled."""
        return self._next is not None

    def open(self) -> None:
        self._next = None
        if self.stopping:
            self._owner.on_stopped()
            return
        self._last_attempt_at = time.monotonic()
        self.current = AmqpSession(
            self._ioloop,
            self._nodes.next_parameters(),
            self._setup,
            on_ready=self._ready,
            on_closed=self._closed,
        )

    def stop(self) -> None:
        """Close the current session and open no other; `on_stopped` follows."""
        self.stopping = True
        if self._next is not None:
            self._ioloop.remove_timeout(self._next.handle)
            self._next = None
        if self.current is not None and not self.current.is_closed:
            self.current.close()
        else:
            self._owner.on_stopped()

    def bring_forward(self, min_interval: float) -> None:
        """Someone waits on the broker: open the next session within `min_interval` of the
        last attempt instead of at the end of a long backoff."""
        scheduled = self._next
        if scheduled is None:
            return
        at = attempt_on_demand(scheduled.at, self._last_attempt_at, min_interval)
        if at < scheduled.at:
            self._ioloop.remove_timeout(scheduled.handle)
            self._schedule(at - time.monotonic())

    def _ready(self, session: AmqpSession) -> None:
        if session is not self.current:
            return
        self.failures = 0
        self.last_error = None
        self._owner.on_ready(session)

    def _closed(self, session: AmqpSession, reason: Exception) -> None:
        self.last_error = repr(reason)
        if session.was_ready:
            self._owner.on_lost(session, reason)
        if self.stopping:
            self._owner.on_stopped()
            return
        self.failures += 1
        delay = reconnect_delay(self.failures, self._max_delay)
        fields: dict[str, object] = {"reason": repr(reason), "broker": session.broker}
        fields["retry_in_s"] = round(delay, 2)
        log = logging.getLogger(f"offload.{self._owner.who}")
        if session.was_ready:
            log.warning(f"{self._owner.who} lost the broker, reconnecting", extra={"fields": fields})
        elif worth_logging(self.failures):
            fields["attempts"] = self.failures
            log.warning(f"{self._owner.who} cannot reach the broker, reconnecting", extra={"fields": fields})
        self._schedule(delay)

    def _schedule(self, delay: float) -> None:
        delay = max(0.0, delay)
        handle = self._ioloop.call_later(delay, self.open)
        self._next = ScheduledAttempt(at=time.monotonic() + delay, handle=handle)
