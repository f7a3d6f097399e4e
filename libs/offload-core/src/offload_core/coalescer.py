"""One wake-up of an I/O loop for any number of requests made before it runs.

Waking a pika I/O loop from another thread is a pipe write and a thread switch. The
publisher's callers and the runner's worker threads each ask for one per message; a
`Coalescer` turns every request made before the scheduled call runs into that one call
(docs/benchmarks.md, "Waking the I/O thread for every caller").
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

Item = TypeVar("Item")


class Loop(Protocol):
    """What a coalescer needs of pika's IOLoop."""

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None: ...


class Coalescer:
    """`request()` from any thread; `target` runs once on the loop for all requests made
    before it starts."""

    def __init__(self, loop: Loop, target: Callable[[], None]) -> None:
        self._loop = loop
        self._target = target
        self._lock = threading.Lock()
        self._scheduled = False

    def request(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.add_callback_threadsafe(self._run)

    def _run(self) -> None:
        with self._lock:
            self._scheduled = False
        self._target()


class Handoff(Generic[Item]):
    """Items from worker threads to the I/O loop, handled there in order, one wake-up for
    every item queued before it runs."""

    def __init__(self, loop: Loop, handle: Callable[[Item], None]) -> None:
        self._handle = handle
        self._items: collections.deque[Item] = collections.deque()
        self._wake = Coalescer(loop, self._drain)

    def put(self, item: Item) -> None:
        self._items.append(item)
        self._wake.request()

    def _drain(self) -> None:
        while self._items:
            self._handle(self._items.popleft())
