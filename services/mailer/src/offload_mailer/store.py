"""Which signups already got their email: Redis when configured, else a SQLite file.

The mailer checks the store before sending and writes it right after the SMTP server
accepted the mail. What is left is one duplicate window: the server has the mail and the
store does not, and then the mailer dies (a crash between the server's acceptance and the
write), or never hears the server's "250" (the connection or the server goes down after
the server took the mail), and so sends it again. The chaos harness lists the mails in
that window at every such fault and fails on any other duplicate.

Two copies of one signup can be in flight at once (a publisher republishes what the broker
had not confirmed when its connection dropped, so the queue may hold the message twice):
before sending, a worker *claims* the signup, atomically and for a limited time, and a
worker that cannot claim it retries later instead of sending too.
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

    def claim(self, signup_id: str, owner: str, seconds: float) -> bool:
        """True if `owner` may send now; False while another owner's claim is live."""
        ...

    def release(self, signup_id: str, owner: str) -> None: ...

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
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sending"
            " (signup_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)"
        )
        self._lock = threading.Lock()

    def was_sent(self, signup_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM sent WHERE signup_id = ?", (signup_id,)).fetchone()
                is not None
            )

    def claim(self, signup_id: str, owner: str, seconds: float) -> bool:
        now = time.time()
        with self._lock:
            # IMMEDIATE takes the write lock first: other processes on the file wait, so the
            # check and the insert are one step for all of them.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "DELETE FROM sending WHERE signup_id = ? AND expires_at < ?", (signup_id, now)
                )
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO sending VALUES (?, ?, ?)", (signup_id, owner, now + seconds)
                ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return inserted == 1

    def release(self, signup_id: str, owner: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sending WHERE signup_id = ? AND owner = ?", (signup_id, owner))

    def mark_sent(self, signup_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO sent VALUES (?, ?)", (signup_id, time.time()))
            self._db.execute("DELETE FROM sending WHERE signup_id = ?", (signup_id,))


# Delete the claim only if it is still ours (it may have expired and been taken by another).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisSentStore:
    def __init__(
        self, url: str, prefix: str = "offload:mailer:sent:", claim_prefix: str = "offload:mailer:sending:"
    ) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._claim_prefix = claim_prefix
        self._release = self._redis.register_script(_RELEASE)

    def was_sent(self, signup_id: str) -> bool:
        return bool(self._redis.exists(self._prefix + signup_id))

    def claim(self, signup_id: str, owner: str, seconds: float) -> bool:
        return bool(self._redis.set(self._claim_prefix + signup_id, owner, nx=True, px=int(seconds * 1000)))

    def release(self, signup_id: str, owner: str) -> None:
        self._release(keys=[self._claim_prefix + signup_id], args=[owner])

    def mark_sent(self, signup_id: str) -> None:
        self._redis.set(self._prefix + signup_id, int(time.time()), ex=REDIS_TTL_SECONDS)


def open_store(url: str) -> SentStore:
    if url.startswith("sqlite:///"):
        return SqliteSentStore(url.removeprefix("sqlite:///"))
    return RedisSentStore(url)
