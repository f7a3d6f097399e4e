"""Read-side views over a StatsStore: what the API and the page show."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from offload_stats import welcome_delay
from offload_stats.store import StatsStore


def _minutes(minutes: int, now: float | None) -> range:
    """The last `minutes` epoch minutes, the current one included."""
    last = int((now if now is not None else time.time()) // 60)
    return range(last - minutes + 1, last + 1)


def minute_label(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%MZ")


def summary(store: StatsStore) -> dict[str, Any]:
    requests = store.counters("requests")
    signups = store.counters("signups")
    mails = store.counters("mails")
    return {
        "requests": {
            "total": requests.get("total", 0),
            "by_status_class": dict(sorted(store.counters("status_class").items())),
        },
        "signups": {
            "total": signups.get("total", 0),
            "by_fruit": dict(sorted(store.counters("fruit").items())),
            "by_lane": dict(sorted(store.counters("lane").items())),
        },
        "mails": {name: mails.get(name, 0) for name in ("sent", "failed", "suppressed")},
    }


def top(store: StatsStore, family: str, limit: int) -> list[tuple[str, int]]:
    return sorted(store.counters(family).items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def timeseries(
    store: StatsStore, metric: str, minutes: int, now: float | None = None
) -> list[dict[str, Any]]:
    """One point per minute for the last `minutes` minutes (the current one included), zeros filled in."""
    window = _minutes(minutes, now)
    values = store.series(metric, window[0], window[-1])
    return [{"minute": minute_label(m), "count": values.get(m, 0)} for m in window]


def welcome_delays(
    store: StatsStore, minutes: int, now: float | None = None
) -> list[welcome_delay.MinuteDelays]:
    """Time from accepted signup to welcome email, per minute of sending, for the last
    `minutes` minutes (the current one included)."""
    window = _minutes(minutes, now)
    names = [welcome_delay.series_name(b) for b in range(welcome_delay.BUCKETS)]
    buckets = store.series_many(names, window[0], window[-1])
    return [welcome_delay.summarize(m, [buckets[name].get(m, 0) for name in names]) for m in window]
