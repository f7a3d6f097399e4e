"""Decision vectors read off the upstream sources, each citing the function it comes from.

Kubernetes v1.35 `pkg/controller/podautoscaler/horizontal.go` (HZ) and
`replica_calculator.go` (RC); KEDA v2.21 `pkg/scaling/executor/scale_scaledobjects.go`
(EX), `pkg/scaling/scale_handler.go` (SH), `pkg/fallback/fallback.go` (FB) and
`pkg/scalers/rabbitmq_scaler.go` (RMQ). Expected values are worked out from that code, not
from what this project did before. Where a vector guards a fix, a negative control shows
the vector fails with the old rule put back.
"""

from __future__ import annotations

import math

import pytest

from offload_autoscaler import hpa
from offload_autoscaler.decision import Observation, State, decide
from offload_autoscaler.hpa import Recommendation, ScaleEvent
from offload_autoscaler.spec import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    ScalingPolicy,
    ScalingRules,
    parse_scaled_object,
)
from offload_autoscaler.wait_time import QueueFlow, Throughput

HOST = "http://guest:guest@127.0.0.1:15672"


def spec(**overrides):
    metadata = {"queueName": "q", "value": "10", "host": HOST} | overrides.pop("metadata", {})
    raw = {
        "scaleTargetRef": {"name": "mailer"},
        "minReplicaCount": 0,
        "maxReplicaCount": 4,
        "cooldownPeriod": 30,
        "triggers": [{"type": "rabbitmq", "metadata": metadata}],
    } | overrides
    return parse_scaled_object(raw, "test")


def two_triggers(**overrides):
    trigger = {"type": "rabbitmq", "metadata": {"queueName": "a", "value": "10", "host": HOST}}
    return spec(triggers=[trigger, trigger], **overrides)


def seen(value, unacked=0, messages=None):
    return [Observation(value, unacked, messages=messages)]


FAILED = Observation(None, 0, "management API: 503")


class Loop:
    """Feeds observations through decide() the way the controller does, applying each decision."""

    def __init__(self, scaled, current=0, state=None):
        self.spec, self.current = scaled, current
        self.state = state or State(created_at=0.0)

    def step(self, observations, at):
        decision = decide(self.spec, self.state, observations, self.current, at)
        self.state, self.current = decision.state, decision.desired
        return decision


# -- the HPA's arithmetic (hpa.py) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "target", "current", "expected"),
    [
        (11000, 10000, 1, 1),  # RC Tolerances.isWithin: ratio 1.1 is within (<=)
        (9000, 10000, 1, 1),  # ratio 0.9 is within (1 - t <= ratio)
        (11001, 10000, 1, 2),  # just past the edge: RC GetExternalPerPodMetricReplicas ceil
        (110000, 10000, 10, 10),  # 1.1 at 10 replicas: within
        (89990, 10000, 10, 9),  # 0.8999: ceil(8.999)
        (0, 10000, 0, 0),
    ],
)
def test_tolerance_band_includes_both_edges(usage, target, current, expected):
    assert hpa.per_pod_replicas(usage, target, current) == expected


def test_negative_control_the_old_tolerance_rule_misses_the_upper_edge(monkeypatch):
    # abs(ratio - 1) <= t: 1.1 - 1.0 is 0.10000000000000009 in floats, so the edge scaled.
    monkeypatch.setattr(hpa, "is_within_tolerance", lambda ratio, t=hpa.TOLERANCE: abs(ratio - 1.0) <= t)
    assert hpa.per_pod_replicas(110000, 10000, 10) == 11


@pytest.mark.parametrize(
    ("value", "expected"),
    [(10, 10000), (2.0004, 2000), (0.5, 500), (-1.0, 0), (math.nan, 0), (math.inf, 0)],
)
def test_values_reach_the_hpa_as_three_decimal_quantities(value, expected):
    # scaler.go quantityFromFloat64: "%.3f", and NaN, Inf and negatives as 0; the HPA reads MilliValue.
    assert hpa.milli(value) == expected


@pytest.mark.parametrize(
    ("proposals", "current", "expected"),
    [
        ([4, 7], 3, 7),  # HZ computeReplicasForMetrics: the highest proposal
        ([None, 5], 3, 5),  # one metric invalid, the others scale up: scale
        ([None, 3], 3, 3),  # ... or keep the count (replicas < specReplicas is false)
        ([None, 2], 3, None),  # ... but never scale down on a partial view
        ([None, None], 3, None),  # all invalid: no decision
    ],
)
def test_partial_metric_failures(proposals, current, expected):
    assert hpa.replicas_for_metrics(proposals, current) == expected


