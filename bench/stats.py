"""Stats benchmark: events/s ingested by one runner process, per store, batched vs not.

The same backlog of http.request events is drained four times (SQLite, Redis) x
(batch 200, batch 1), each by a fresh runner process on its own vhost.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import redis
from common import private_broker

from offload_core.config import CoreConfig
from offload_core.envelope import Envelope
from offload_core.publisher import Publisher
from offload_core.topology import stack_topology
from offload_stats.store import open_store
from offload_testkit.amqp import wait_for
from offload_testkit.processes import ServiceProcess, free_port
from offload_testkit.redis_server import PrivateRedis


def event(i: int) -> Envelope:
    data = {"method": "GET", "path": f"/p{i % 20}", "status": 200, "duration_ms": 1.0}
    data |= {"user_agent": f"ua{i % 7}", "headers": {}}
    return Envelope("http.request", data)


def drain_rate(broker, workdir: Path, store_url: str, count: int, batch: int) -> float:
    url = broker.amqp_url(broker.create_vhost(f"bench-{batch}-{store_url[:5]}"))
    publisher = Publisher(
        dataclasses.replace(CoreConfig(), amqp_url=url, confirm_timeout=60), stack_topology()
    )
    publisher.start().wait_ready(10)
    futures = [publisher.publish_async(event(i)) for i in range(count)]
    for f in futures:
        f.result(60)
    publisher.close()
    store = open_store(store_url)
    port = free_port()
    runner = ServiceProcess(
        [sys.executable, "-m", "offload_stats.runner_main"],
        env={"OFFLOAD_AMQP_URL": url, "OFFLOAD_STATS_STORE_URL": store_url,
             "OFFLOAD_STATS_BATCH_SIZE": str(batch), "OFFLOAD_STATS_STATUS_PORT": str(port),
             "OFFLOAD_LOG_LEVEL": "WARNING"},
        log_path=workdir / f"stats-{batch}.log",
        health_url=f"http://127.0.0.1:{port}/healthz",
    )  # fmt: skip
    started = time.perf_counter()
    runner.start()
    wait_for(
        lambda: store.counters("requests").get("total", 0) >= count, timeout=900, interval=0.1, what="drained"
    )
    elapsed = time.perf_counter() - started
    runner.terminate()
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=4000)
    args = parser.parse_args()
    results = {}
    with private_broker() as (broker, workdir), tempfile.TemporaryDirectory() as scratch:
        redis_server = PrivateRedis(Path(scratch)).start()
        try:
            for batch in (200, 1):
                for name in ("sqlite", "redis"):
                    redis.Redis.from_url(redis_server.url).flushdb()
                    url = f"sqlite:///{scratch}/stats-{batch}.db" if name == "sqlite" else redis_server.url
                    results[(name, batch)] = drain_rate(broker, workdir, url, args.count, batch)
        finally:
            redis_server.stop()
    for name in ("sqlite", "redis"):
        batched, single = results[(name, 200)], results[(name, 1)]
        print(f"bench stats_{name}_batched_200: {batched:.0f} events/s")
        print(f"bench stats_{name}_one_per_transaction: {single:.0f} events/s")
        print(f"ratio stats_{name}_batched_vs_single: {batched / single:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
