from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload_core.publisher import Publisher
from offload_core.topology import stack_topology
from offload_stats.store import RedisStatsStore, SqliteStatsStore

sys.path.insert(0, str(Path(__file__).parent))


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
def stack_publisher(core_config) -> Iterator[Publisher]:
    publisher = Publisher(core_config, stack_topology(core_config.delay_tiers)).start()
    assert publisher.wait_ready(10)
    yield publisher
    publisher.close()
