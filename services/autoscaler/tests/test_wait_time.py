"""ExpectedWaitTime's estimator (offload_autoscaler.wait_time), as vectors: each limit the
module names, and the naive estimate it replaces as the control where one exists."""

from __future__ import annotations

import math

import pytest

from offload_autoscaler.wait_time import (
    MIN_THROUGHPUT,
    QueueFlow,
    Throughput,
    expected_wait,
    is_active,
    metric_value,
    replicas_needed,
    updated_throughput,
)

GUESS = Throughput(10.0)  # the spec's initialThroughput: 10 messages/s per replica


def flow(ready: int = 0, unacked: int = 0, publish: float = 0.0, ack: float = 0.0) -> QueueFlow:
    return QueueFlow(ready, unacked, publish, ack)


@pytest.mark.parametrize(
    ("queue", "replicas", "needed"),
    [
        (flow(), 3, 0),  # idle: nothing waits or arrives
        (flow(unacked=1), 1, 1),  # one in flight keeps one replica
        (flow(publish=5.0), 0, 1),  # arrivals below one replica's capacity
        (flow(publish=25.0), 2, 3),  # 25/s at 10/s each
        (flow(ready=300, publish=0.0), 1, 3),  # drain 300 within 10 s: 30/s
        (flow(ready=300, publish=20.0), 1, 5),  # and serve 20/s meanwhile: 50/s
    ],
)
def test_replicas_serve_the_arrivals_and_drain_the_backlog_within_the_target(queue, replicas, needed):
    assert replicas_needed(queue, GUESS, target_wait=10.0) == needed


def test_the_metric_makes_the_hpa_ask_for_the_replicas_needed():
    # The HPA's AverageValue step: ceil(metric / target).
    for needed in (1, 2, 7, 40):
        assert math.ceil(metric_value(needed, 2.5) / 2.5) == needed


def test_cold_start_uses_the_guess_then_the_first_saturated_reading_replaces_it():
    assert not GUESS.measured
    busy = flow(ready=500, unacked=20, publish=40.0, ack=8.0)  # 2 replicas settle 4/s each
    first = updated_throughput(GUESS, busy, replicas=2)
    assert first == Throughput(4.0, measured=True)
    assert replicas_needed(busy, GUESS, 10.0) == 9  # sized by the guess: (40 + 50) / 10
    assert replicas_needed(busy, first, 10.0) == 23  # corrected: (40 + 50) / 4


def test_later_saturated_readings_are_smoothed():
    known = Throughput(4.0, measured=True)
    faster = updated_throughput(known, flow(ready=100, ack=20.0), replicas=2)  # 10/s each now
    assert faster.per_replica == pytest.approx(0.3 * 10.0 + 0.7 * 4.0)


def test_a_handler_that_slows_under_load_is_followed_within_a_few_polls():
    estimate = Throughput(10.0, measured=True)
    polls = 0
    while estimate.per_replica > 5.0 * 1.1:  # the handler now settles 5/s per replica
        estimate = updated_throughput(estimate, flow(ready=200, ack=20.0), replicas=4)
        polls += 1
    assert polls == 7  # 0.7 of the gap remains after each poll: 5 * 0.7**7 < 0.5


def test_an_unsaturated_poll_can_raise_the_estimate_but_never_lower_it():
    known = Throughput(8.0, measured=True)
    quiet = flow(ready=0, unacked=2, publish=3.0, ack=3.0)  # 3/s over 3 replicas: 1/s each
    assert updated_throughput(known, quiet, replicas=3) == known
    brisk = flow(ready=0, unacked=5, publish=36.0, ack=36.0)  # 12/s each, with room to spare
    assert updated_throughput(known, brisk, replicas=3).per_replica == 12.0


def test_control_the_naive_estimate_collapses_in_a_quiet_spell_and_misses_the_next_burst():
    """ack_rate / replicas taken at every poll reads 1/s in a quiet spell; the burst that
    follows is then sized at ten times the replicas it needs (and is capped, or wastes
    them), where the estimator above keeps 8/s."""
    quiet = flow(ready=0, unacked=2, publish=3.0, ack=3.0)
    naive = Throughput(quiet.ack_rate / 3, measured=True)
    burst = flow(ready=400, publish=40.0)
    kept = updated_throughput(Throughput(8.0, measured=True), quiet, replicas=3)
    assert replicas_needed(burst, kept, 10.0) == 10
    assert replicas_needed(burst, naive, 10.0) == 80


def test_a_stuck_consumer_is_no_throughput_reading():
    known = Throughput(6.0, measured=True)
    stuck = flow(ready=50, unacked=10, publish=2.0, ack=0.0)
    assert updated_throughput(known, stuck, replicas=2) == known
    # the backlog still asks for replicas, as any backlog does
    assert replicas_needed(stuck, known, 10.0) == 2


def test_control_a_stuck_consumer_read_as_zero_throughput_asks_for_everything():
    stuck = flow(ready=50, unacked=10, publish=2.0, ack=0.0)
    zero = Throughput(0.0, measured=True)
    assert replicas_needed(stuck, zero, 10.0) == math.ceil(7.0 / MIN_THROUGHPUT)


def test_nothing_divides_by_zero():
    assert expected_wait(flow(ready=10), Throughput(0.0), replicas=0) == math.inf
    assert expected_wait(flow(), Throughput(0.0), replicas=0) == 0.0
    assert replicas_needed(flow(ready=1), Throughput(0.0), 1.0) >= 1
    assert updated_throughput(GUESS, flow(ready=5, ack=3.0), replicas=0) == GUESS


def test_the_expected_wait_at_the_replicas_needed_is_within_the_target():
    for queue in (flow(ready=300, publish=20.0), flow(ready=5000, publish=100.0), flow(ready=7)):
        needed = replicas_needed(queue, GUESS, 10.0)
        assert expected_wait(queue, GUESS, needed) <= 10.0


@pytest.mark.parametrize(
    ("queue", "active"),
    [(flow(), False), (flow(ready=1), True), (flow(unacked=1), True), (flow(publish=0.5), True)],
)
def test_a_backlog_or_an_arrival_rate_activates(queue, active):
    assert is_active(queue, activation_value=0.0) is active
