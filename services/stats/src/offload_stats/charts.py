"""Charts drawn on the server as SVG shapes (no scripts): bars for categories, columns for time."""

from __future__ import annotations

from dataclasses import dataclass


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
