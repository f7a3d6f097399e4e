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

One welcome per mailbox: before any of that, the signup claims its address (a digest,
addresses.welcome_key) for the welcome period. The first signup to claim it holds it; every
other signup for that address finds it held and is settled without a mail. A claim is given
back only when its own signup's mail failed for good, so that a later signup may try.
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

    def claim_address(self, address_key: str, signup_id: str, seconds: float) -> str:
        """The signup that holds `address_key`: `signup_id` if it took it now or holds it
        already, else the one that took it first and whose claim has not expired."""
        ...

    def release_address(self, address_key: str, signup_id: str) -> None:
        """Give the address back, if `signup_id` holds it."""
        ...


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
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS welcomed"
            " (address_key TEXT PRIMARY KEY, signup_id TEXT NOT NULL, expires_at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS welcomed_expires_at ON welcomed (expires_at)")
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

    def claim_address(self, address_key: str, signup_id: str, seconds: float) -> str:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # one step for every process on the file
            try:
                # Every expired claim goes, not only this one: the table stays bounded by
                # the addresses welcomed within one period.
                self._db.execute("DELETE FROM welcomed WHERE expires_at < ?", (now,))
                self._db.execute(
                    "INSERT OR IGNORE INTO welcomed VALUES (?, ?, ?)", (address_key, signup_id, now + seconds)
                )
                (holder,) = self._db.execute(
                    "SELECT signup_id FROM welcomed WHERE address_key = ?", (address_key,)
                ).fetchone()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return str(holder)

    def release_address(self, address_key: str, signup_id: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM welcomed WHERE address_key = ? AND signup_id = ?", (address_key, signup_id)
            )


# Delete the claim only if it is still ours (it may have expired and been taken by another).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


# Take the address if it is free; either way answer who holds it, in one atomic step.
_CLAIM_ADDRESS = (
    "if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end "
    "return redis.call('get', KEYS[1])"
)


class RedisSentStore:
    def __init__(
        self,
        url: str,
        prefix: str = "offload:mailer:sent:",
        claim_prefix: str = "offload:mailer:sending:",
        address_prefix: str = "offload:mailer:welcomed:",
    ) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._claim_prefix = claim_prefix
        self._address_prefix = address_prefix
        self._release = self._redis.register_script(_RELEASE)
        self._claim_address = self._redis.register_script(_CLAIM_ADDRESS)

    def was_sent(self, signup_id: str) -> bool:
        return bool(self._redis.exists(self._prefix + signup_id))

    def claim(self, signup_id: str, owner: str, seconds: float) -> bool:
        return bool(self._redis.set(self._claim_prefix + signup_id, owner, nx=True, px=int(seconds * 1000)))

    def release(self, signup_id: str, owner: str) -> None:
        self._release(keys=[self._claim_prefix + signup_id], args=[owner])

    def mark_sent(self, signup_id: str) -> None:
        self._redis.set(self._prefix + signup_id, int(time.time()), ex=REDIS_TTL_SECONDS)

    def claim_address(self, address_key: str, signup_id: str, seconds: float) -> str:
        holder = self._claim_address(
            keys=[self._address_prefix + address_key], args=[signup_id, max(1, int(seconds * 1000))]
        )
        return holder.decode() if isinstance(holder, bytes) else str(holder)

    def release_address(self, address_key: str, signup_id: str) -> None:
        self._release(keys=[self._address_prefix + address_key], args=[signup_id])


def open_store(url: str) -> SentStore:
    if url.startswith("sqlite:///"):
        return SqliteSentStore(url.removeprefix("sqlite:///"))
    return RedisSentStore(url)
