"""The scaling decision: a pure function of the spec, the state, the observation and the clock.

It is what KEDA v2.21 and the HPA of Kubernetes v1.35 do together, in one step per poll:

1. KEDA's metrics adapter and fallback turn each trigger's reading into the metric the HPA
   sees (`pkg/scaling/scale_handler.go` getScalerState, `pkg/fallback/fallback.go`);
2. KEDA's executor handles activation, 0 <-> 1, idle and cooldown
   (`pkg/scaling/executor/scale_scaledobjects.go` RequestScale);
3. the HPA reconciles the replica count (`hpa.py`, from horizontal.go).

Deliberate differences, each for a reason a user can check:

- a scaled object never goes to zero while messages are unacknowledged: KEDA would cut off
  a runner still working on them (kedacore/keda#356, #5050);
- a failed or malformed reading is a failure, never 0 (kedacore/keda#7180 is the kind of bug
  a silent 0 causes): `sources.py`;
- one loop does KEDA's and the HPA's work, so the HPA step runs on every poll, not on the
  controller's 15 s sync period: with a behavior its rate limits count changes per period
  and are unaffected; without one, "at most double, or 4" applies per poll;
- KEDA keeps lastActiveTime in the ScaledObject status across restarts; this state lives in
  memory, so a target found running at the first poll waits out cooldownPeriod (or
  initialCooldownPeriod if longer) before going to zero: a restart never cuts it at once;
- one trigger mode KEDA does not have, ExpectedWaitTime (`wait_time.py`): its metric is the
  replicas that keep a new message's wait under `value`, times `value`, so the HPA step
  asks for exactly those; its throughput estimate is kept in the state between polls.

No I/O here: the controller feeds in what it observed and applies what comes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from offload_autoscaler import hpa, wait_time
from offload_autoscaler.hpa import Recommendation, ScaleEvent
from offload_autoscaler.spec import ScaledObject, Trigger
from offload_autoscaler.wait_time import QueueFlow, Throughput

# Rate-limit periods are minutes at most; an hour of scale events is plenty.
EVENT_HISTORY_SECONDS = 3600.0


@dataclass(frozen=True)
class Observation:
    """One trigger's reading: `value` in the trigger's unit, or `error` if it could not be read.

    `messages` is the queue depth beside a rate (MessageRate mode counts either for activation);
    `flow` is what ExpectedWaitTime reads (counts and rates)."""

    value: float | None
    unacked: int = 0
    error: str | None = None
    messages: float | None = None
    flow: QueueFlow | None = None


@dataclass(frozen=True)
class State:
    created_at: float
    last_active_at: float | None = None
    # The target's replica count at the first poll (see the module docstring: restarts).
    replicas_at_start: int | None = None
    # Consecutive failed readings per trigger (KEDA's status.health[metric].numberOfFailures).
    failures: tuple[int, ...] = ()
    # None until the first reconcile, which seeds it with the current count
    # (recordInitialRecommendation): a restart never cuts a loaded target at once.
    recommendations: tuple[Recommendation, ...] | None = None
    # Changes the HPA step made (storeScaleEvent); KEDA's own 0 <-> 1 are not among them.
    scale_events: tuple[ScaleEvent, ...] = ()
    # Per trigger: ExpectedWaitTime's throughput estimate (None for the other modes).
    throughputs: tuple[Throughput | None, ...] = ()


@dataclass(frozen=True)
class Decision:
    desired: int
    active: bool
    fallback: bool
    reason: str
    state: State


@dataclass(frozen=True)
class TriggerMetric:
    """What KEDA hands the HPA for one trigger, and whether that trigger counts as active."""

    usage_milli: int | None  # None: the HPA sees an invalid metric
    active: bool
    error: str | None
    fallback: bool


def trigger_is_active(trigger: Trigger, observation: Observation) -> bool:
    """rabbitMQScaler.GetMetricsAndActivity: above activationValue; in MessageRate mode the
    rate or the queue depth (a backlog with no new publishes keeps the object active)."""
    assert observation.value is not None
    if observation.value > trigger.activation_value:
        return True
    return trigger.mode == "MessageRate" and (observation.messages or 0) > trigger.activation_value


def fallback_replicas(spec: ScaledObject, current: int) -> int:
    """doFallback: the replica count the fallback metric stands for."""
    assert spec.fallback is not None
    replicas, behavior = spec.fallback.replicas, spec.fallback.behavior
    if behavior == "currentReplicas":
        return current
    if behavior == "currentReplicasIfHigher":
        return max(current, replicas)
    if behavior == "currentReplicasIfLower":
        return min(current, replicas)
    return replicas


@dataclass(frozen=True)
class TriggerMetrics:
    """Every trigger's metric, and what this reading leaves for the next one."""

    metrics: list[TriggerMetric]
    failures: tuple[int, ...]
    throughputs: tuple[Throughput | None, ...]


