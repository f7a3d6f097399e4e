"""pika's I/O loop held and counted, for tests of what wakes it: while a loop is held in a
callback, everything scheduled on it queues, so a count does not depend on timing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def held(loop: Any) -> Iterator[threading.Event]:
    """Hold a running IOLoop in a callback until the yielded event is set (or the block ends)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        release.wait(10)

    loop.add_callback_threadsafe(hold)
    assert holding.wait(10), "the I/O loop never ran the holding callback"
    try:
        yield release
    finally:
        release.set()


class WakeUps:
    """How many callbacks were scheduled on the loop from other threads."""

    count = 0


@contextlib.contextmanager
def counted_wake_ups(loop: Any) -> Iterator[WakeUps]:
    """Count add_callback_threadsafe calls on `loop` inside the block."""
    counted = WakeUps()
    schedule: Callable[[Callable[[], None]], None] = loop.add_callback_threadsafe

    def counting(callback: Callable[[], None]) -> None:
        counted.count += 1
        schedule(callback)

    loop.add_callback_threadsafe = counting
    try:
        yield counted
    finally:
        loop.add_callback_threadsafe = schedule
