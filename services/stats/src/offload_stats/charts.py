"""Charts drawn on the server as SVG shapes (no scripts): bars for categories, columns for time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from offload_stats.welcome_delay import MinuteDelays


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    y: float
    width: float


@dataclass(frozen=True)
class Column:
    label: str
    value: int
    x: float
    y: float
    height: float


def bars(items: list[tuple[str, int]], width: float = 340.0, row: float = 22.0) -> list[Bar]:
    peak = max((v for _, v in items), default=0) or 1
    return [Bar(label[:60], value, i * row, width * value / peak) for i, (label, value) in enumerate(items)]


def columns(points: list[dict], width: float = 600.0, height: float = 120.0) -> list[Column]:
    peak = max((p["count"] for p in points), default=0) or 1
    step = width / max(len(points), 1)
    result = []
    for i, point in enumerate(points):
        h = height * point["count"] / peak
        result.append(Column(point["minute"], point["count"], i * step, height - h, h))
    return result


@dataclass(frozen=True)
class DelayColumn:
    """One minute of welcome-email delays: a p95 column with the p50 column inside it."""

    label: str
    x: float
    p95_y: float
    p95_height: float
    p50_y: float
    p50_height: float


def delay_columns(
    points: Sequence[MinuteDelays], width: float = 600.0, height: float = 120.0
) -> list[DelayColumn]:
    peak = max((p.p95_seconds or 0.0 for p in points), default=0.0) or 1.0
    step = width / max(len(points), 1)
    result = []
    for i, point in enumerate(points):
        if point.p50_seconds is None or point.p95_seconds is None:
            continue
        p95 = height * point.p95_seconds / peak
        p50 = height * point.p50_seconds / peak
        mails = f"{point.mails} mail" + ("" if point.mails == 1 else "s")
        label = f"{mails}, p50 {point.p50_seconds:.2f} s, p95 {point.p95_seconds:.2f} s"
        result.append(DelayColumn(label, i * step, height - p95, p95, height - p50, p50))
    return result