def wait_time_metric(
    trigger: Trigger, flow: QueueFlow, previous: Throughput | None, current: int
) -> tuple[TriggerMetric, Throughput]:
    """ExpectedWaitTime's metric: the replicas needed (wait_time.py) times `value`."""
    estimate = wait_time.updated_throughput(previous or Throughput(trigger.initial_throughput), flow, current)
    needed = wait_time.replicas_needed(flow, estimate, trigger.value)
    usage = hpa.milli(wait_time.metric_value(needed, trigger.value))
    return TriggerMetric(usage, wait_time.is_active(flow, trigger.activation_value), None, False), estimate


def trigger_metrics(
    spec: ScaledObject, state: State, observations: Sequence[Observation], current: int
) -> TriggerMetrics:
    """KEDA's metric and activity per trigger (getScalerState + GetMetricsWithFallback), the
    failure counts after this reading, and the throughput estimates."""
    metrics: list[TriggerMetric] = []
    counts: list[int] = []
    throughputs: list[Throughput | None] = []
    for index, (trigger, observation) in enumerate(zip(spec.triggers, observations, strict=True)):
        failed_before = state.failures[index] if index < len(state.failures) else 0
        previous = state.throughputs[index] if index < len(state.throughputs) else None
        throughputs.append(previous)
        if observation.error is None and observation.flow is not None:
            counts.append(0)
            metric, throughputs[-1] = wait_time_metric(trigger, observation.flow, previous, current)
            metrics.append(metric)
            continue
        if observation.error is None and observation.value is not None:
            counts.append(0)
            usage = hpa.milli(observation.value)
            metrics.append(TriggerMetric(usage, trigger_is_active(trigger, observation), None, False))
            continue
        error = observation.error or "no value"
        count = failed_before + 1
        counts.append(count)
        if spec.fallback is not None and count > spec.fallback.failure_threshold:
            # A fallback metric is a valid AverageValue metric: replicas * target, and the
            # trigger counts as active (isActiveOrFallback).
            usage = int(trigger.value * 1000 * fallback_replicas(spec, current))
            metrics.append(TriggerMetric(usage, True, None, True))
        else:
            metrics.append(TriggerMetric(None, False, error, False))
    return TriggerMetrics(metrics, tuple(counts), tuple(throughputs))


def decide(
    spec: ScaledObject, state: State, observations: Sequence[Observation], current: int, now: float
) -> Decision:
    """What the replica count of `spec`'s target should be now (and the state to keep)."""
    if spec.paused:
        desired = spec.paused_replicas if spec.paused_replicas is not None else current
        return Decision(desired, False, False, "paused", state)
    if state.replicas_at_start is None:
        state = replace(state, replicas_at_start=current)

    read = trigger_metrics(spec, state, observations, current)
    metrics = read.metrics
    state = replace(state, failures=read.failures, throughputs=read.throughputs)
    active = any(m.active for m in metrics)
    errors = [m.error for m in metrics if m.error is not None]
    fallback = any(m.fallback for m in metrics)
    unacked = sum(o.unacked for o in observations)

    keda = _keda_executor(spec, state, active, errors, unacked, current, now)
    if keda.desired != current or keda.final:
        return Decision(keda.desired, active, fallback, keda.reason, keda.state)
    return _hpa_reconcile(spec, keda.state, metrics, current, now, active, fallback, keda.reason)


@dataclass(frozen=True)
class _KedaStep:
    desired: int
    state: State
    reason: str
    final: bool = False  # KEDA acted: the HPA step waits for the next poll


