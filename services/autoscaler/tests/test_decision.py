"""Decision table tests: KEDA's and the HPA's documented behaviour, plus what we add."""

from __future__ import annotations

import pytest

from offload_autoscaler.decision import Observation, State, decide, scale_down_limit, scale_up_limit
from offload_autoscaler.spec import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, parse_scaled_object


def spec(**overrides):
    metadata = {"queueName": "q", "value": "10", "host": "http://guest:guest@127.0.0.1:15672"}
    metadata |= overrides.pop("metadata", {})
    raw = {
        "scaleTargetRef": {"name": "mailer"},
        "minReplicaCount": 0,
        "maxReplicaCount": 4,
        "cooldownPeriod": 30,
        "triggers": [{"type": "rabbitmq", "metadata": metadata}],
    } | overrides
    return parse_scaled_object(raw, "test")


def seen(value, unacked=0):
    return [Observation(value, unacked)]


def failed():
    return [Observation(None, 0, "management API: 503")]


class Loop:
    """Feeds observations through decide() the way the controller does, applying each decision."""

    def __init__(self, scaled, current=0, now=0.0):
        self.spec, self.current, self.now = scaled, current, now
        self.state = State(created_at=now)

    def step(self, observations, at):
        self.now = at
        decision = decide(self.spec, self.state, observations, self.current, at)
        self.state, self.current = decision.state, decision.desired
        return decision


def test_keda_e2e_100_messages_value_10_max_4_then_zero_after_cooldown():
    loop = Loop(spec())
    assert loop.step(seen(100), 0).desired == 1  # KEDA activates 0 -> 1
    assert loop.step(seen(100), 15).desired == 4  # the HPA takes over: ceil(100/10)=10, capped at max 4
    assert loop.step(seen(0), 30).desired == 4  # inactive, in cooldown, HPA stabilization holds
    assert loop.step(seen(0), 44).desired == 4  # still within cooldownPeriod (30 s since active at 15)
    decision = loop.step(seen(0), 46)
    assert decision.desired == 0 and "scaling to zero" in decision.reason


def test_keda_e2e_activation_value_5_with_3_messages_stays_at_zero():
    loop = Loop(spec(metadata={"activationValue": "5"}))
    for t in range(0, 120, 15):
        decision = loop.step(seen(3), t)
        assert decision.desired == 0 and not decision.active
    assert loop.step(seen(6), 120).desired == 1


def test_min_replica_count_is_what_activation_scales_to_from_zero():
    assert Loop(spec(minReplicaCount=0)).step(seen(1), 0).desired == 1
    assert Loop(spec(minReplicaCount=2, maxReplicaCount=5)).step(seen(0), 0).desired == 2


@pytest.mark.parametrize(
    ("current", "value", "expected"),
    [
        (4, 40, 4),  # exactly on target
        (4, 42, 4),  # 5 % over: within the 10 % tolerance
        (4, 36, 4),  # 10 % under: within tolerance
        (4, 45, 5),  # 12.5 % over: ceil(45/10)
        (4, 30, 3),  # 25 % under; no earlier recommendation to hold it (as the HPA after a restart)
    ],
)
def test_hpa_average_value_and_tolerance(current, value, expected):
    loop = Loop(spec(maxReplicaCount=10), current=current)
    loop.state = State(created_at=-1000, last_active_at=-1)
    assert loop.step(seen(value), 0).desired == expected


def test_scale_down_waits_for_the_stabilization_window_then_follows_the_policy():
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
    assert loop.step(seen(10), 15).desired == 10  # the 10 from t=0 is still in the window
    assert loop.step(seen(10), 59).desired == 10
    assert loop.step(seen(10), 61).desired == 8  # window passed; Pods 2 per 30 s
    assert loop.step(seen(10), 75).desired == 8  # 2 removed within the last 30 s already
    assert loop.step(seen(10), 92).desired == 6


def test_default_scale_up_is_the_max_of_doubling_and_plus_four_per_15_seconds():
    loop = Loop(spec(maxReplicaCount=100), current=2)
    loop.state = State(created_at=0, last_active_at=0)
    assert loop.step(seen(1000), 1).desired == 6  # max(2*2, 2+4)
    assert loop.step(seen(1000), 5).desired == 6  # +4 already used in this 15 s period
    assert loop.step(seen(1000), 17).desired == 12  # new period: max(6*2, 6+4)
    assert loop.step(seen(1000), 33).desired == 24


