"""Autoscaler modes side by side: QueueLength at three values and ExpectedWaitTime at one
target, each on the same load against real mailers (offload-mailer processes in a local
pool) sending to an SMTP sink that takes 50 ms per mail.

The load, the same for every run: two bursts of --burst signups 20 s apart, then a ramp from
5 to 40 signups/s and back over 60 s. Each mailer runs one worker thread with prefetch 1,
about 20 mails/s. For each run it prints the time from publish to the mail reaching the sink
(time on queue plus the 50 ms send, which is what the signer-up waits for; p50, p95, p99),
the share of mails over the target, and the replica-seconds the pool ran, then

    ratio toq_replica_seconds_vs_best_queue_length: ExpectedWaitTime's replica-seconds over
        those of the cheapest QueueLength run that also kept p95 under the target
    bench toq_p95_time_on_queue_s: ExpectedWaitTime's p95 (target ...)

Goal: p95 under the target with fewer replica-seconds than every QueueLength run that meets
it. Every run's pool scales down after a 10 s stabilization window (the HPA's default 300 s
would bill the same idle tail to every run and hide the difference).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common import private_broker

from offload_autoscaler.controller import Autoscaler, ScaledObjectController
from offload_autoscaler.spec import parse_scaled_object
from offload_autoscaler.targets import LocalProcessPool
from offload_core.config import CoreConfig
from offload_core.publisher import Publisher
from offload_core.topology import stack_topology
from offload_testkit.messages import signup
from offload_testkit.smtp import SmtpSink

MAILER = str(Path(sys.executable).with_name("offload-mailer"))
SEND_SECONDS = 0.05


@dataclass(frozen=True)
class Mode:
    name: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class RunResult:
    mode: Mode
    p50: float
    p95: float
    p99: float
    over_target: float  # share of mails later than the target
    replica_seconds: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spec_for(broker, vhost: str, workdir: Path, smtp_port: int, mode: Mode, max_replicas: int):  # type: ignore[no-untyped-def]
    return parse_scaled_object(
        {
            "name": mode.name,
            "scaleTargetRef": {
                "kind": "LocalProcessPool",
                "name": "mailer",
                "command": [MAILER],
                "env": {
                    "OFFLOAD_AMQP_URL": broker.amqp_url(vhost),
                    "OFFLOAD_MAILER_BACKEND": "smtp",
                    "OFFLOAD_SMTP_HOST": "127.0.0.1",
                    "OFFLOAD_SMTP_PORT": str(smtp_port),
                    "OFFLOAD_SMTP_SECURITY": "none",
                    "OFFLOAD_MAILER_STORE_URL": f"sqlite:///{workdir}/{vhost}-sent.db",
                    "OFFLOAD_MAILER_STATUS_PORT": "0",
                    "OFFLOAD_WORKER_THREADS": "1",
                    "OFFLOAD_PREFETCH": "1",
                    "OFFLOAD_LOG_LEVEL": "WARNING",
                },
            },
            "pollingInterval": 1,
            "cooldownPeriod": 10,
            "minReplicaCount": 0,
            "maxReplicaCount": max_replicas,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}
                }
            },
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "http",
                        "useRegex": "true",
                        "queueNameRegex": r"^mailer\.signups\.(high|low)$",
                        "operation": "sum",
                        "vhostName": vhost,
                        "host": broker.management_url_with_credentials(),
                        **mode.metadata,
                    },
                }
            ],
        },
        "bench",
    )


def load(publisher: Publisher, burst: int, sent_at: dict[str, float]) -> None:
    """Two bursts 20 s apart, then a ramp 5 -> 40 -> 5 signups/s over 60 s."""

    def send(count: int) -> None:
        envelopes = [signup() for _ in range(count)]
        now = time.monotonic()  # the sink stamps receipts with the same clock
        futures = [publisher.publish_async(e) for e in envelopes]
        for envelope in envelopes:
            sent_at[envelope.data["email"]] = now
        for future in futures:
            future.result(30)

    for _ in range(2):
        send(burst)
        time.sleep(20)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < 60:
        rate = 5 + 35 * (1 - abs(elapsed - 30) / 30)  # 5 -> 40 -> 5
        send(max(1, round(rate / 10)))
        time.sleep(0.1)


def run(broker, workdir: Path, mode: Mode, args: argparse.Namespace) -> RunResult:  # type: ignore[no-untyped-def]
    sink = SmtpSink(delay=SEND_SECONDS).start()
    vhost = broker.create_vhost(f"modes-{mode.name}")
    config = CoreConfig(amqp_url=broker.amqp_url(vhost), confirm_timeout=30)
    publisher = Publisher(config, stack_topology()).start()
    assert publisher.wait_ready(10)
    spec = spec_for(broker, vhost, workdir, sink.port, mode, args.max_replicas)
    pool = LocalProcessPool(spec.target.command, dict(spec.target.env))
    autoscaler = Autoscaler([ScaledObjectController.create(spec, pool, time.monotonic())])
    thread = threading.Thread(target=autoscaler.run, daemon=True)
    thread.start()
    replica_seconds = 0.0
    stop = threading.Event()

    def meter() -> None:
        nonlocal replica_seconds
        last = time.monotonic()
        while not stop.wait(0.2):
            now = time.monotonic()
            replica_seconds += len(pool.running) * (now - last)
            last = now

    metering = threading.Thread(target=meter, daemon=True)
    metering.start()
    sent_at: dict[str, float] = {}
    try:
        time.sleep(6)  # a new queue gets its first management figures after a few seconds
        load(publisher, args.burst, sent_at)
        deadline = time.monotonic() + 300
        while sink.count() < len(sent_at):
            if time.monotonic() > deadline:
                raise SystemExit(f"{mode.name}: {sink.count()} of {len(sent_at)} mails after 300 s")
            time.sleep(0.1)
        while pool.current() > 0 and time.monotonic() < deadline:  # the idle tail counts too
            time.sleep(0.1)
    finally:
        stop.set()
        metering.join(2)
        autoscaler.stop()
        thread.join(5)
        pool.close()
        publisher.close()
        received = sink.snapshot()
        sink.stop()
    waits = [r.at - sent_at[r.recipients[0]] for r in received if r.recipients[0] in sent_at]
    target = args.target
    return RunResult(
        mode,
        percentile(waits, 0.5),
        percentile(waits, 0.95),
        percentile(waits, 0.99),
        sum(1 for w in waits if w > target) / len(waits),
        replica_seconds,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=300, help="signups per burst")
    parser.add_argument("--target", type=float, default=5.0, help="seconds of wait ExpectedWaitTime aims at")
    parser.add_argument("--queue-lengths", type=int, nargs=3, default=(10, 40, 160))
    parser.add_argument("--max-replicas", type=int, default=8)
    parser.add_argument("--only", nargs="+", help="run only these modes (queue-length-N, expected-wait)")
    args = parser.parse_args()
    modes = [Mode(f"queue-length-{v}", {"mode": "QueueLength", "value": str(v)}) for v in args.queue_lengths]
    modes.append(
        Mode(
            "expected-wait",
            {"mode": "ExpectedWaitTime", "value": str(args.target), "initialThroughput": "20"},
        )
    )
    if args.only:
        modes = [m for m in modes if m.name in args.only]
    results = []
    with private_broker() as (broker, workdir):
        for mode in modes:
            result = run(broker, workdir, mode, args)
            results.append(result)
            print(
                f"bench autoscaler_mode_{mode.name.replace('-', '_')}: p50 {result.p50:.2f} s, "
                f"p95 {result.p95:.2f} s, p99 {result.p99:.2f} s, over {args.target:g} s "
                f"{100 * result.over_target:.1f}%, {result.replica_seconds:.0f} replica-seconds",
                flush=True,
            )
    if results[-1].mode.name != "expected-wait":
        return 0
    waiting = results[-1]
    meeting = [r for r in results[:-1] if r.p95 <= args.target]
    if meeting:
        best = min(meeting, key=lambda r: r.replica_seconds)
        ratio = waiting.replica_seconds / best.replica_seconds
        print(f"ratio toq_replica_seconds_vs_best_queue_length: {ratio:.2f} (against {best.mode.name})")
    else:
        print("ratio toq_replica_seconds_vs_best_queue_length: none (no QueueLength run met the target)")
    print(f"bench toq_p95_time_on_queue_s: {waiting.p95:.2f} (target {args.target:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
