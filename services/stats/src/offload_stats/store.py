"""Counts, exact under redelivery: a message id is counted once, in the same atomic step
that applies its increments (SQLite transaction / Redis Lua script), one per batch.

Bounds: the counter families hold bounded keys (routes, agent families, status classes,
fruits, lanes, mail outcomes); one dedupe mark per message for DEDUPE_TTL_SECONDS, and the
web sends at most one request message per worker per quarter second whatever the traffic
(up to 500 requests each), so the marks grow with the number of web workers, not with
requests; the per-minute series grow one field per minute each.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import redis

from offload_stats.counting import Increments

# Event ids are remembered this long; a redelivery later than that would count twice.
DEDUPE_TTL_SECONDS = 30 * 24 * 3600
# How often the SQLite store deletes the ids it no longer needs to remember.
PRUNE_INTERVAL_SECONDS = 3600

log = logging.getLogger("offload.stats.store")


class StatsStore(Protocol):
    def apply(self, batch: Sequence[Increments]) -> int:
        """Count every event not counted before, atomically; returns how many were new."""

    def counters(self, family: str) -> dict[str, int]: ...

    def series(self, name: str, first_minute: int, last_minute: int) -> dict[int, int]: ...

    def ping(self) -> bool: ...


_BUMP_COUNTER = (
    "INSERT INTO counters VALUES (?, ?, ?)"
    " ON CONFLICT (family, key) DO UPDATE SET value = value + excluded.value"
)
_BUMP_SERIES = (
    "INSERT INTO series VALUES (?, ?, ?)"
    " ON CONFLICT (name, minute) DO UPDATE SET value = value + excluded.value"
)


class SqliteStatsStore:
    """Counts in one SQLite file (WAL). The ids of counted events are kept for
    `dedupe_ttl` seconds, like the Redis store's keys, and pruned at most once per
    PRUNE_INTERVAL_SECONDS, so the file does not grow with every event ever counted."""

    def __init__(
        self, path: str, *, dedupe_ttl: int = DEDUPE_TTL_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY, seen_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS counters (
                family TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (family, key));
            CREATE TABLE IF NOT EXISTS series (
                name TEXT NOT NULL, minute INTEGER NOT NULL, value INTEGER NOT NULL,
                PRIMARY KEY (name, minute));
            """
        )
        self._dedupe_ttl = dedupe_ttl
        self._clock = clock
        self._migrate()
        self._db.execute("CREATE INDEX IF NOT EXISTS processed_seen_at ON processed (seen_at)")
        self._lock = threading.Lock()
        self._last_prune = float("-inf")

    def _migrate(self) -> None:
        # Files written before ids had a time: they count as seen now, and so are kept a full TTL.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(processed)")}
        if "seen_at" not in columns:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ALTER TABLE processed ADD COLUMN seen_at INTEGER NOT NULL DEFAULT 0")
            self._db.execute("UPDATE processed SET seen_at = ?", (int(self._clock()),))
            self._db.execute("COMMIT")

    def apply(self, batch: Sequence[Increments]) -> int:
        new = 0
        now = self._clock()
        with self._lock:
            if now - self._last_prune >= PRUNE_INTERVAL_SECONDS:
                self._prune(now)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for item in batch:
                    inserted = self._db.execute(
                        "INSERT OR IGNORE INTO processed (event_id, seen_at) VALUES (?, ?)",
                        (item.event_id, int(now)),
                    ).rowcount
                    if not inserted:
                        continue
                    new += 1
                    self._db.executemany(_BUMP_COUNTER, item.counters)
                    self._db.executemany(_BUMP_SERIES, item.series)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def _prune(self, now: float) -> None:
        forgotten = self._db.execute(
            "DELETE FROM processed WHERE seen_at < ?", (int(now - self._dedupe_ttl),)
        ).rowcount
        self._last_prune = now
        if forgotten:
            log.info("forgot old event ids", extra={"fields": {"forgotten": forgotten}})

    def remembered(self) -> int:
        """How many event ids the store keeps for deduplication."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM processed").fetchone()[0]

    def counters(self, family: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM counters WHERE family = ?", (family,)).fetchall()
        return dict(rows)

    def series(self, name: str, first_minute: int, last_minute: int) -> dict[int, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT minute, value FROM series WHERE name = ? AND minute BETWEEN ? AND ?",
                (name, first_minute, last_minute),
            ).fetchall()
        return dict(rows)

    def ping(self) -> bool:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
        return True


# KEYS: none. ARGV: prefix, ttl, then per message: id, n, then n triples (hash, field, amount)
# where hash is "c:<family>" or "ts:<series>". Runs atomically in Redis: the dedupe mark and
# the increments of a message land together or not at all.
_APPLY_LUA = """
local prefix, ttl = ARGV[1], tonumber(ARGV[2])
local i, new = 3, 0
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  if redis.call('SET', prefix .. 'seen:' .. id, '1', 'NX', 'EX', ttl) then
    new = new + 1
    for j = 0, n - 1 do
      local at = i + 3 * j
      redis.call('HINCRBY', prefix .. ARGV[at], ARGV[at + 1], ARGV[at + 2])
    end
  end
  i = i + 3 * n
end
return new
"""


class RedisStatsStore:
    def __init__(self, url: str, prefix: str = "offload:stats:") -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True
        )
        self._prefix = prefix
        self._apply = self._redis.register_script(_APPLY_LUA)

    def apply(self, batch: Sequence[Increments]) -> int:
        args: list[str | int] = [self._prefix, DEDUPE_TTL_SECONDS]
        for item in batch:
            args += [item.event_id, len(item.counters) + len(item.series)]
            for family, key, amount in item.counters:
                args += ["c:" + family, key, amount]
            for series, minute, amount in item.series:
                args += ["ts:" + series, minute, amount]
        return int(self._apply(args=args))

    def counters(self, family: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._redis.hgetall(self._prefix + "c:" + family).items()}

    def series(self, name: str, first_minute: int, last_minute: int) -> dict[int, int]:
        minutes = list(range(first_minute, last_minute + 1))
        values = self._redis.hmget(self._prefix + "ts:" + name, [str(m) for m in minutes])
        return {m: int(v) for m, v in zip(minutes, values, strict=True) if v is not None}

    def ping(self) -> bool:
        return bool(self._redis.ping())


def open_store(url: str) -> StatsStore:
    if url.startswith("sqlite:///"):
        return SqliteStatsStore(url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://")):
        return RedisStatsStore(url)
    raise ValueError(f"OFFLOAD_STATS_STORE_URL={url!r} must start with sqlite:/// or redis://")
