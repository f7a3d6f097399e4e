"""A ceiling on how fast one mailer process hands emails to the relay.

Mail providers cap the send rate per account (e.g. Amazon SES's per-second quota); a replica
that stays under its share turns a burst into a backlog on the queue, which is what the
autoscaler scales on, instead of into rejected sends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SendPacer:
    """Spaces calls to `wait()` at least 1/rate seconds apart across every thread of the
    process; rate 0 means no ceiling."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def wait(self) -> float:
        """Block until this caller's slot; returns how long it waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return delay
