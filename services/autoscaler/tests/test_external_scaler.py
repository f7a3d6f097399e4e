"""KEDA's external scaler protocol served by offload-external-scaler: the metadata it accepts,
the metric it answers, and the real gRPC server over a real broker's management API, called
through the generated client as KEDA's Go client calls it (pkg/scalers/external_scaler.go:
GetMetricSpec, then GetMetrics with the metric name, then IsActive)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pika
import pytest

from offload_autoscaler.external_main import ExternalScalerSettings, SerialReader, start_server
from offload_autoscaler.external_scaler import METRIC_NAME, Estimates, assess, trigger_of
from offload_autoscaler.externalscaler import externalscaler_pb2 as pb
from offload_autoscaler.externalscaler import externalscaler_pb2_grpc as pb_grpc
from offload_autoscaler.spec import SpecError
from offload_autoscaler.wait_time import QueueFlow, Throughput
from offload_testkit.amqp import wait_for

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "services/autoscaler/src/offload_autoscaler/externalscaler"
MANAGEMENT = "http://guest:guest@127.0.0.1:15672"
METADATA = {"scalerAddress": "scaler:9090", "queueName": "q", "value": "5", "initialThroughput": "2"}


def test_the_metadata_are_the_rabbitmq_triggers_keys_read_by_the_same_rules():
    trigger = trigger_of(METADATA, MANAGEMENT)
    assert (trigger.mode, trigger.queue_name, trigger.value, trigger.initial_throughput) == (
        "ExpectedWaitTime",
        "q",
        5.0,
        2.0,
    )
    assert trigger.host == MANAGEMENT and trigger.protocol == "http"
    with pytest.raises(SpecError, match=r"metadata\.value must be"):
        trigger_of({**METADATA, "value": "soon"}, MANAGEMENT)
    with pytest.raises(SpecError, match=r"metadata\.queueName is required"):
        trigger_of({"value": "5"}, MANAGEMENT)
    with pytest.raises(SpecError, match="must be ExpectedWaitTime"):
        trigger_of({**METADATA, "mode": "QueueLength"}, MANAGEMENT)


@pytest.mark.parametrize("key", ["host", "hostFromEnv", "password", "usernameFromFile", "protocol"])
def test_a_scaled_object_cannot_choose_where_or_as_whom_the_scaler_reads(key):
    """KEDA hands an external scaler every metadata key, `...FromEnv` resolved from the
    target's environment: a ScaledObject's author could point the scaler's requests at a
    host of their choosing. Only the scaler's own setting says where."""
    with pytest.raises(SpecError, match=f"metadata.{key} is not accepted"):
        trigger_of({**METADATA, key: "http://elsewhere:15672"}, MANAGEMENT)


def test_the_consumers_stand_for_the_replicas_in_the_estimate():
    """100 ready, acks at 10/s by 2 consumers: 5/s each. To drain 100 within 5 s at 5/s per
    replica takes 4 replicas, so the metric is 4 x 5 and the HPA's ceil(20 / 5) is 4.
    Negative control: the same queue read as if it had no consumers gives no reading, so
    the spec's 2/s stays, and 10 replicas are asked for."""
    trigger = trigger_of(METADATA, MANAGEMENT)
    flow = QueueFlow(ready=100, unacked=2, publish_rate=0.0, ack_rate=10.0, consumers=2)
    answer = assess(trigger, flow, None)
    assert (answer.metric, answer.active, answer.throughput) == (20.0, True, Throughput(5.0, measured=True))
    blind = assess(trigger, QueueFlow(100, 2, 0.0, 10.0, consumers=0), None)
    assert blind.metric == 50.0 and blind.throughput == Throughput(2.0)


def test_estimates_are_bounded_least_recently_used_first_out():
    estimates = Estimates(limit=3)
    for name in "abcd":
        estimates.put(("ns", name, "q"), Throughput(1.0))
        if name == "c":
            estimates.get(("ns", "a", "q"))  # a is used again: b is now the oldest
    assert len(estimates) == 3
    assert estimates.get(("ns", "b", "q")) is None and estimates.get(("ns", "a", "q")) is not None