def test_scale_up_limit_with_scaling_rules():
    now = 100.0
    # HZ calculateScaleUpLimitWithScalingRules, defaults Pods 4 and Percent 100 per 15 s, Max.
    assert hpa.scale_up_limit(DEFAULT_SCALE_UP, [], 3, now) == 7  # max(3 + 4, ceil(3 * 2))
    assert hpa.scale_up_limit(DEFAULT_SCALE_UP, [ScaleEvent(now - 10, 2)], 3, now) == 5  # from 1
    # getReplicasChangePerPeriod counts events strictly after the cutoff.
    assert hpa.scale_up_limit(DEFAULT_SCALE_UP, [ScaleEvent(now - 15, 2)], 3, now) == 7
    least = ScalingRules(0, "Min", DEFAULT_SCALE_UP.policies)
    assert hpa.scale_up_limit(least, [], 3, now) == 6


def test_scale_down_limit_with_behaviors():
    now = 100.0
    # HZ calculateScaleDownLimitWithBehaviors: Percent 100 -> int(10 * 0).
    assert hpa.scale_down_limit(DEFAULT_SCALE_DOWN, [], 10, now) == 0
    pods = ScalingRules(0, "Max", (ScalingPolicy("Pods", 2, 60),))
    assert hpa.scale_down_limit(pods, [ScaleEvent(now - 30, -3)], 10, now) == 11  # from 13
    half = ScalingRules(0, "Max", (ScalingPolicy("Percent", 50, 60),))
    assert hpa.scale_down_limit(half, [], 10, now) == 5


def behaviors(history, current, desired, *, up=DEFAULT_SCALE_UP, down=DEFAULT_SCALE_DOWN, events=()):
    return hpa.normalize_with_behaviors(up, down, history, events, current, desired, 1, 20, 100.0).desired


def test_stabilization_with_behaviors():
    now = 100.0
    # HZ recordInitialRecommendation seeds the current count: no cut on the first reconcile.
    assert behaviors([Recommendation(now, 10)], 10, 2) == 10
    # HZ stabilizeRecommendationWithBehaviors: After(cutoff), so a sample at the edge is out.
    assert behaviors([Recommendation(now - 300, 8)], 8, 3) == 3
    assert behaviors([Recommendation(now - 299, 8)], 8, 3) == 8
    # Up window: the lowest recent recommendation, then the rate limit.
    slow_up = ScalingRules(60, "Max", DEFAULT_SCALE_UP.policies)
    assert behaviors([Recommendation(now - 30, 4)], 2, 10, up=slow_up) == 4
    # HZ convertDesiredReplicasWithBehaviorRate: a limit above current is clipped to current.
    pods = ScalingRules(0, "Max", (ScalingPolicy("Pods", 2, 60),))
    assert behaviors([], 10, 1, down=pods, events=[ScaleEvent(now - 30, -3)]) == 10


def without_behavior(history, current, desired, hpa_max=100):
    return hpa.normalize_without_behavior(history, current, desired, 1, hpa_max, 100.0).desired


def test_normalization_without_behavior():
    now = 100.0
    # HZ stabilizeRecommendation: only samples Before(cutoff) are old, so the edge counts.
    assert without_behavior([Recommendation(now - 300, 8)], 8, 3) == 8
    assert without_behavior([Recommendation(now - 301, 8)], 8, 3) == 3
    # HZ convertDesiredReplicasWithRules and calculateScaleUpLimit: max(2 * current, 4).
    assert without_behavior([], 3, 20) == 6
    assert without_behavior([], 1, 20) == 4
    assert without_behavior([], 10, 30, hpa_max=15) == 15
    # The window's maximum applies upwards too: an earlier 8 lifts a 5.
    assert without_behavior([Recommendation(now - 100, 8)], 4, 5) == 8


# -- KEDA and the HPA together (decide) ------------------------------------------------------


def test_activation_scales_from_zero_to_min_or_one():
    # EX RequestScale -> scaleFromZeroOrIdle: minReplicaCount if above 0, else 1.
    assert Loop(spec()).step(seen(1), 0).desired == 1
    assert Loop(spec(minReplicaCount=2)).step(seen(1), 0).desired == 2
    # Inactive and below minReplicaCount (no idle): set to minReplicaCount.
    assert Loop(spec(minReplicaCount=2)).step(seen(0), 0).desired == 2


