"""Real broker + management API + local process pool: runners follow the queue."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from offload_autoscaler.controller import Autoscaler, ScaledObjectController
from offload_autoscaler.decision import Observation
from offload_autoscaler.spec import parse_scaled_object
from offload_autoscaler.targets import LocalProcessPool
from offload_core.publisher import Publisher
from offload_core.topology import Topology, WorkQueue
from offload_testkit.amqp import wait_for
from offload_testkit.messages import signup

TOPOLOGY = Topology((WorkQueue("t.work", ("signup.created.*",)),), delay_tiers=(0.5,))
RUNNER = str(Path(__file__).with_name("pool_runner.py"))

pytestmark = pytest.mark.slow


def spec_for(rabbitmq_broker, vhost, tmp_path, slow: float, **overrides):
    raw = {
        "name": "runners",
        "scaleTargetRef": {
            "kind": "LocalProcessPool",
            "name": "runners",
            "command": [sys.executable, RUNNER],
            "env": {
                "OFFLOAD_AMQP_URL": rabbitmq_broker.amqp_url(vhost),
                "SLOW_SECONDS": str(slow),
                "RECORD_FILE": str(tmp_path / "done.txt"),
                "OFFLOAD_PREFETCH": "1",
                "OFFLOAD_WORKER_THREADS": "1",
                "OFFLOAD_LOG_LEVEL": "WARNING",
            },
        },
        "pollingInterval": 0.5,
        "cooldownPeriod": 2,
        "minReplicaCount": 0,
        "maxReplicaCount": 3,
        "advanced": {
            "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 1}}}
        },
        "triggers": [
            {
                "type": "rabbitmq",
                "metadata": {
                    "protocol": "http",
                    "mode": "QueueLength",
                    "queueName": "t.work",
                    "value": "10",
                    "vhostName": vhost,
                    "host": rabbitmq_broker.management_url_with_credentials(),
                },
            }
        ],
    } | overrides
    return parse_scaled_object(raw, "test")


class Running:
    def __init__(self, spec) -> None:
        self.pool = LocalProcessPool(spec.target.command, dict(spec.target.env))
        self.controller = ScaledObjectController.create(spec, self.pool, time.monotonic())
        self.autoscaler = Autoscaler([self.controller])
        self.history: list[int] = []
        self.thread = threading.Thread(target=self.autoscaler.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def replicas(self) -> int:
        count = len(self.pool.running)
        self.history.append(count)
        return count

    def __exit__(self, *exc) -> None:
        self.autoscaler.stop()
        self.thread.join(10)
        self.pool.close()


@pytest.fixture
def fill(core_config):
    def publish(count: int) -> None:
        publisher = Publisher(core_config, TOPOLOGY).start()
        assert publisher.wait_ready(10)
        futures = [publisher.publish_async(signup()) for _ in range(count)]
        for f in futures:
            f.result(10)
        publisher.close()

    return publish


def test_a_backlog_scales_runners_up_and_draining_brings_them_back_to_zero(
    rabbitmq_broker, amqp_vhost, fill, tmp_path
):
    fill(60)
    with Running(spec_for(rabbitmq_broker, amqp_vhost, tmp_path, slow=0.15)) as running:
        wait_for(lambda: running.replicas() == 3, timeout=30, what="scaled up to max 3")
        done = tmp_path / "done.txt"
        wait_for(
            lambda: done.exists() and len(done.read_text().splitlines()) >= 60, timeout=60, what="all handled"
        )
        wait_for(lambda: running.replicas() == 0, timeout=30, what="back to zero after cooldown")
    assert max(running.history) == 3


def test_a_long_in_flight_message_blocks_one_to_zero_until_it_is_acked(
    rabbitmq_broker, amqp_vhost, fill, tmp_path
):
    fill(1)
    # Counting ready messages only (as KEDA's amqp mode does), the queue looks empty while the
    # runner still works: that is where KEDA scales to zero mid-message.
    spec = spec_for(rabbitmq_broker, amqp_vhost, tmp_path, slow=15, cooldownPeriod=1)
    ready_only = spec.triggers[0].__class__(**{**spec.triggers[0].__dict__, "exclude_unacknowledged": True})
    spec = spec.__class__(**{**spec.__dict__, "triggers": (ready_only,)})
    with Running(spec) as running:
        wait_for(lambda: running.replicas() == 1, timeout=20, what="one runner")
        source, trigger = running.controller.sources[0], running.controller.spec.triggers[0]
        # The management API's figures lag a few seconds: wait until it shows the message in flight.
        wait_for(lambda: source.read(trigger) == Observation(0.0, 1), timeout=20, what="0 ready, 1 unacked")
        time.sleep(1.5)  # past cooldownPeriod: KEDA would scale to zero mid-message here
        assert running.replicas() == 1
        assert "unacked" in running.controller.last_decision.reason
        wait_for(lambda: (tmp_path / "done.txt").exists(), timeout=30, what="the message finished")
        wait_for(lambda: running.replicas() == 0, timeout=30, what="zero after the ack")


def test_management_api_down_means_fallback_replicas(rabbitmq_broker, amqp_vhost, tmp_path):
    spec = spec_for(
        rabbitmq_broker, amqp_vhost, tmp_path, slow=0, fallback={"failureThreshold": 2, "replicas": 2}
    )
    broken = spec.triggers[0].__class__(
        **{**spec.triggers[0].__dict__, "host": "http://guest:guest@127.0.0.1:9"}
    )
    spec = spec.__class__(**{**spec.__dict__, "triggers": (broken,)})
    with Running(spec) as running:
        wait_for(lambda: running.replicas() == 2, timeout=20, what="fallback replicas")
        assert max(running.controller.state.failures) > 2


def test_each_process_gets_the_lowest_free_slot_in_its_env(tmp_path):
    """`{slot}` in an env value: distinct per running process, reused once its holder exits."""
    script = (
        "import os, pathlib, sys, time; pathlib.Path(sys.argv[1], os.environ['SLOT']).touch(); time.sleep(60)"
    )
    pool = LocalProcessPool([sys.executable, "-c", script, str(tmp_path)], {"SLOT": "port-911{slot}"})
    try:
        pool.scale(3)
        wait_for(lambda: len(list(tmp_path.iterdir())) == 3, timeout=10, what="three processes")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["port-9110", "port-9111", "port-9112"]
        pool.scale(2)  # the newest (slot 2) stops; its slot is free once it has exited
        wait_for(lambda: pool.current() == 2 and not pool.stopping, timeout=10, what="slot 2 released")
        for marker in tmp_path.iterdir():
            marker.unlink()
        pool.scale(3)
        wait_for(
            lambda: [p.name for p in tmp_path.iterdir()] == ["port-9112"], timeout=10, what="slot 2 again"
        )
    finally:
        pool.close(timeout=5)


def test_expected_wait_time_sizes_the_pool_from_the_throughput_it_measures(
    rabbitmq_broker, amqp_vhost, fill, tmp_path
):
    """ExpectedWaitTime on the real management API: a backlog of 240 at a 3 s target, with a
    first guess of 1000 messages/s per replica (one replica would do), is measured at about
    10/s per replica (0.1 s per message) once the pool is saturated, which asks for more
    runners while the backlog lasts (one replica alone would take 24 s); when the queue
    drains, the pool goes back to zero."""
    fill(240)
    metadata = {
        "protocol": "http",
        "mode": "ExpectedWaitTime",
        "queueName": "t.work",
        "value": "3",
        "initialThroughput": "1000",
        "vhostName": amqp_vhost,
        "host": rabbitmq_broker.management_url_with_credentials(),
    }
    spec = spec_for(
        rabbitmq_broker, amqp_vhost, tmp_path, slow=0.1, triggers=[{"type": "rabbitmq", "metadata": metadata}]
    )
    with Running(spec) as running:
        wait_for(lambda: running.replicas() >= 1, timeout=20, what="woken by the backlog")

        def measured() -> bool:
            estimate = running.controller.state.throughputs[0]
            return estimate is not None and estimate.measured

        wait_for(measured, timeout=30, what="a saturated poll measured the throughput")
        estimate = running.controller.state.throughputs[0]
        assert estimate is not None and 2.0 <= estimate.per_replica <= 30.0, estimate
        wait_for(lambda: running.replicas() >= 2, timeout=20, what="more runners for the measured throughput")
        done = tmp_path / "done.txt"
        wait_for(lambda: len(done.read_text().splitlines()) >= 240, timeout=60, what="all handled")
        wait_for(lambda: running.replicas() == 0, timeout=30, what="back to zero after cooldown")