def test_the_committed_protocol_modules_are_what_the_proto_generates(tmp_path):
    """scripts/external-scaler-stubs.sh into a fresh folder gives the committed files; the
    control is a changed proto, which gives different ones."""
    script = ROOT / "scripts/external-scaler-stubs.sh"
    subprocess.run(
        [str(script), str(tmp_path)], check=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    )
    generated = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert generated == ["externalscaler_pb2.py", "externalscaler_pb2.pyi", "externalscaler_pb2_grpc.py"]
    for name in generated:
        assert (tmp_path / name).read_bytes() == (PACKAGE / name).read_bytes(), (
            f"{name} is stale: run the script"
        )


@pytest.fixture
def scaler(rabbitmq_broker, amqp_vhost):
    settings = ExternalScalerSettings(
        management_url=rabbitmq_broker.management_url_with_credentials(), port=0, stream_interval=0.2
    )
    reader = SerialReader(settings.management_url)
    server, port = start_server(settings, reader)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.ExternalScalerStub(channel)
    channel.close()
    server.stop(grace=None)
    reader.close()


def ref(vhost: str, **metadata: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(
        name="mailer", namespace="shop", scalerMetadata={**METADATA, "vhostName": vhost, **metadata}
    )


def test_keda_calls_against_a_real_queue(scaler, amqp_url, amqp_vhost):
    """30 messages wait in a queue no one consumes: the spec is `value`; the metric asks for
    ceil(30 / 5 / 2) = 3 replicas (30 ready to drain in 5 s at the initial 2/s each), as
    3 x 5; the queue is active. An empty queue is inactive and asks for none."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_declare("work")
        channel.queue_declare("idle")
        for i in range(30):
            channel.basic_publish("", "work", str(i).encode())
    work = ref(amqp_vhost, queueName="work")
    [spec] = scaler.GetMetricSpec(work, timeout=10).metricSpecs
    assert (spec.metricName, spec.targetSizeFloat) == (METRIC_NAME, 5.0)

    def metric(target: pb.ScaledObjectRef) -> float:
        request = pb.GetMetricsRequest(scaledObjectRef=target, metricName=METRIC_NAME)
        [value] = scaler.GetMetrics(request, timeout=10).metricValues
        assert value.metricName == METRIC_NAME
        return value.metricValueFloat

    def settled_metric(target: pb.ScaledObjectRef) -> float | None:
        # A queue's counts reach the management API with the broker's next stats emission;
        # until then the scaler says UNAVAILABLE (not 0), as for any reading it cannot make.
        try:
            return metric(target)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return None

    wait_for(lambda: settled_metric(work) == 15.0, timeout=20, interval=0.5, what="the metric of 30 waiting")
    assert scaler.IsActive(work, timeout=10).result is True
    idle = ref(amqp_vhost, queueName="idle")
    wait_for(lambda: settled_metric(idle) == 0.0, timeout=20, interval=0.5, what="the idle queue's metric")
    assert scaler.IsActive(idle, timeout=10).result is False
    # StreamIsActive: the activity at once.
    stream = scaler.StreamIsActive(work, timeout=10)
    assert next(stream).result is True
    stream.cancel()
    # StreamMetricSpec is KEDA's optional push of changed specs: UNIMPLEMENTED makes KEDA
    # fall back to GetMetricSpec (ours never changes for given metadata).
    with pytest.raises(grpc.RpcError) as unimplemented:
        next(scaler.StreamMetricSpec(work, timeout=10))
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unusable_metadata_and_unreadable_queues_are_errors_never_zero(scaler, amqp_vhost):
    with pytest.raises(grpc.RpcError) as bad:
        scaler.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(amqp_vhost, value="x")), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata.value" in bad.value.details()
    with pytest.raises(grpc.RpcError) as refused:
        scaler.IsActive(ref(amqp_vhost, host="http://elsewhere"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as missing:
        scaler.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(amqp_vhost, queueName="nope")), timeout=10)
    assert missing.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "404" in missing.value.details()