def test_cooldown_boundary_is_strict():
    # EX scaleToZeroOrIdle: LastActiveTime.Add(cooldownPeriod).Before(now).
    state = State(created_at=-100, last_active_at=0, replicas_at_start=1, recommendations=())
    assert Loop(spec(), current=1, state=state).step(seen(0), 30).desired == 1
    assert Loop(spec(), current=1, state=state).step(seen(0), 30.5).desired == 0


def test_initial_cooldown_applies_only_until_the_first_activity():
    never_active = State(created_at=0, replicas_at_start=0, recommendations=())
    scaled = spec(initialCooldownPeriod=60)
    assert Loop(scaled, current=1, state=never_active).step(seen(0), 60).desired == 1
    assert Loop(scaled, current=1, state=never_active).step(seen(0), 60.5).desired == 0
    # Once active, only cooldownPeriod counts (the initial one is for LastActiveTime == nil).
    active_once = State(created_at=0, last_active_at=400, replicas_at_start=0, recommendations=())
    assert Loop(spec(initialCooldownPeriod=600), current=1, state=active_once).step(seen(0), 450).desired == 0


def test_a_restart_never_cuts_a_running_target_at_once():
    # Deliberate (decision.py): running at the first poll waits out cooldownPeriod.
    loop = Loop(spec(), current=3)
    assert loop.step(seen(0), 0).desired == 3
    assert loop.step(seen(0), 30).desired == 3
    assert loop.step(seen(0), 31).desired == 0


def test_a_restart_keeps_a_loaded_target_for_the_downscale_window():
    # HZ recordInitialRecommendation: the first reconcile seeds the history with the current count.
    loop = Loop(spec(minReplicaCount=1, maxReplicaCount=20), current=10)
    assert loop.step(seen(0), 0).desired == 10
    assert loop.step(seen(0), 299).desired == 10
    assert loop.step(seen(0), 301).desired == 1


def test_negative_control_an_unseeded_history_cuts_at_once():
    unseeded = State(created_at=0, replicas_at_start=10, recommendations=())
    assert (
        Loop(spec(minReplicaCount=1, maxReplicaCount=20), current=10, state=unseeded).step(seen(0), 0).desired
        == 1
    )


def test_fallback_is_a_metric_that_goes_through_stabilization():
    # FB doFallback: replicas * target as the metric; the HPA divides and stabilizes it.
    scaled = spec(minReplicaCount=1, maxReplicaCount=20, fallback={"failureThreshold": 2, "replicas": 2})
    loop = Loop(scaled, current=10)
    assert loop.step(seen(100), 0).desired == 10
    for t in (15, 30):  # numberOfFailures 1, 2: not past the threshold, the HPA holds
        decision = loop.step([FAILED], t)
        assert decision.desired == 10 and not decision.fallback
    decision = loop.step([FAILED], 45)
    assert decision.fallback and decision.desired == 10  # the 10 of t=0 is in the 300 s window
    assert loop.step([FAILED], 300).desired == 10
    assert loop.step([FAILED], 301).desired == 2


def test_fallback_replicas_stay_within_min_and_max():
    scaled = spec(maxReplicaCount=4, fallback={"failureThreshold": 0, "replicas": 50})
    loop = Loop(scaled, current=2, state=State(created_at=0, replicas_at_start=2, recommendations=()))
    assert loop.step([FAILED], 1).desired == 4


@pytest.mark.parametrize(
    ("behavior", "current", "expected"),
    [
        ("static", 2, 4),  # 6 asked, at most max(2 * 2, 4)
        ("static", 4, 6),
        ("currentReplicas", 8, 8),
        ("currentReplicasIfHigher", 2, 4),
        ("currentReplicasIfHigher", 8, 8),
        ("currentReplicasIfLower", 8, 6),
        ("currentReplicasIfLower", 2, 2),
    ],
)
def test_fallback_behaviors(behavior, current, expected):
    # FB doFallback's switch; with no behavior set the HPA may at most double or add 4,
    # and an empty window lets a lower count through at once.
    scaled = spec(maxReplicaCount=10, fallback={"failureThreshold": 0, "replicas": 6, "behavior": behavior})
    state = State(created_at=0, replicas_at_start=current, recommendations=())
    decision = Loop(scaled, current=current, state=state).step([FAILED], 1)
    assert decision.fallback and decision.desired == expected


