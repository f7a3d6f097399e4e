"""The scaling decision: a pure function of the spec, the state, the observation and the clock.

Semantics are KEDA's (activation, 0 <-> 1, cooldown, fallback) on top of the HPA's
(AverageValue target, 10 % tolerance, stabilization windows, rate-limit policies), so
users can read KEDA's and the HPA's documentation and predict what happens. Beyond
KEDA: a scaled object never goes 1 -> 0 while messages are unacknowledged (a runner
is still working on them), and a failed or malformed reading is a failure, never 0.

No I/O here: the controller feeds in what it observed and applies what comes out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from offload_autoscaler.spec import ScaledObject, ScalingRules

TOLERANCE = 0.1  # the HPA's default --horizontal-pod-autoscaler-tolerance


@dataclass(frozen=True)
class Observation:
    """One trigger's reading: `value` in the trigger's unit, or `error` if it could not be read."""

    value: float | None
    unacked: int = 0
    error: str | None = None


@dataclass(frozen=True)
class State:
    created_at: float
    last_active_at: float | None = None
    failures: int = 0
    # (time, recommended replicas): the HPA's stabilization window looks back over these.
    recommendations: tuple[tuple[float, int], ...] = ()
    # (time, replica change): the HPA's rate-limit policies count changes per period.
    scale_events: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class Decision:
    desired: int
    active: bool
    fallback: bool
    reason: str
    state: State


def _per_replica_desired(value: float, target: float, current: int) -> int:
    """The HPA with an AverageValue target: ceil(total / target), unless within tolerance."""
    if current > 0 and abs(value / (target * current) - 1.0) <= TOLERANCE:
        return current
    return math.ceil(value / target)


def _changes(events: Sequence[tuple[float, int]], now: float, period: float) -> tuple[int, int]:
    added = sum(d for t, d in events if d > 0 and t > now - period)
    removed = sum(-d for t, d in events if d < 0 and t > now - period)
    return added, removed


def scale_up_limit(rules: ScalingRules, events: Sequence[tuple[float, int]], current: int, now: float) -> int:
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        added, removed = _changes(events, now, policy.period_seconds)
        start = current - added + removed
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return max(proposals) if rules.select_policy == "Max" else min(proposals)


def scale_down_limit(
    rules: ScalingRules, events: Sequence[tuple[float, int]], current: int, now: float
) -> int:
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        added, removed = _changes(events, now, policy.period_seconds)
        start = current - added + removed
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    # "Max" picks the policy allowing the biggest change, i.e. the lowest limit.
    return min(proposals) if rules.select_policy == "Max" else max(proposals)


def _hpa(
    spec: ScaledObject, state: State, values: Sequence[float], current: int, now: float
) -> tuple[int, State, str]:
    hpa_min = max(spec.min_replicas, 1)
    recommendation = max(
        _per_replica_desired(value, trigger.value, current)
        for value, trigger in zip(values, spec.triggers, strict=True)
    )
    recommendation = min(max(recommendation, hpa_min), spec.max_replicas)
    keep = max(spec.scale_up.stabilization_window_seconds, spec.scale_down.stabilization_window_seconds)
    history = tuple((t, r) for t, r in state.recommendations if t > now - keep) + ((now, recommendation),)
    up_cutoff = now - spec.scale_up.stabilization_window_seconds
    down_cutoff = now - spec.scale_down.stabilization_window_seconds
    up = min([r for t, r in history if t >= up_cutoff] or [recommendation])
    down = max([r for t, r in history if t >= down_cutoff] or [recommendation])
    stabilized = min(max(current, up), down)
    desired, reason = stabilized, f"hpa recommends {recommendation}, stabilized {stabilized}"
    if stabilized > current:
        limit = scale_up_limit(spec.scale_up, state.scale_events, current, now)
        if stabilized > limit:
            desired, reason = limit, f"{reason}, scale-up limited to {limit}"
    elif stabilized < current:
        limit = scale_down_limit(spec.scale_down, state.scale_events, current, now)
        if stabilized < limit:
            desired, reason = limit, f"{reason}, scale-down limited to {limit}"
    desired = min(max(desired, hpa_min), spec.max_replicas)
    return desired, replace(state, recommendations=history), reason


def _fallback(spec: ScaledObject, current: int) -> int:
    assert spec.fallback is not None
    replicas = spec.fallback.replicas
    behavior = spec.fallback.behavior
    if behavior == "currentReplicas":
        return current
    if behavior == "currentReplicasIfHigher":
        return max(current, replicas)
    if behavior == "currentReplicasIfLower":
        return min(current, replicas)
    return replicas


def decide(
    spec: ScaledObject, state: State, observations: Sequence[Observation], current: int, now: float
) -> Decision:
    """What the replica count of `spec`'s target should be now (and the state to keep)."""
    if spec.paused:
        desired = spec.paused_replicas if spec.paused_replicas is not None else current
        return Decision(desired, False, False, "paused", state)

    failed = [o for o in observations if o.error is not None or o.value is None]
    if failed:
        state = replace(state, failures=state.failures + 1)
        error = failed[0].error or "no value"
        if spec.fallback is not None and state.failures > spec.fallback.failure_threshold:
            desired = _fallback(spec, current)
            return Decision(
                desired,
                False,
                True,
                f"fallback ({spec.fallback.behavior}) after {state.failures} failures: {error}",
                _record(state, current, desired, now),
            )
        # Without a reading, hold the count, but never outside [min, max] (the HPA keeps those too).
        held = min(max(current, spec.min_replicas), spec.max_replicas)
        return Decision(
            held,
            False,
            False,
            f"metric failed ({state.failures} in a row), holding {held}: {error}",
            _record(state, current, held, now),
        )
    state = replace(state, failures=0)

    values = [float(o.value) for o in observations]  # type: ignore[arg-type]
    active = any(v > t.activation_value for v, t in zip(values, spec.triggers, strict=True))
    if active:
        state = replace(state, last_active_at=now)
    unacked = sum(o.unacked for o in observations)

    if current == 0:
        if active:
            desired = max(spec.min_replicas, 1)
            return Decision(
                desired, True, False, "activated from zero", _record(state, current, desired, now)
            )
        desired = spec.min_replicas
        return Decision(desired, False, False, "inactive", _record(state, current, desired, now))

    if not active and spec.min_replicas == 0:
        since_active = None if state.last_active_at is None else now - state.last_active_at
        in_initial = now - state.created_at < spec.initial_cooldown_period
        in_cooldown = since_active is not None and since_active < spec.cooldown_period
        if in_initial or in_cooldown:
            reason = "initialCooldownPeriod" if in_initial else f"cooldown ({since_active:.0f}s since active)"
            desired, state, hpa_reason = _hpa(spec, state, values, current, now)
            return Decision(
                desired,
                False,
                False,
                f"inactive, in {reason}; {hpa_reason}",
                _record(state, current, desired, now),
            )
        if unacked > 0:
            # KEDA would go to zero here and cut off work in progress (kedacore/keda#356, #5050).
            return Decision(
                current, False, False, f"inactive, but {unacked} unacked: not scaling to zero", state
            )
        return Decision(
            0, False, False, "inactive past cooldownPeriod: scaling to zero", _record(state, current, 0, now)
        )

    desired, state, reason = _hpa(spec, state, values, current, now)
    return Decision(desired, active, False, reason, _record(state, current, desired, now))


def _record(state: State, current: int, desired: int, now: float) -> State:
    if desired == current:
        return state
    # Rate-limit periods are minutes at most; keep an hour of changes.
    events = tuple((t, d) for t, d in state.scale_events if t > now - 3600) + ((now, desired - current),)
    return replace(state, scale_events=events)
