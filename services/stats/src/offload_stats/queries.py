"""Read-side views over a StatsStore: what the API and the page show."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from offload_stats.store import StatsStore


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
    last = int((now if now is not None else time.time()) // 60)
    first = last - minutes + 1
    values = store.series(metric, first, last)
    return [
        {"minute": datetime.fromtimestamp(m * 60, UTC).strftime("%Y-%m-%dT%H:%MZ"), "count": values.get(m, 0)}
        for m in range(first, last + 1)
    ]
