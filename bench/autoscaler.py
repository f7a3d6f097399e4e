"""Autoscaler benchmark: reaction time and flapping, with a real broker and a local pool.

- seconds from a backlog crossing the activation threshold (the publish confirmed) to
  the scale call (pollingInterval 1 s; includes the management API's sampling lag);
- scale changes under a steady load the runners keep up with, over 10 minutes after
  30 s of settling (goal: no flapping).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from pathlib import Path

from common import private_broker

from offload_autoscaler.controller import Autoscaler, ScaledObjectController
from offload_autoscaler.spec import parse_scaled_object
from offload_autoscaler.targets import LocalProcessPool
from offload_core.config import CoreConfig
from offload_core.envelope import Envelope
from offload_core.publisher import Publisher
from offload_core.topology import Topology, WorkQueue

TOPOLOGY = Topology((WorkQueue("t.work", ("signup.created.*",)),), delay_tiers=(0.5,))
RUNNER = str(Path(__file__).resolve().parents[1] / "services/autoscaler/tests/pool_runner.py")


def signup() -> Envelope:
    return Envelope(
        "signup.created", {"name": "A", "email": "a@example.com", "fruit": "kiwi", "lane": "high"}
    )


class CountingPool(LocalProcessPool):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[float, int]] = []

    def scale(self, replicas: int) -> None:
        self.calls.append((time.monotonic(), replicas))
        super().scale(replicas)


def make_spec(broker, vhost: str, workdir: Path, protocol: str):
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
                    "RECORD_FILE": str(workdir / "done.txt"),
                    "OFFLOAD_LOG_LEVEL": "WARNING",
                },
            },
            "pollingInterval": 1,
            "cooldownPeriod": 30,
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
    def __init__(self, broker, workdir: Path, protocol: str) -> None:
        self.vhost = broker.create_vhost(f"bench-{protocol}")
        spec = make_spec(broker, self.vhost, workdir, protocol)
        self.publisher = Publisher(
            dataclasses.replace(CoreConfig(), amqp_url=broker.amqp_url(self.vhost)), TOPOLOGY
        )
        self.publisher.start().wait_ready(10)
        self.pool = CountingPool(spec.target_command, dict(spec.target_env))
        self.autoscaler = Autoscaler([ScaledObjectController.create(spec, self.pool, time.monotonic())])
        self.thread = threading.Thread(target=self.autoscaler.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.autoscaler.stop()
        self.thread.join(5)
        self.pool.close()
        self.publisher.close()


def reaction(running: Running) -> float:
    time.sleep(8)  # a new queue gets its first management figures after a few seconds
    crossed = time.monotonic()
    running.publisher.publish(signup())  # 1 message > activationValue 0
    while not running.pool.calls:
        time.sleep(0.01)
    return running.pool.calls[0][0] - crossed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steady-seconds", type=int, default=600, help="window counted after settling")
    parser.add_argument("--steady-rate", type=float, default=20.0)
    args = parser.parse_args()
    with private_broker() as (broker, workdir):
        amqp = Running(broker, workdir, "amqp")
        amqp_reaction = reaction(amqp)
        amqp.close()
        running = Running(broker, workdir, "http")
        http_reaction = reaction(running)
        # Steady load the pool keeps up with; count changes after 30 s of settling.
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
    print(f"bench autoscaler_reaction_seconds_amqp: {amqp_reaction:.2f} s (goal <= 2)")
    print(
        f"bench autoscaler_reaction_seconds_http: {http_reaction:.2f} s (goal <= 2; incl. management API lag)"
    )
    print(
        f"bench autoscaler_scale_changes_steady: {len(changes)} in {args.steady_seconds} s "
        f"({per_10_min:.1f} per 10 min at {args.steady_rate:g} msgs/s, {replicas} replica(s) at the end)"
    )
    print(f"ratio autoscaler_reaction_amqp_vs_goal: {amqp_reaction / 2:.2f}")
    print(f"ratio autoscaler_reaction_http_vs_goal: {http_reaction / 2:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