def test_fallback_with_zero_replicas_lets_keda_scale_to_zero_while_failing():
    # EX RequestScale: the "isError && fallback.replicas != 0" case does not apply.
    state = State(created_at=-200, last_active_at=-100, replicas_at_start=1, recommendations=())
    zero = spec(fallback={"failureThreshold": 3, "replicas": 0})
    assert Loop(zero, current=1, state=state).step([FAILED], 0).desired == 0
    two = spec(fallback={"failureThreshold": 3, "replicas": 2})
    assert Loop(two, current=1, state=state).step([FAILED], 0).desired == 1


def test_partial_failures_scale_up_on_the_answering_triggers_never_down():
    state = State(created_at=-200, last_active_at=-100, replicas_at_start=2, recommendations=())
    scaled = two_triggers(maxReplicaCount=20)
    up = Loop(scaled, current=2, state=state).step([FAILED, Observation(100)], 0)
    assert up.desired == 4  # ceil(100/10) = 10, at most max(2 * 2, 4) per reconcile
    assert up.state.last_active_at == -100  # EX PartialTriggerError: lastActiveTime not renewed
    assert Loop(scaled, current=4, state=state).step([FAILED, Observation(0)], 0).desired == 4


def test_partial_failures_still_wake_from_zero():
    state = State(created_at=-200, replicas_at_start=0, recommendations=())
    scaled = two_triggers()
    assert Loop(scaled, current=0, state=state).step([FAILED, Observation(5)], 0).desired == 1
    assert Loop(scaled, current=0, state=state).step([FAILED, Observation(0)], 0).desired == 0


def test_message_rate_counts_the_backlog_for_activation():
    # RMQ GetMetricsAndActivity, MessageRate: publishRate > activation || messages > activation.
    scaled = spec(metadata={"mode": "MessageRate"})
    state = State(created_at=-200, last_active_at=-100, replicas_at_start=1, recommendations=())
    backlog = Loop(scaled, current=1, state=state).step(seen(0.0, messages=50), 0)
    assert backlog.active and backlog.desired == 1
    assert Loop(scaled, current=1, state=state).step(seen(0.0, messages=0), 0).desired == 0


def test_without_behavior_the_hpa_doubles_or_adds_four_per_reconcile():
    # KEDA creates its HPA without behavior unless advanced.horizontalPodAutoscalerConfig has one.
    loop = Loop(spec(maxReplicaCount=100), current=1)
    assert [loop.step(seen(1000), t).desired for t in (0, 1, 2)] == [4, 8, 16]


def test_with_a_behavior_the_defaults_fill_the_other_side():
    # autoscaling/v2 GenerateHPAScaleUpRules: Pods 4 and Percent 100 per 15 s, Max.
    scaled = spec(
        maxReplicaCount=100,
        advanced={
            "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}
        },
    )
    loop = Loop(scaled, current=2)
    assert loop.step(seen(1000), 0).desired == 6
    assert loop.step(seen(1000), 4).desired == 6  # +4 already used in this 15 s period
    assert loop.step(seen(1000), 16).desired == 12


def test_scale_down_follows_a_configured_window_and_policy():
    scaled = spec(
        minReplicaCount=1,
        maxReplicaCount=20,
        advanced={
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleDown": {
                        "stabilizationWindowSeconds": 60,
                        "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}],
                    }
                }
            }
        },
    )
    loop = Loop(scaled, current=10)
    loop.step(seen(100), 0)
    assert loop.step(seen(10), 15).desired == 10  # the 10 of t=0 is in the window
    assert loop.step(seen(10), 59).desired == 10
    assert loop.step(seen(10), 60).desired == 8  # at the edge the sample is out (After); Pods 2 per 30 s
    assert loop.step(seen(10), 75).desired == 8  # 2 removed within the last 30 s already
    assert loop.step(seen(10), 92).desired == 6


def test_idle_replica_count():
    # EX: active below min with idle set -> min; inactive above idle past cooldown -> idle.
    scaled = spec(idleReplicaCount=0, minReplicaCount=2)
    assert Loop(scaled, current=0).step(seen(5), 0).desired == 2
    state = State(created_at=-200, last_active_at=-100, replicas_at_start=2, recommendations=())
    assert Loop(scaled, current=2, state=state).step(seen(0), 0).desired == 0
    assert Loop(scaled, current=0, state=state).step(seen(0), 0).desired == 0  # HPA disabled at 0


