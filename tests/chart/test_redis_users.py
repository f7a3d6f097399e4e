"""The built-in Redis users as the chart renders them, on a real redis-server started with
the StatefulSet's own arguments: each service reaches its keys and nothing else, the stats
API only reads, and the default user (the control) may do all of it."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from offload_testkit.k8s_tools import tool
from offload_testkit.processes import free_port

CHART = Path(__file__).resolve().parents[2] / "charts" / "offload"


def render(*sets: str) -> list[dict[str, Any]]:
    args = [tool("helm"), "template", "r", str(CHART)]
    for value in sets:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def workload(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [found] = [
        d for d in docs if d["metadata"]["name"] == name and d["kind"] in ("Deployment", "StatefulSet")
    ]
    return found["spec"]["template"]["spec"]


def expand(text: str, values: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion."""
    return re.sub(r"\$\(([A-Z_]+)\)", lambda m: values.get(m.group(1), m.group(0)), text)


def container_env(spec: dict[str, Any], secret: dict[str, str]) -> dict[str, str]:
    """A container's env with secretKeyRefs resolved and $(VAR) expanded, in order."""
    values: dict[str, str] = {}
    for entry in spec["containers"][0]["env"]:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] == "r-offload-redis":
            values[entry["name"]] = secret[ref["key"]]
        elif "value" in entry:
            values[entry["name"]] = expand(entry["value"], values)
    return values


@pytest.fixture(scope="module")
def chart_redis(tmp_path_factory) -> Iterator[tuple[dict[str, redis.Redis], dict[str, int]]]:
    """Both of the chart's Redis instances, each a redis-server with the rendered arguments,
    and a client per service from the URL its pod would get."""
    docs = render()
    [secret_doc] = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "r-offload-redis"]
    secret = secret_doc["stringData"]
    servers: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    for instance in ("r-offload-redis", "r-offload-stats-redis"):
        spec = workload(docs, instance)
        env = container_env(spec, secret)
        args = [expand(a, env) for a in spec["containers"][0]["args"]]
        args[args.index("--dir") + 1] = str(tmp_path_factory.mktemp(instance))
        ports[instance] = free_port()
        servers.append(
            subprocess.Popen(
                ["redis-server", *args, "--port", str(ports[instance]), "--bind", "127.0.0.1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    clients: dict[str, redis.Redis] = {}
    for name, variable, instance in (
        ("r-offload-web", "OFFLOAD_WEB_RATE_LIMIT_STORAGE", "r-offload-redis"),
        ("r-offload-mailer", "OFFLOAD_REDIS_URL", "r-offload-redis"),
        ("r-offload-stats-runner", "OFFLOAD_STATS_STORE_URL", "r-offload-stats-redis"),
        ("r-offload-stats-api", "OFFLOAD_STATS_STORE_URL", "r-offload-stats-redis"),
    ):
        url = container_env(workload(docs, name), secret)[variable]
        local = re.sub(r"@[^/]+/", f"@127.0.0.1:{ports[instance]}/", url)
        clients[name.removeprefix("r-offload-")] = redis.Redis.from_url(local, decode_responses=True)
    for instance, port in ports.items():
        clients[f"default@{instance}"] = redis.Redis(
            port=port, password=secret["password"], decode_responses=True
        )
    deadline = time.monotonic() + 20
    while True:
        try:
            assert all(c.ping() for c in clients.values())
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield clients, ports
    for server in servers:
        server.terminate()
        server.wait(10)


def refused(call: Callable[[], object]) -> bool:
    try:
        call()
    except redis.exceptions.NoPermissionError:
        return True
    return False


def test_each_service_reaches_its_keys_and_no_other(chart_redis):
    clients, _ = chart_redis
    assert clients["web"].set("offload:web:probe", "1")
    assert clients["mailer"].set("offload:mailer:probe", "1")
    assert clients["stats-runner"].hincrby("offload:stats:c:probe", "k", 1) == 1
    assert refused(lambda: clients["web"].set("offload:mailer:sent:probe", "1"))
    assert refused(lambda: clients["mailer"].get("offload:web:probe"))
    assert refused(lambda: clients["mailer"].flushall())
    assert refused(lambda: clients["stats-runner"].keys("*"))
    # Control: the default user, which every store used before, may do each of those.
    default = clients["default@r-offload-redis"]
    assert default.set("offload:mailer:sent:probe", "1") and default.get("offload:web:probe") == "1"
    assert isinstance(clients["default@r-offload-stats-redis"].keys("*"), list)


def test_the_stats_api_only_reads(chart_redis):
    clients, _ = chart_redis
    clients["stats-runner"].hset("offload:stats:c:signups", "pear", 3)
    assert clients["stats-api"].hgetall("offload:stats:c:signups") == {"pear": "3"}
    assert refused(lambda: clients["stats-api"].hset("offload:stats:c:signups", "pear", 99))
    assert refused(lambda: clients["stats-api"].delete("offload:stats:c:signups"))
    assert refused(lambda: clients["stats-api"].eval("return 1", 0))
    # Control: the runner's user, same keys, may write.
    assert clients["stats-runner"].hset("offload:stats:c:signups", "apple", 1) == 1


def test_the_stores_run_as_their_users(chart_redis):
    """The real stores (Lua scripts, pipelines) work with the users' rights."""
    from offload_mailer.store import RedisSentStore
    from offload_stats.counting import Increments
    from offload_stats.store import RedisStatsStore

    clients, _ = chart_redis

    def url(client: redis.Redis) -> str:
        kwargs = client.connection_pool.connection_kwargs
        return f"redis://{kwargs['username']}:{kwargs['password']}@127.0.0.1:{kwargs['port']}/0"

    minute = int(time.time() // 60)
    runner = RedisStatsStore(url(clients["stats-runner"]))
    assert runner.apply([Increments("e-1", (("fruit", "kiwi", 1),), (("signups", minute, 1),))]) == 1
    api = RedisStatsStore(url(clients["stats-api"]))
    assert api.counters("fruit") == {"kiwi": 1} and api.series("signups", minute, minute) == {minute: 1}
    assert api.ping()
    mailer = RedisSentStore(url(clients["mailer"]))
    assert mailer.claim("s-1", "owner-a", 30) and not mailer.claim("s-1", "owner-b", 30)
    assert mailer.claim_address("a@example.org", "s-1", 30) == "s-1"
    mailer.mark_sent("s-1")
    mailer.release("s-1", "owner-a")
    assert mailer.was_sent("s-1")