def _keda_executor(
    spec: ScaledObject, state: State, active: bool, errors: list[str], unacked: int, current: int, now: float
) -> _KedaStep:
    """scaleExecutor.RequestScale, its branches in its order."""
    if active:
        if (spec.idle_replicas is not None and current < spec.min_replicas) or current == 0:
            # scaleFromZeroOrIdle
            desired = spec.min_replicas if spec.min_replicas > 0 else 1
            return _KedaStep(desired, replace(state, last_active_at=now), "activated", final=True)
        if errors:
            # PartialTriggerError: the HPA scales on the answering triggers; lastActiveTime stays.
            return _KedaStep(current, state, f"active, some triggers failing: {errors[0]}")
        return _KedaStep(current, replace(state, last_active_at=now), "active")
    if errors and spec.fallback is not None and spec.fallback.replicas != 0:
        return _KedaStep(current, state, f"failing, fallback after failureThreshold: {errors[0]}")
    if errors and spec.fallback is None:
        return _KedaStep(current, state, f"triggers failing: {errors[0]}")
    idle = spec.idle_replicas
    if (idle is not None and current > idle) or (current > 0 and spec.min_replicas == 0):
        return _scale_to_zero_or_idle(spec, state, unacked, current, now)
    if idle is None and current < spec.min_replicas:
        return _KedaStep(spec.min_replicas, state, "inactive, below minReplicaCount", final=True)
    return _KedaStep(current, state, "inactive")


def _scale_to_zero_or_idle(
    spec: ScaledObject, state: State, unacked: int, current: int, now: float
) -> _KedaStep:
    """scaleToZeroOrIdle: only once initialCooldownPeriod (never active) or cooldownPeriod
    (since last active) has passed; `Before` is strict, so the boundary itself still waits."""
    if state.last_active_at is None:
        wait = spec.initial_cooldown_period
        if state.replicas_at_start:  # running when this process started: see the docstring
            wait = max(wait, spec.cooldown_period)
        passed = state.created_at + wait < now
        initial = wait == spec.initial_cooldown_period
        waiting = "initialCooldownPeriod" if initial else "cooldownPeriod after start"
    else:
        passed = state.last_active_at + spec.cooldown_period < now
        waiting = f"cooldownPeriod ({now - state.last_active_at:.0f}s since active)"
    if not passed:
        return _KedaStep(current, state, f"inactive, in {waiting}")
    target = spec.idle_replicas if spec.idle_replicas is not None else spec.min_replicas
    if target == 0 and unacked > 0:
        # Deliberate: KEDA would go to zero here and cut off work in progress.
        return _KedaStep(current, state, f"inactive, but {unacked} unacked: not scaling to zero", final=True)
    name = "idleReplicaCount" if spec.idle_replicas is not None else "minReplicaCount"
    return _KedaStep(target, state, f"inactive past cooldownPeriod: scaling to {name} {target}", final=True)


def _hpa_reconcile(
    spec: ScaledObject,
    state: State,
    metrics: list[TriggerMetric],
    current: int,
    now: float,
    active: bool,
    fallback: bool,
    keda_reason: str,
) -> Decision:
    """HorizontalController.reconcileAutoscaler for the HPA KEDA creates (min = max(min, 1))."""
    hpa_min = spec.min_replicas if spec.min_replicas > 0 else 1  # GetHPAMinReplicas
    history = state.recommendations if state.recommendations is not None else (Recommendation(now, current),)
    state = replace(state, recommendations=history)

    def done(desired: int, reason: str, new_state: State = state) -> Decision:
        if desired != current and spec.behavior is not None:
            events = tuple(e for e in new_state.scale_events if e.at > now - EVENT_HISTORY_SECONDS)
            new_state = replace(new_state, scale_events=events + (ScaleEvent(now, desired - current),))
        return Decision(desired, active, fallback, f"{keda_reason}; {reason}", new_state)

    if current == 0:
        return done(0, "hpa: scaling disabled at 0 replicas")
    if current > spec.max_replicas:
        return done(spec.max_replicas, "hpa: above maxReplicaCount")
    if current < hpa_min:
        return done(hpa_min, "hpa: below minReplicaCount")
    targets = [hpa.milli(t.value) for t in spec.triggers]
    proposals = [
        None if m.usage_milli is None else hpa.per_pod_replicas(m.usage_milli, target, current)
        for m, target in zip(metrics, targets, strict=True)
    ]
    desired = hpa.replicas_for_metrics(proposals, current)
    if desired is None:
        return done(current, f"hpa: holding {current}, metrics invalid ({proposals})")
    if spec.behavior is None:
        result = hpa.normalize_without_behavior(history, current, desired, hpa_min, spec.max_replicas, now)
    else:
        up, down = spec.behavior.scale_up, spec.behavior.scale_down
        result = hpa.normalize_with_behaviors(
            up, down, history, state.scale_events, current, desired, hpa_min, spec.max_replicas, now
        )
    return done(result.desired, result.reason, replace(state, recommendations=result.recommendations))