def test_hpa_keeps_the_bounds_even_without_metrics():
    # HZ reconcileAutoscaler: above max -> max, before any metric is read; at 0 -> disabled.
    assert Loop(spec(maxReplicaCount=4), current=6).step([FAILED], 0).desired == 4
    assert Loop(spec(minReplicaCount=1), current=0).step([FAILED], 0).desired == 0


def test_unacked_messages_block_scaling_to_zero():
    # Deliberate (decision.py): KEDA would cut off work in progress here.
    state = State(created_at=-200, last_active_at=-100, replicas_at_start=1, recommendations=())
    held = Loop(spec(), current=1, state=state).step(seen(0, unacked=1), 0)
    assert held.desired == 1 and "unacked" in held.reason
    assert Loop(spec(), current=1, state=state).step(seen(0, unacked=0), 0).desired == 0


def test_paused_holds_or_sets_the_paused_replica_count():
    assert Loop(spec(paused=True), current=3).step(seen(100), 0).desired == 3
    assert Loop(spec(paused=True, pausedReplicaCount=1), current=3).step(seen(100), 0).desired == 1


def test_several_triggers_take_the_highest_recommendation():
    scaled = spec(
        maxReplicaCount=20,
        triggers=[
            {"type": "rabbitmq", "metadata": {"queueName": "a", "value": "10", "host": HOST}},
            {"type": "rabbitmq", "metadata": {"queueName": "b", "value": "5", "host": HOST}},
        ],
    )
    assert Loop(scaled, current=1).step([Observation(10), Observation(15)], 1).desired == 3


def test_a_success_resets_the_failure_count():
    loop = Loop(spec(fallback={"failureThreshold": 1, "replicas": 3}), current=2)
    loop.step([FAILED], 1)
    loop.step(seen(20), 2)
    assert loop.state.failures == (0,)
    assert not loop.step([FAILED], 3).fallback  # one failure again: not past the threshold


# -- ExpectedWaitTime (wait_time.py through decide) -------------------------------------------


def wait_spec(**overrides):
    metadata = {"mode": "ExpectedWaitTime", "value": "10", "initialThroughput": "10"}
    return spec(metadata=metadata, maxReplicaCount=50, **overrides)


def flowing(ready=0, unacked=0, publish=0.0, ack=0.0):
    flow = QueueFlow(ready, unacked, publish, ack)
    return [Observation(float(ready + unacked), unacked, flow=flow)]


def test_expected_wait_time_asks_the_hpa_for_the_replicas_that_meet_the_target():
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 100, "periodSeconds": 15}],
        }
    }
    loop = Loop(wait_spec(advanced={"horizontalPodAutoscalerConfig": {"behavior": behavior}}), current=2)
    # Saturated: 300 ready, 20/s arriving, 2 replicas settling 4/s each.
    decision = loop.step(flowing(ready=300, unacked=20, publish=20.0, ack=8.0), 0)
    assert decision.state.throughputs == (Throughput(4.0, measured=True),)
    assert decision.desired == 13  # (20 + 300 / 10) / 4


def test_expected_wait_time_keeps_its_estimate_between_polls():
    loop = Loop(wait_spec(), current=2)
    loop.step(flowing(ready=300, unacked=20, publish=20.0, ack=8.0), 0)
    quiet = loop.step(flowing(ready=0, unacked=1, publish=1.0, ack=1.0), 1)
    assert quiet.state.throughputs == (Throughput(4.0, measured=True),)


def test_expected_wait_time_activates_on_an_arrival_rate_alone():
    assert Loop(wait_spec(), current=0).step(flowing(publish=0.5), 0).desired == 1
    assert Loop(wait_spec(), current=0).step(flowing(), 0).desired == 0


def test_the_same_backlog_read_as_queue_length_asks_for_what_value_guesses():
    """QueueLength with value 10 ("10 messages per replica") asks for 32 replicas for the
    backlog the wait-time mode sizes at 13: the guess, not the throughput, decides."""
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 100, "periodSeconds": 15}],
        }
    }
    loop = Loop(
        spec(maxReplicaCount=50, advanced={"horizontalPodAutoscalerConfig": {"behavior": behavior}}),
        current=2,
    )
    assert loop.step(seen(320, unacked=20), 0).desired == 32