def test_rate_limit_helpers_follow_the_hpa_formulas():
    assert scale_up_limit(DEFAULT_SCALE_UP, [], 1, 0) == 5
    assert scale_up_limit(DEFAULT_SCALE_UP, [], 10, 0) == 20
    assert scale_down_limit(DEFAULT_SCALE_DOWN, [], 10, 0) == 0  # 100 % per 15 s
    assert scale_down_limit(DEFAULT_SCALE_DOWN, [(0.0, -5)], 5, 10) == 0


def test_scale_up_disabled_keeps_the_count():
    scaled = spec(
        maxReplicaCount=10,
        advanced={"horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": {"selectPolicy": "Disabled"}}}},
    )
    loop = Loop(scaled, current=2)
    loop.state = State(created_at=0, last_active_at=0)
    assert loop.step(seen(100), 1).desired == 2


@pytest.mark.parametrize(
    ("behavior", "current", "expected"),
    [
        ("static", 2, 6),
        ("currentReplicas", 2, 2),
        ("currentReplicasIfHigher", 2, 6),
        ("currentReplicasIfHigher", 8, 8),
        ("currentReplicasIfLower", 8, 6),
        ("currentReplicasIfLower", 2, 2),
    ],
)
def test_fallback_after_more_than_failure_threshold_consecutive_failures(behavior, current, expected):
    loop = Loop(
        spec(maxReplicaCount=10, fallback={"failureThreshold": 3, "replicas": 6, "behavior": behavior}),
        current=current,
    )
    for t in (0, 15, 30):
        decision = loop.step(failed(), t)
        assert decision.desired == current and not decision.fallback
    decision = loop.step(failed(), 45)
    assert decision.fallback and decision.desired == expected


def test_a_failed_reading_is_never_zero_and_a_success_resets_the_count():
    loop = Loop(spec(fallback={"failureThreshold": 1, "replicas": 3}), current=2)
    loop.state = State(created_at=0, last_active_at=0)
    assert loop.step(failed(), 1).desired == 2
    loop.step(seen(20), 2)
    assert loop.state.failures == 0
    assert loop.step(failed(), 3).desired == 2  # one failure again: not past the threshold


def test_unacked_messages_block_one_to_zero():
    loop = Loop(spec(cooldownPeriod=10), current=1)
    loop.state = State(created_at=-100, last_active_at=-100)
    decision = loop.step(seen(0, unacked=1), 0)
    assert decision.desired == 1 and "unacked" in decision.reason
    assert loop.step(seen(0, unacked=0), 15).desired == 0


def test_initial_cooldown_period_delays_the_first_scale_to_zero():
    loop = Loop(spec(initialCooldownPeriod=60), current=1)
    assert loop.step(seen(0), 10).desired == 1
    assert loop.step(seen(0), 61).desired == 0


def test_paused_holds_or_sets_the_paused_replica_count():
    assert Loop(spec(paused=True), current=3).step(seen(100), 0).desired == 3
    assert Loop(spec(paused=True, pausedReplicaCount=1), current=3).step(seen(100), 0).desired == 1


def test_min_above_zero_never_scales_to_zero():
    loop = Loop(spec(minReplicaCount=1), current=1)
    assert loop.step(seen(0), 1000).desired == 1


def test_several_triggers_take_the_highest_recommendation():
    scaled = parse_scaled_object(
        {
            "scaleTargetRef": {"name": "m"},
            "maxReplicaCount": 20,
            "triggers": [
                {"type": "rabbitmq", "metadata": {"queueName": "a", "value": "10", "host": "http://h"}},
                {"type": "rabbitmq", "metadata": {"queueName": "b", "value": "5", "host": "http://h"}},
            ],
        },
        "t",
    )
    loop = Loop(scaled, current=1)
    loop.state = State(created_at=0, last_active_at=0)
    assert loop.step([Observation(10), Observation(15)], 1).desired == 3


def test_a_failed_reading_still_keeps_the_count_within_min_and_max():
    assert Loop(spec(minReplicaCount=1), current=0).step(failed(), 0).desired == 1
    assert Loop(spec(maxReplicaCount=4), current=6).step(failed(), 0).desired == 4
