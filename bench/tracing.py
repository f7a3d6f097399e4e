"""What traces cost the messaging core: one private broker, one private Jaeger v2, one run.

The same two measurements of bench/core.py, pipelined confirmed publishes and no-op
consumption, each run in a child process three ways: tracing off (no endpoint: the
default), tracing on with every span exported over OTLP/HTTP to the Jaeger, and tracing on
with the sampler off (`OTEL_TRACES_SAMPLER=always_off`: context still propagated, nothing
recorded). The tracer provider is process-wide, so each way is a process of its own.
Prints `bench` lines and `ratio <way>_vs_off` lines. Jaeger shares the machine's cores with
the child, as a collector on the same node would.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

WAYS = {
    "off": {},
    "exported": {"OTEL_BSP_SCHEDULE_DELAY": "200"},
    "unsampled": {"OTEL_TRACES_SAMPLER": "always_off"},
}


def child(url: str, publish_count: int, consume_count: int) -> dict[str, float]:
    from bench.core import TOPOLOGY, bench_core_pipelined, bench_core_runner, purge
    from offload_core import tracing
    from offload_core.config import CoreConfig
    from offload_core.topology import declare

    tracing.configure("bench")
    config = dataclasses.replace(
        CoreConfig(), amqp_url=url, prefetch=100, worker_threads=4, confirm_timeout=30
    )
    declare(url, TOPOLOGY)
    purge(url)
    published = bench_core_pipelined(config, publish_count)
    purge(url)
    consumed = bench_core_runner(config, consume_count)
    tracing.shutdown()
    return {"publish": published, "consume": consumed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publish-count", type=int, default=6000)
    parser.add_argument("--consume-count", type=int, default=5000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.publish_count, args.consume_count)))
        return 0

    from bench.common import private_broker
    from offload_testkit.jaeger import PrivateJaeger

    results: dict[str, dict[str, float]] = {}
    with private_broker() as (broker, workdir):
        url = broker.amqp_url(broker.create_vhost("bench"))
        jaeger = PrivateJaeger(workdir).start()
        try:
            for way, extra in WAYS.items():
                env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
                if way != "off":
                    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint, **extra}
                counts = [
                    "--publish-count",
                    str(args.publish_count),
                    "--consume-count",
                    str(args.consume_count),
                ]
                argv = [sys.executable, "-m", "bench.tracing", "--child", url, *counts]
                out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
                results[way] = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            jaeger.stop()
    for way, rates in results.items():
        print(f"bench core_publisher_pipelined_tracing_{way}: {rates['publish']:.0f} msgs/s")
        print(f"bench core_runner_noop_tracing_{way}: {rates['consume']:.0f} msgs/s")
    for way in ("exported", "unsampled"):
        for what, name in (("publish", "core_publisher_pipelined"), ("consume", "core_runner_noop")):
            print(f"ratio {name}_tracing_{way}_vs_off: {results[way][what] / results['off'][what]:.2f}")
    return 0


ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    sys.exit(main())
