"""The HPA's reconcile for one AverageValue external metric per trigger, as pure functions.

Each function names the Kubernetes v1.35 function it follows
(`pkg/controller/podautoscaler/horizontal.go` and `replica_calculator.go`). Quantities are
compared as the HPA compares them, in integer milli-units (`resource.Quantity.MilliValue`),
after KEDA has formatted each value with three decimals (`quantityFromFloat64` in
`pkg/scalers/scaler.go`).

No I/O and no clock: the caller passes `now` and the history it kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from offload_autoscaler.spec import ScalingRules

# kube-controller-manager flags, at their defaults.
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DOWNSCALE_STABILIZATION_SECONDS = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
# calculateScaleUpLimit, used when the HPA has no behavior: at most double, or 4, per reconcile.
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


@dataclass(frozen=True)
class Recommendation:
    """One unstabilized recommendation, as the HPA keeps them for its stabilization windows."""

    at: float
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    """One replica change the HPA made; `change` is positive up, negative down."""

    at: float
    change: int


@dataclass(frozen=True)
class Normalized:
    desired: int
    recommendations: tuple[Recommendation, ...]
    reason: str


def milli(value: float) -> int:
    """A metric value as the HPA sees it: KEDA's "%.3f" quantity, in milli-units."""
    if math.isnan(value) or math.isinf(value) or value < 0:
        return 0
    return int(Decimal(f"{value:.3f}") * 1000)


def is_within_tolerance(usage_ratio: float, tolerance: float = TOLERANCE) -> bool:
    """Tolerances.isWithin: both edges count as within."""
    return (1.0 - tolerance) <= usage_ratio <= (1.0 + tolerance)


def per_pod_replicas(usage_milli: int, target_milli: int, current: int) -> int:
    """GetExternalPerPodMetricReplicas: ceil(usage / target) unless the ratio is within tolerance."""
    if current > 0:
        usage_ratio = usage_milli / (target_milli * current)
        if is_within_tolerance(usage_ratio):
            return current
    return math.ceil(usage_milli / target_milli)


def replicas_for_metrics(proposals: Sequence[int | None], current: int) -> int | None:
    """computeReplicasForMetrics: the highest proposal of the valid metrics (None = invalid).

    None when every metric is invalid, or when some are and the valid ones would scale
    down: the HPA then does nothing this reconcile."""
    valid = [p for p in proposals if p is not None]
    invalid = len(proposals) - len(valid)
    replicas = max(valid, default=0)
    if invalid >= len(proposals) or (invalid > 0 and replicas < current):
        return None
    return replicas


def _change_in_period(events: Sequence[ScaleEvent], now: float, period: float, up: bool) -> int:
    """getReplicasChangePerPeriod over the scale-up or the scale-down events (After: strict)."""
    return sum(abs(e.change) for e in events if (e.change > 0) == up and e.at > now - period)


def _period_start(events: Sequence[ScaleEvent], current: int, now: float, period: float) -> int:
    """periodStartReplicas: the count a policy's period began with."""
    added = _change_in_period(events, now, period, up=True)
    removed = _change_in_period(events, now, period, up=False)
    return current - added + removed


def scale_up_limit(rules: ScalingRules, events: Sequence[ScaleEvent], current: int, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(events, current, now, policy.period_seconds)
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:  # rounded up, or a small target could never grow
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(rules: ScalingRules, events: Sequence[ScaleEvent], current: int, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(events, current, now, policy.period_seconds)
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    # The biggest change ("Max") is the lowest limit.
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def _keep(history: Sequence[Recommendation], now: float, longest_window: float) -> tuple[Recommendation, ...]:
    # A sample no window can see again is dropped (upstream overwrites it in place).
    return tuple(r for r in history if r.at > now - longest_window)


def normalize_with_behaviors(
    up: ScalingRules,
    down: ScalingRules,
    history: Sequence[Recommendation],
    events: Sequence[ScaleEvent],
    current: int,
    desired: int,
    hpa_min: int,
    hpa_max: int,
    now: float,
) -> Normalized:
    """normalizeDesiredReplicasWithBehaviors: stabilizeRecommendationWithBehaviors, then
    convertDesiredReplicasWithBehaviorRate."""
    up_cutoff = now - up.stabilization_window_seconds
    down_cutoff = now - down.stabilization_window_seconds
    up_recommendation = min([r.replicas for r in history if r.at > up_cutoff] + [desired])
    down_recommendation = max([r.replicas for r in history if r.at > down_cutoff] + [desired])
    stabilized = min(max(current, up_recommendation), down_recommendation)
    longest = max(up.stabilization_window_seconds, down.stabilization_window_seconds)
    kept = _keep(history, now, longest) + (Recommendation(now, desired),)
    reason = f"hpa recommends {desired}, stabilized {stabilized}"
    if stabilized > current:
        limit = max(scale_up_limit(up, events, current, now), current)
        allowed = min(hpa_max, limit)
        if stabilized > allowed:
            why = "scale-up limited" if allowed == limit else "capped at maxReplicaCount"
            return Normalized(allowed, kept, f"{reason}, {why} to {allowed}")
    elif stabilized < current:
        limit = min(scale_down_limit(down, events, current, now), current)
        allowed = max(hpa_min, limit)
        if stabilized < allowed:
            why = "scale-down limited" if allowed == limit else "held at minReplicaCount"
            return Normalized(allowed, kept, f"{reason}, {why} to {allowed}")
    return Normalized(stabilized, kept, reason)


def normalize_without_behavior(
    history: Sequence[Recommendation], current: int, desired: int, hpa_min: int, hpa_max: int, now: float
) -> Normalized:
    """normalizeDesiredReplicas: stabilizeRecommendation (the highest recommendation of the
    downscale window, samples at its edge included), then convertDesiredReplicasWithRules."""
    cutoff = now - DOWNSCALE_STABILIZATION_SECONDS
    stabilized = max([r.replicas for r in history if r.at >= cutoff] + [desired])
    kept = tuple(r for r in history if r.at >= cutoff) + (Recommendation(now, desired),)
    scale_up_cap = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    allowed_max = min(hpa_max, scale_up_cap)
    reason = f"hpa recommends {desired}, stabilized {stabilized}"
    if stabilized < hpa_min:
        return Normalized(hpa_min, kept, f"{reason}, held at minReplicaCount {hpa_min}")
    if stabilized > allowed_max:
        why = "scale-up limited" if allowed_max == scale_up_cap else "capped at maxReplicaCount"
        return Normalized(allowed_max, kept, f"{reason}, {why} to {allowed_max}")
    return Normalized(stabilized, kept, reason)
