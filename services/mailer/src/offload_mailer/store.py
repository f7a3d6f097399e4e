"""Which signups already got their email: Redis when configured, else a SQLite file.

The mailer checks the store before sending and writes it right after the SMTP server
accepted the mail. The one duplicate window left is a crash between those two steps.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

import redis

# Long enough to outlive any redelivery or replay from a parking queue.
REDIS_TTL_SECONDS = 90 * 24 * 3600


class SentStore(Protocol):
    def was_sent(self, signup_id: str) -> bool: ...

    def mark_sent(self, signup_id: str) -> None: ...


class SqliteSentStore:
    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sent (signup_id TEXT PRIMARY KEY, sent_at REAL NOT NULL)"
        )
        self._lock = threading.Lock()

    def was_sent(self, signup_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM sent WHERE signup_id = ?", (signup_id,)).fetchone()
                is not None
            )

    def mark_sent(self, signup_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO sent VALUES (?, ?)", (signup_id, time.time()))


class RedisSentStore:
    def __init__(self, url: str, prefix: str = "offload:mailer:sent:") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix

    def was_sent(self, signup_id: str) -> bool:
        return bool(self._redis.exists(self._prefix + signup_id))

    def mark_sent(self, signup_id: str) -> None:
        self._redis.set(self._prefix + signup_id, int(time.time()), ex=REDIS_TTL_SECONDS)


def open_store(url: str) -> SentStore:
    if url.startswith("sqlite:///"):
        return SqliteSentStore(url.removeprefix("sqlite:///"))
    return RedisSentStore(url)
