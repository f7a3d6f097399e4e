from __future__ import annotations

import sys
from pathlib import Path

import pytest

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
