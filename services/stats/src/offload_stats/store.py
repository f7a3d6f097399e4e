"""Counts, exact under redelivery: a message id is counted once, in the same atomic step
that applies its increments (SQLite transaction / Redis Lua script), one per batch.

Bounds: the counter families hold bounded keys (routes, agent families, status classes,
fruits, lanes, mail outcomes); one dedupe mark per message for DEDUPE_TTL_SECONDS, and the
web sends at most one request message per worker per quarter second whatever the traffic
(up to 500 requests each), so the marks grow with the number of web workers, not with
requests; the per-minute series keep SERIES_RETENTION_MINUTES (a field per minute each,
Redis in one hash per day that expires with its last minute).
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
# Per-minute points are kept two days: twice the longest window the API serves (1440 minutes),
# so a day's chart is whole whatever the hour, and late events still land in it.
SERIES_RETENTION_MINUTES = 2 * 24 * 60
MINUTES_PER_DAY = 24 * 60

log = logging.getLogger("offload.stats.store")


class StatsStore(Protocol):
    def apply(self, batch: Sequence[Increments]) -> int:
        """Count every event not counted before, atomically; returns how many were new."""

    def counters(self, family: str) -> dict[str, int]: ...

    def series(self, name: str, first_minute: int, last_minute: int) -> dict[int, int]: ...

    def series_many(
        self, names: Sequence[str], first_minute: int, last_minute: int
    ) -> dict[str, dict[int, int]]:
        """Several series over the same minutes in one read: name -> minute -> value."""

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
        expired = self._db.execute(
            "DELETE FROM series WHERE minute < ?", (int(now // 60) - SERIES_RETENTION_MINUTES,)
        ).rowcount
        self._last_prune = now
        if forgotten or expired:
            log.info(
                "forgot old event ids and points",
                extra={"fields": {"forgotten": forgotten, "points": expired}},
            )

    def remembered(self) -> int:
        """How many event ids the store keeps for deduplication."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM processed").fetchone()[0]

    def counters(self, family: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM counters WHERE family = ?", (family,)).fetchall()
        return dict(rows)

    def series(self, name: str, first_minute: int, last_minute: int) -> dict[int, int]:
        return self.series_many([name], first_minute, last_minute)[name]

    def series_many(
        self, names: Sequence[str], first_minute: int, last_minute: int
    ) -> dict[str, dict[int, int]]:
        found: dict[str, dict[int, int]] = {name: {} for name in names}
        marks = ", ".join("?" * len(names))
        with self._lock:
            rows = self._db.execute(
                f"SELECT name, minute, value FROM series WHERE name IN ({marks}) AND minute BETWEEN ? AND ?",
                (*names, first_minute, last_minute),
            ).fetchall()
        for name, minute, value in rows:
            found[name][minute] = value
        return found

    def ping(self) -> bool:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
        return True


# KEYS: none. ARGV: prefix, ttl, then per message: id, n, then n quadruples (hash, field,
# amount, expire_at) where hash is "c:<family>" (expire_at 0: kept) or "ts:<series>:<day>"
# (expire_at: the Unix time its last minute leaves the retention). Runs atomically in Redis:
# the dedupe mark and the increments of a message land together or not at all.
_APPLY_LUA = """
local prefix, ttl = ARGV[1], tonumber(ARGV[2])
local i, new = 3, 0
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  if redis.call('SET', prefix .. 'seen:' .. id, '1', 'NX', 'EX', ttl) then
    new = new + 1
    for j = 0, n - 1 do
      local at = i + 4 * j
      local key, expire_at = prefix .. ARGV[at], tonumber(ARGV[at + 3])
      redis.call('HINCRBY', key, ARGV[at + 1], ARGV[at + 2])
      if expire_at > 0 then
        redis.call('EXPIREAT', key, expire_at)
      end
    end
  end
  i = i + 4 * n
end
return new
"""


def series_day(minute: int) -> int:
    """The day (since the epoch) whose hash holds `minute`'s point in Redis."""
    return minute // MINUTES_PER_DAY


def series_day_expires_at(day: int) -> int:
    """When a day's hash goes: once its last minute is SERIES_RETENTION_MINUTES old."""
    return ((day + 1) * MINUTES_PER_DAY + SERIES_RETENTION_MINUTES) * 60


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
                args += ["c:" + family, key, amount, 0]
            for series, minute, amount in item.series:
                day = series_day(minute)
                args += [f"ts:{series}:{day}", minute, amount, series_day_expires_at(day)]
        return int(self._apply(args=args))

    def counters(self, family: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._redis.hgetall(self._prefix + "c:" + family).items()}

    def series(self, name: str, first_minute: int, last_minute: int) -> dict[int, int]:
        return self.series_many([name], first_minute, last_minute)[name]

    def series_many(
        self, names: Sequence[str], first_minute: int, last_minute: int
    ) -> dict[str, dict[int, int]]:
        """One pipeline: an HMGET per series and day."""
        by_day: dict[int, list[int]] = {}
        for minute in range(first_minute, last_minute + 1):
            by_day.setdefault(series_day(minute), []).append(minute)
        reads = [(name, minutes) for name in names for minutes in by_day.values()]
        pipeline = self._redis.pipeline(transaction=False)
        for name, minutes in reads:
            pipeline.hmget(f"{self._prefix}ts:{name}:{series_day(minutes[0])}", [str(m) for m in minutes])
        found: dict[str, dict[int, int]] = {name: {} for name in names}
        for (name, minutes), values in zip(reads, pipeline.execute(), strict=True):
            found[name].update({m: int(v) for m, v in zip(minutes, values, strict=True) if v is not None})
        return found

    def ping(self) -> bool:
        return bool(self._redis.ping())


def open_store(url: str) -> StatsStore:
    if url.startswith("sqlite:///"):
        return SqliteStatsStore(url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://")):
        return RedisStatsStore(url)
    raise ValueError(f"OFFLOAD_STATS_STORE_URL={url!r} must start with sqlite:/// or redis://")
