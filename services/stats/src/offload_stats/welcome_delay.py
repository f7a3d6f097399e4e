"""Time from an accepted signup to its welcome email: what a person feels of the queue.

Each `mail.sent` (version 2 on) carries the acceptance time of its signup; the delay
(the mail's own time minus that) is counted into one of a fixed set of buckets per minute
of sending, so the store holds at most len(BOUNDS_SECONDS) + 1 numbers a minute however
many mails go out. Quantiles are read back from the buckets the way Prometheus's
`histogram_quantile` reads a classic histogram: `bucketQuantile` in
https://github.com/prometheus/prometheus/blob/main/promql/quantile.go (linear
interpolation inside the bucket that holds the rank; the first bucket starts at 0; a rank
in the open-ended last bucket reads as the highest finite bound).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# Upper bounds (seconds) of the buckets; one more bucket above the last holds the rest. From
# "at once" to an hour: the range a welcome email's wait spans between an idle mailer and a
# backlog that waits on a scale-up or a mail server's outage.
BOUNDS_SECONDS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
BUCKETS = len(BOUNDS_SECONDS) + 1
SERIES_PREFIX = "welcome_delay_"


def series_name(bucket: int) -> str:
    """The per-minute series that counts one bucket's mails."""
    return f"{SERIES_PREFIX}{bucket}"


def bucket_of(seconds: float) -> int:
    """The bucket a delay falls in: the first whose (inclusive) upper bound holds it."""
    return bisect.bisect_left(BOUNDS_SECONDS, seconds)


def _instant(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def delay_seconds(accepted_at: str, sent_at: str) -> float:
    """Seconds from acceptance to sending. Web and mailer run on different clocks; a mail
    that reads as sent before its signup was accepted (skew) counts as sent at once."""
    return max(0.0, _instant(sent_at) - _instant(accepted_at))


def quantile(q: float, counts: Sequence[int], bounds: Sequence[float] = BOUNDS_SECONDS) -> float | None:
    """The q-quantile of bucket counts (one per bound plus the open bucket above, not
    cumulative), as Prometheus's bucketQuantile computes it; None when there is no count."""
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"expected {len(bounds) + 1} bucket counts, got {len(counts)}")
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for bucket, count in enumerate(counts):
        if below + count >= rank and count > 0:
            if bucket == len(bounds):
                return bounds[-1]  # the open bucket: its lower bound is all we know
            start = 0.0 if bucket == 0 else bounds[bucket - 1]
            end = bounds[bucket]
            return start + (end - start) * (rank - below) / count
        below += count
    return math.nan  # unreachable: the last bucket with mail holds every rank up to the total


@dataclass(frozen=True)
class MinuteDelays:
    """One minute of sending: how many mails carried their acceptance time, and the
    median and 95th percentile of their delays (None for a minute without any)."""

    minute: int
    mails: int
    p50_seconds: float | None
    p95_seconds: float | None


def summarize(minute: int, counts: Sequence[int]) -> MinuteDelays:
    return MinuteDelays(minute, sum(counts), quantile(0.5, counts), quantile(0.95, counts))
