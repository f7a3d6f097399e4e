"""ExpectedWaitTime: enough replicas that a message arriving now waits less than a target.

`QueueLength` asks the user to guess how many messages one replica should hold; when the
handler's speed changes, the guess is wrong one way (idle replicas) or the other (time on
queue through the SLO). This mode asks for the wait instead and works out the replicas
from what RabbitMQ's management API already reports for the queue: ready and unacknowledged
counts, publish and ack rates. The name follows KEDA's trigger modes (`QueueLength`,
`MessageRate`): it names what `value` is, here seconds of expected wait; kedacore/keda#7071
asked for the same thing as `ExpectedQueueConsumptionTime`.

The estimate, one poll at a time, as pure functions:

- **Throughput per replica** (messages per second one replica settles), smoothed over polls
  (an exponentially weighted average, weight SMOOTHING on the new reading). A poll measures
  it only when the replicas are saturated: messages wait ready (with prefetch, a consumer
  with room would have taken them) and acks flow. Then `ack_rate / replicas` is their
  capacity. An unsaturated poll shows only a lower bound (they settle what arrives), so it
  can raise the estimate, never lower it. Until a saturated poll, the estimate is the spec's
  `initialThroughput`.
- **Replicas needed**: those that serve the arrival rate and drain what is ready within the
  target, `ceil((publish_rate + ready / target) / per_replica)`; at least one while anything
  waits or arrives, none when the queue is idle.
- **The metric the HPA sees** is `needed * value`: with the HPA's AverageValue target of
  `value`, its `ceil(metric / value)` is `needed`, and the HPA's tolerance, stabilization,
  behavior and [min, max] then apply as to any trigger.

Limits, each with its vector in tests/test_wait_time.py:

- cold start: before any saturated poll the estimate is the spec's guess; a burst is sized by
  it on the first poll and corrected on the next saturated one;
- a handler whose speed changes with load (a slower SMTP server under more connections):
  the estimate follows at the smoothing rate, a few polls behind;
- a stuck consumer (messages unacknowledged, no acks): no acks is not a throughput reading,
  so the estimate holds rather than dropping to zero and asking for every replica; the
  ready backlog still grows the request, bounded by maxReplicaCount;
- no division by zero: the estimate never goes below MIN_THROUGHPUT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SMOOTHING = 0.3  # weight of a new saturated reading
MIN_THROUGHPUT = 0.001  # messages per second per replica: the floor of any estimate


@dataclass(frozen=True)
class QueueFlow:
    """One poll of the management API for the queue (or the sum over the queues matched)."""

    ready: int
    unacked: int
    publish_rate: float  # messages per second, message_stats.publish_details.rate
    ack_rate: float  # messages per second, message_stats.ack_details.rate
    # Consumers on the queue (the largest over the queues matched): the replicas, for the
    # external scaler, which KEDA does not tell how many the target has.
    consumers: int = 0


@dataclass(frozen=True)
class Throughput:
    """Messages per second one replica settles; `measured` once a saturated poll set it."""

    per_replica: float
    measured: bool = False


def saturated(flow: QueueFlow, replicas: int) -> bool:
    """Every replica busy: messages wait ready while acks flow."""
    return replicas > 0 and flow.ready > 0 and flow.ack_rate > 0


def updated_throughput(previous: Throughput, flow: QueueFlow, replicas: int) -> Throughput:
    """The estimate after this poll (see the module docstring)."""
    if replicas <= 0 or flow.ack_rate <= 0:
        return previous  # nothing settled: no reading (idle, or a stuck consumer)
    reading = flow.ack_rate / replicas
    if saturated(flow, replicas):
        weight = SMOOTHING if previous.measured else 1.0  # the first reading replaces the guess
        smoothed = weight * reading + (1 - weight) * previous.per_replica
        return Throughput(max(MIN_THROUGHPUT, smoothed), measured=True)
    if reading > previous.per_replica:
        return Throughput(reading, previous.measured)  # a lower bound above the estimate
    return previous


def replicas_needed(flow: QueueFlow, throughput: Throughput, target_wait: float) -> int:
    """Replicas that serve the arrivals and drain what is ready within `target_wait`."""
    if flow.ready <= 0 and flow.unacked <= 0 and flow.publish_rate <= 0:
        return 0
    per_replica = max(MIN_THROUGHPUT, throughput.per_replica)
    demand = max(0.0, flow.publish_rate) + max(0, flow.ready) / target_wait
    return max(1, math.ceil(demand / per_replica))


def expected_wait(flow: QueueFlow, throughput: Throughput, replicas: int) -> float:
    """Seconds a message arriving now waits behind what is ready, at this many replicas
    (infinite with none and a backlog)."""
    if flow.ready <= 0:
        return 0.0
    if replicas <= 0:
        return math.inf
    return flow.ready / (replicas * max(MIN_THROUGHPUT, throughput.per_replica))


def metric_value(needed: int, target_wait: float) -> float:
    """What the HPA is given so that its AverageValue step asks for `needed` replicas."""
    return needed * target_wait


def is_active(flow: QueueFlow, activation_value: float) -> bool:
    """Activation as KEDA's MessageRate mode has it: a backlog or an arrival rate above
    activationValue wakes the target."""
    return flow.ready + flow.unacked > activation_value or flow.publish_rate > activation_value
