"""A publisher's messages on their way: waiting to be written (`Outbox`), and written on
one session but not yet confirmed (`Confirms`).

Delivery tags count from 1 on every channel, so what awaits a confirm belongs to the
session that wrote it: each session gets a new `Confirms`, as pika's examples build a new
consumer for every connection, and nothing is reset by hand when a session ends.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import pika

from offload_core.session import AmqpSession

# Where an outgoing message is. QUEUED -> WRITTEN on the I/O thread, QUEUED -> WITHDRAWN by
# a caller that stopped waiting; both under the outbox's lock, so exactly one wins.
QUEUED, WRITTEN, WITHDRAWN = "queued", "written", "withdrawn"


class Confirmation(Future[None]):
    """Resolves when the broker confirms; `Publisher.wait` withdraws it if it times out unsent."""

    def __init__(self) -> None:
        super().__init__()
        self.outgoing: Outgoing | None = None


@dataclass(eq=False)
class Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    fire_and_forget: bool
    future: Confirmation = field(default_factory=Confirmation)
    created: float = field(default_factory=time.monotonic)
    state: str = QUEUED

    def __post_init__(self) -> None:
        self.future.outgoing = self


def settle(future: Future[None], error: BaseException | None = None) -> None:
    """Resolve a future once; a second resolution (race with a timeout) is ignored."""
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


class Outbox:
    """Messages waiting to be written, in order, and how many fire-and-forget messages are
    held (written or not) against their budget. Callers add from any thread; the I/O thread
    writes under the same lock a caller withdraws under."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._queue: collections.deque[Outgoing] = collections.deque()
        self._lock = threading.Lock()
        self._held = 0  # fire-and-forget messages not yet confirmed

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, outgoing: Outgoing) -> None:
        self._queue.append(outgoing)

    def put_first(self, again: Iterable[Outgoing]) -> None:
        """Messages to go again before everything queued, in their order."""
        again = list(again)
        for outgoing in again:
            outgoing.state = QUEUED
        self._queue.extendleft(reversed(again))

    def hold(self) -> bool:
        """Room for one more fire-and-forget message; False when the budget is spent."""
        with self._lock:
            if self._held >= self.budget:
                return False
            self._held += 1
            return True

    def release(self) -> None:
        """A held fire-and-forget message was confirmed or dropped."""
        with self._lock:
            self._held -= 1

    def withdraw(self, outgoing: Outgoing) -> bool:
        """True if `outgoing` was still queued: it is now withdrawn and will never be sent."""
        with self._lock:
            if outgoing.state == QUEUED:
                outgoing.state = WITHDRAWN
                return True
            return False

    def someone_waits(self) -> bool:
        """A caller waits for one of the queued messages (read as a snapshot: callers append)."""
        return not all(o.fire_and_forget for o in list(self._queue))

    def write(self, send: Callable[[Outgoing], None]) -> Exception | None:
        """`send` every queued message in order and mark it written; stops at the first
        failure, which is returned with its message first in the queue again."""
        with self._lock:
            while self._queue:
                outgoing = self._queue.popleft()
                if outgoing.state != QUEUED or outgoing.future.done():
                    continue
                try:
                    send(outgoing)
                except Exception as exc:  # the channel or connection went away under us
                    self._queue.appendleft(outgoing)
                    return exc
                outgoing.state = WRITTEN
        return None

    def take_all(self) -> list[Outgoing]:
        taken = list(self._queue)
        self._queue.clear()
        return taken


class Confirms:
    """What one session wrote and the broker has not yet answered, by delivery tag, and the
    message ids it returned as unroutable (a return comes before its confirm)."""

    def __init__(self, session: AmqpSession) -> None:
        self.session = session
        self._unconfirmed: dict[int, Outgoing] = {}
        self._last_tag = 0
        self._returned: set[str] = set()

    def __len__(self) -> int:
        return len(self._unconfirmed)

    def written(self, outgoing: Outgoing) -> None:
        self._last_tag += 1
        self._unconfirmed[self._last_tag] = outgoing

    def returned(self, message_id: str) -> None:
        self._returned.add(message_id)

    def was_returned(self, outgoing: Outgoing) -> bool:
        message_id = outgoing.properties.message_id
        if message_id in self._returned:
            self._returned.discard(message_id)
            return True
        return False

    def answered(self, tag: int, multiple: bool) -> list[Outgoing]:
        """The messages a confirm (or nack) for `tag` answers, in order."""
        tags = sorted(t for t in self._unconfirmed if t <= tag) if multiple else [tag]
        return [o for t in tags if (o := self._unconfirmed.pop(t, None)) is not None]

    def take_all(self) -> list[Outgoing]:
        """Everything still unanswered, in the order it was written."""
        pending = [self._unconfirmed[t] for t in sorted(self._unconfirmed)]
        self._unconfirmed.clear()
        return pending
