"""Autoscaler benchmark: reaction time and flapping, with a real broker and a local pool.

- reaction: seconds from a backlog crossing the activation threshold (the publish
  confirmed) to the scale call, sampled --samples times at random phases of the 1 s poll
  (p50 / p95 / max; the http protocol includes the management API's sampling lag). Between
  samples the queue is emptied and the pool scales back to zero (cooldownPeriod 2 s);
- flapping: scale changes over --steady-seconds after 30 s of settling, under a load a
  little above what one runner handles (one worker thread, 50 ms per message: about 20/s),
  so the wanted replica count sits at the 1 -> 2 threshold. Up is at once; down waits for
  the HPA's default scale-down stabilization (300 s), so changes come in pairs at most
  about once per 300 s; anything faster is flapping.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import threading
import time
from pathlib import Path

from common import private_broker

from offload_autoscaler.controller import Autoscaler, ScaledObjectController
from offload_autoscaler.spec import parse_scaled_object
from offload_autoscaler.targets import LocalProcessPool
from offload_core.config import CoreConfig
from offload_core.publisher import Publisher
from offload_core.topology import Topology, WorkQueue
from offload_testkit.messages import signup

TOPOLOGY = Topology((WorkQueue("t.work", ("signup.created.*",)),), delay_tiers=(0.5,))
RUNNER = str(Path(__file__).resolve().parents[1] / "services/autoscaler/tests/pool_runner.py")


class CountingPool(LocalProcessPool):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[float, int]] = []

    def scale(self, replicas: int) -> None:
        self.calls.append((time.monotonic(), replicas))
        super().scale(replicas)


def make_spec(broker, vhost: str, workdir: Path, protocol: str, cooldown: int):
    url = broker.amqp_url(vhost)
    host = broker.management_url_with_credentials() if protocol == "http" else url
    return parse_scaled_object(
        {
            "name": f"runners-{protocol}",
            "scaleTargetRef": {
                "kind": "LocalProcessPool",
                "name": "runners",
                "command": [sys.executable, RUNNER],
                "env": {
                    "OFFLOAD_AMQP_URL": url,
                    "SLOW_SECONDS": "0.05",
                    "OFFLOAD_WORKER_THREADS": "1",
                    "OFFLOAD_PREFETCH": "1",
                    "RECORD_FILE": str(workdir / "done.txt"),
                    "OFFLOAD_LOG_LEVEL": "WARNING",
                },
            },
            "pollingInterval": 1,
            "cooldownPeriod": cooldown,
            "minReplicaCount": 0,
            "maxReplicaCount": 4,
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": protocol,
                        "queueName": "t.work",
                        "value": "20",
                        "vhostName": vhost,
                        "host": host,
                    },
                }
            ],
        },
        "bench",
    )


class Running:
    def __init__(self, broker, workdir: Path, protocol: str, cooldown: int = 30) -> None:
        self.vhost = broker.create_vhost(f"bench-{protocol}-{cooldown}")
        self.amqp_url = broker.amqp_url(self.vhost)
        spec = make_spec(broker, self.vhost, workdir, protocol, cooldown)
        self.publisher = Publisher(
            dataclasses.replace(CoreConfig(), amqp_url=broker.amqp_url(self.vhost)), TOPOLOGY
        )
        self.publisher.start().wait_ready(10)
        self.pool = CountingPool(spec.target.command, dict(spec.target.env))
        self.autoscaler = Autoscaler([ScaledObjectController.create(spec, self.pool, time.monotonic())])
        self.thread = threading.Thread(target=self.autoscaler.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.autoscaler.stop()
        self.thread.join(5)
        self.pool.close()
        self.publisher.close()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


def reactions(running: Running, samples: int) -> list[float]:
    """Each sample: from zero replicas and an empty queue, one message after a random part
    of the poll interval, timed to the scale call that wakes the pool."""
    found = []
    wait_until(lambda: running.pool.current() == 0, 60, "the pool at zero")
    time.sleep(8)  # a new queue gets its first management figures after a few seconds
    for _ in range(samples):
        time.sleep(random.uniform(0, 1.0))  # a random phase of the 1 s polling interval
        calls = len(running.pool.calls)
        crossed = time.monotonic()
        running.publisher.publish(signup())  # 1 message > activationValue 0
        woken = lambda c=calls: [t for t, replicas in running.pool.calls[c:] if replicas > 0]  # noqa: E731
        wait_until(woken, 30, "the scale call")
        found.append(woken()[0] - crossed)
        # Back to zero: the runner takes the message, the cooldown passes, the pool scales in.
        wait_until(lambda: running.pool.calls[-1][1] == 0, 60, "the pool back at zero")
        wait_until(lambda: running.pool.current() == 0, 60, "the runner stopped")
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20, help="reaction samples per protocol")
    parser.add_argument("--steady-seconds", type=int, default=600, help="window counted after settling")
    parser.add_argument("--steady-rate", type=float, default=22.0, help="just above one runner's ~20/s")
    args = parser.parse_args()
    with private_broker() as (broker, workdir):
        found: dict[str, list[float]] = {}
        for protocol in ("amqp", "http"):
            sampling = Running(broker, workdir, protocol, cooldown=2)
            found[protocol] = reactions(sampling, args.samples)
            sampling.close()
        running = Running(broker, workdir, "http")
        # A load at the 1 -> 2 threshold; count changes after 30 s of settling.
        settle = 30
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < args.steady_seconds + settle:
            running.publisher.publish(signup())
            sent += 1
            pause = started + sent / args.steady_rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        changes = [c for c in running.pool.calls if c[0] >= started + settle]
        replicas = running.pool.current()
        running.close()
    per_10_min = len(changes) * 600 / args.steady_seconds
    for protocol, values in found.items():
        p50, p95, worst = percentile(values, 0.5), percentile(values, 0.95), max(values)
        print(
            f"bench autoscaler_reaction_seconds_{protocol}: p50 {p50:.2f} s, p95 {p95:.2f} s,"
            f" max {worst:.2f} s over {len(values)} samples (goal p95 <= 2)"
        )
        print(f"ratio autoscaler_reaction_{protocol}_p95_vs_goal: {p95 / 2:.2f}")
    print(
        f"bench autoscaler_scale_changes_at_threshold: {len(changes)} in {args.steady_seconds} s "
        f"({per_10_min:.1f} per 10 min at {args.steady_rate:g} msgs/s, {replicas} replica(s) at the end:"
        f" {' '.join(str(n) for _, n in changes)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
