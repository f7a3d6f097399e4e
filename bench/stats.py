"""Stats benchmark: events/s ingested by one runner process, per store, batched vs not; and
the Redis store's memory after a million hostile requests.

The same backlog of http.request events is drained four times (SQLite, Redis) x
(batch 200, batch 1), each by a fresh runner process on its own vhost.

Memory: 1 M requests, each reported by the web's own `request_report` from a WSGI environ
and sent in batches of the web's size, applied to a fresh Redis store; once with a distinct
2 kB path and user agent per request (a stranger's), once with one path and one agent.
Printed: used_memory above an empty Redis for each, and their ratio (goal: <= 1.1, <= 50 MB).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
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
from offload_stats.counting import increments
from offload_stats.store import RedisStatsStore, open_store
from offload_testkit.amqp import wait_for
from offload_testkit.processes import ServiceProcess, free_port
from offload_testkit.redis_server import PrivateRedis
from offload_web.analytics import MAX_BATCH, request_report


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


def used_memory_mb(redis_url: str, requests: int, hostile: bool) -> float:
    """Redis memory the stats store holds after `requests` requests, above an empty Redis."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    store = RedisStatsStore(redis_url)
    store.apply([])  # the script loaded: the baseline holds all but the data
    empty = int(client.info("memory")["used_memory"])
    for start in range(0, requests, MAX_BATCH):
        reports = []
        for i in range(start, min(start + MAX_BATCH, requests)):
            if hostile:
                path, agent = "/" + os.urandom(1023).hex(), "x" + os.urandom(1023).hex()
            else:
                path, agent = "/", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "HTTP_USER_AGENT": agent}
            if not hostile:
                environ["offload.route"] = "/"  # what the web's request hook records for a matched rule
            report = request_report(environ, "404 NOT FOUND" if hostile else "200 OK", [], 0.001)
            reports.append(report | {"id": f"r{i}"})
        store.apply([increments(Envelope("http.request.batch", {"requests": reports}))])
    assert store.counters("requests")["total"] == requests
    return (int(client.info("memory")["used_memory"]) - empty) / 1e6


def memory(requests: int) -> None:
    found = {}
    for hostile in (True, False):  # a fresh Redis each: nothing left over from the other run
        with tempfile.TemporaryDirectory() as scratch:
            redis_server = PrivateRedis(Path(scratch)).start()
            try:
                found[hostile] = used_memory_mb(redis_server.url, requests, hostile=hostile)
            finally:
                redis_server.stop()
    hostile, one_path = found[True], found[False]
    print(f"bench stats_redis_used_memory_mb_hostile: {hostile:.2f} MB after {requests} requests")
    print(f"bench stats_redis_used_memory_mb_one_path: {one_path:.2f} MB after {requests} requests")
    print(f"ratio stats_memory_hostile_vs_one_path: {hostile / one_path:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--memory-requests", type=int, default=1_000_000)
    parser.add_argument("--memory-only", action="store_true", help="only the memory part")
    args = parser.parse_args()
    memory(args.memory_requests)
    if args.memory_only:
        return 0
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
