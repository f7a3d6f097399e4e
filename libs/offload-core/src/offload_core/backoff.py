"""Reconnect delays, and which failed attempts to log, shared by the publisher and the runner."""

from __future__ import annotations

import random


def reconnect_delay(attempt: int, maximum: float, base: float = 0.1) -> float:
    """Exponential backoff with jitter (between half and all of the ceiling).

    The jitter keeps a fleet of workers that lost the broker together from
    reconnecting in step when it comes back.
    """
    ceiling = min(maximum, base * 2 ** max(attempt, 0))
    return random.uniform(ceiling / 2, ceiling)


def worth_logging(failures: int) -> bool:
    """The first failure, then every tenth: an outage, or a broker slow to come up, is a
    few log lines, not one per attempt."""
    return failures % 10 == 1
