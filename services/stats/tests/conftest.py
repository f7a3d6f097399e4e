from __future__ import annotations

from collections.abc import Callable

import pytest

from offload_stats.store import RedisStatsStore, SqliteStatsStore
from offload_testkit.processes import ServiceProcess
from offload_testkit.stack import start_stats_runner


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/stats.db"
    return request.getfixturevalue("redis_url")


@pytest.fixture
def store(store_url):
    if store_url.startswith("sqlite"):
        return SqliteStatsStore(store_url.removeprefix("sqlite:///"))
    return RedisStatsStore(store_url)


@pytest.fixture
def stats_runner(core_config, tmp_path) -> Callable[..., ServiceProcess]:
    """Starts the stats runner process on the test's vhost and `store_url`; env overrides."""

    def start(store_url: str, name: str = "stats", **env: str) -> ServiceProcess:
        environment = {
            "OFFLOAD_AMQP_URL": core_config.amqp_url,
            "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
            "OFFLOAD_RECONNECT_MAX_DELAY": "1",
            "OFFLOAD_STATS_STORE_URL": store_url,
            "OFFLOAD_LOG_FORMAT": "text",
            **env,
        }
        return start_stats_runner(environment, tmp_path, name=name).process

    return start
