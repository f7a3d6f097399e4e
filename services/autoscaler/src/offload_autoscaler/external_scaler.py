"""Mode ExpectedWaitTime for real KEDA: its external scaler protocol, served over gRPC.

KEDA cannot scale a RabbitMQ queue on time on queue (kedacore/keda#7071); with this server
a KEDA user gets the mode through a `type: external` trigger whose metadata are the
rabbitmq trigger's keys (`queueName` or `useRegex` + `queueNameRegex`, `mode:
ExpectedWaitTime`, `value` in seconds, `activationValue`, `initialThroughput`,
`vhostName`). What KEDA does with the answers (pkg/scalers/external_scaler.go, v2.21):

- GetMetricSpec: one metric, `targetSizeFloat` = `value`; KEDA gives it to the HPA as an
  AverageValue target;
- GetMetrics: `metricValueFloat` = replicas needed x `value` (`wait_time.metric_value`), so
  the HPA's `ceil(metric / target)` asks for exactly the replicas needed, through its own
  tolerance, behavior and [min, max];
- IsActive (and StreamIsActive): `wait_time.is_active`; KEDA's executor then takes the
  target between 0 and 1;
- StreamMetricSpec is left unimplemented: the spec never changes for given metadata, and
  KEDA falls back to GetMetricSpec on UNIMPLEMENTED.

Differences from the in-process mode, each forced by the protocol:

- the replica count the throughput estimate divides by is the queue's consumer count
  (the largest over the queues a regex matches: a runner consumes each of its queues
  once), because KEDA does not say how many replicas the target has;
- the estimate is kept per ScaledObject and queue in this process (at most
  MAX_ESTIMATES, least recently used first out) and updated on each GetMetrics;
  a restart starts again from `initialThroughput`;
- the management API's URL and credentials are this server's setting, never a
  ScaledObject's: any author of one could otherwise send this server's requests with
  credentials of their choosing, or read them back through errors. Metadata that carry
  `host`, `username`, `password` or `protocol` are refused.

A reading that fails is an error to KEDA (UNAVAILABLE), never 0: KEDA counts it towards
its fallback. Metadata that cannot be used are INVALID_ARGUMENT, with the key named.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import grpc

from offload_autoscaler.decision import Observation, wait_time_metric
from offload_autoscaler.externalscaler import externalscaler_pb2 as pb
from offload_autoscaler.externalscaler import externalscaler_pb2_grpc as pb_grpc
from offload_autoscaler.spec import SpecError, Trigger, trigger_from_metadata
from offload_autoscaler.wait_time import QueueFlow, Throughput, is_active

log = logging.getLogger("offload.autoscaler.external")

METRIC_NAME = "offload-expected-wait"
MAX_ESTIMATES = 1000
# KEDA's own keys of every external trigger (externalScalerMetadata); not ours to read.
KEDA_KEYS = frozenset({"scalerAddress", "enableTLS", "unsafeSsl"})
# What only this server decides (see the module docstring).
_CREDENTIALS = ("host", "username", "password")
_FROM = ("", "FromEnv", "FromFile")
REFUSED_KEYS = frozenset({"protocol"} | {f"{key}{source}" for key in _CREDENTIALS for source in _FROM})


def trigger_of(metadata: Mapping[str, str], management_url: str) -> Trigger:
    """The rabbitmq trigger a ScaledObject's external metadata describe, reading the queue
    from `management_url`; SpecError names the key that cannot be used."""
    refused = sorted(REFUSED_KEYS & set(metadata))
    if refused:
        raise SpecError(
            f"metadata.{refused[0]} is not accepted: the management API is the external scaler's "
            "own setting (OFFLOAD_EXTERNAL_SCALER_MANAGEMENT_URL)"
        )
    keys = {k: v for k, v in metadata.items() if k not in KEDA_KEYS}
    keys.setdefault("mode", "ExpectedWaitTime")
    trigger = trigger_from_metadata({**keys, "host": management_url})
    if trigger.mode != "ExpectedWaitTime":
        raise SpecError(
            f"metadata.mode must be ExpectedWaitTime, not {trigger.mode!r}: KEDA's own rabbitmq "
            "trigger serves the other modes"
        )
    return trigger


@dataclass(frozen=True)
class Assessment:
    """One reading's answer: the metric KEDA hands the HPA, whether the target is active,
    and the throughput estimate for the next reading."""

    metric: float
    active: bool
    throughput: Throughput


def assess(trigger: Trigger, flow: QueueFlow, previous: Throughput | None) -> Assessment:
    """The in-process mode's metric (decision.wait_time_metric), with the queue's consumers
    standing for the replicas."""
    metric, throughput = wait_time_metric(trigger, flow, previous, flow.consumers)
    assert metric.usage_milli is not None
    return Assessment(metric.usage_milli / 1000, metric.active, throughput)


class Estimates:
    """Throughput estimates per (namespace, ScaledObject, queue), least recently used out
    beyond `limit`: any number of ScaledObjects may point here, the memory may not grow."""

    def __init__(self, limit: int = MAX_ESTIMATES) -> None:
        self._limit = limit
        self._by_key: OrderedDict[tuple[str, ...], Throughput] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Throughput | None:
        with self._lock:
            found = self._by_key.get(key)
            if found is not None:
                self._by_key.move_to_end(key)
            return found

    def put(self, key: tuple[str, ...], throughput: Throughput) -> None:
        with self._lock:
            self._by_key[key] = throughput
            self._by_key.move_to_end(key)
            while len(self._by_key) > self._limit:
                self._by_key.popitem(last=False)

    def __len__(self) -> int:
        return len(self._by_key)


Read = Callable[[Trigger], Observation]


class ExternalScaler(pb_grpc.ExternalScalerServicer):
    """The protocol's four calls over one management-API reader (`read`, thread-safe)."""

    def __init__(self, read: Read, management_url: str, *, stream_interval: float = 5.0) -> None:
        self._read = read
        self._management_url = management_url
        self._stream_interval = stream_interval
        self.estimates = Estimates()

    def _trigger(self, ref: pb.ScaledObjectRef, context: grpc.ServicerContext) -> Trigger:
        try:
            return trigger_of(dict(ref.scalerMetadata), self._management_url)
        except SpecError as exc:
            log.warning(
                "unusable external trigger",
                extra={"fields": {"scaled_object": f"{ref.namespace}/{ref.name}", "error": str(exc)}},
            )
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # unreachable: abort raises

    def _flow(self, trigger: Trigger, context: grpc.ServicerContext) -> QueueFlow:
        observation = self._read(trigger)
        if observation.flow is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, observation.error or "the queue could not be read")
        assert observation.flow is not None
        return observation.flow

    def IsActive(self, request: pb.ScaledObjectRef, context: grpc.ServicerContext) -> pb.IsActiveResponse:
        trigger = self._trigger(request, context)
        return pb.IsActiveResponse(result=is_active(self._flow(trigger, context), trigger.activation_value))

    def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
    ) -> Iterator[pb.IsActiveResponse]:
        """The activity now, then each change, checked every `stream_interval` seconds
        until KEDA closes the stream."""
        trigger = self._trigger(request, context)
        closed = threading.Event()
        context.add_callback(closed.set)
        last: bool | None = None
        while not closed.is_set():
            observation = self._read(trigger)
            if observation.flow is not None:
                active = is_active(observation.flow, trigger.activation_value)
                if active != last:
                    last = active
                    yield pb.IsActiveResponse(result=active)
            closed.wait(self._stream_interval)

    def GetMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
    ) -> pb.GetMetricSpecResponse:
        trigger = self._trigger(request, context)
        spec = pb.MetricSpec(metricName=METRIC_NAME, targetSizeFloat=trigger.value)
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.ServicerContext
    ) -> pb.GetMetricsResponse:
        ref = request.scaledObjectRef
        trigger = self._trigger(ref, context)
        flow = self._flow(trigger, context)
        key = (ref.namespace, ref.name, trigger.queue_name or f"~{trigger.queue_regex}")
        answer = assess(trigger, flow, self.estimates.get(key))
        self.estimates.put(key, answer.throughput)
        log.debug(
            "external metric",
            extra={"fields": {"scaled_object": f"{ref.namespace}/{ref.name}", "metric": answer.metric}},
        )
        value = pb.MetricValue(metricName=request.metricName or METRIC_NAME, metricValueFloat=answer.metric)
        return pb.GetMetricsResponse(metricValues=[value])
