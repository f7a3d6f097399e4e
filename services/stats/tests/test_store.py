"""Both stores (SQLite file, real Redis): exact counts, one count per event id."""

from __future__ import annotations

import sqlite3
import time
import uuid

import pytest

from offload_core.envelope import Envelope
from offload_stats import queries
from offload_stats import store as store_module
from offload_stats.counting import Increments, epoch_minute, increments
from offload_stats.store import (
    MINUTES_PER_DAY,
    PRUNE_INTERVAL_SECONDS,
    SERIES_RETENTION_MINUTES,
    RedisStatsStore,
    SqliteStatsStore,
)
from offload_testkit.messages import request_batch, request_event, signup, signup_accepted


def test_counts_equal_the_events_applied(store):
    events = [
        request_event("/", "chrome"),
        request_event("/x", "chrome"),
        request_event("/", "made-up/1", 404),
    ]
    events += [
        signup_accepted(fruit="kiwi"),
        signup_accepted(fruit="kiwi", lane="low"),
        signup_accepted(fruit="mango"),
    ]
    events += [Envelope("mail.sent", {"signup_id": "s1", "fruit": "kiwi"})]
    events += [Envelope("mail.failed", {"signup_id": "s2", "reason": "550"})]
    events += [Envelope("mail.suppressed", {"signup_id": "s3", "welcomed_by": "s1"})]
    assert store.apply([increments(e) for e in events]) == 9
    summary = queries.summary(store)
    assert summary == {
        "requests": {"total": 3, "by_status_class": {"2xx": 2, "4xx": 1}},
        "signups": {"total": 3, "by_fruit": {"kiwi": 2, "mango": 1}, "by_lane": {"high": 2, "low": 1}},
        "mails": {"sent": 1, "failed": 1, "suppressed": 1},
    }
    # An agent outside the families is counted as "other", whoever published it.
    assert queries.top(store, "user_agent", 10) == [("chrome", 2), ("other", 1)]
    assert queries.top(store, "path", 1) == [("/", 2)]


def test_the_same_event_twice_counts_once_within_and_across_batches(store):
    event = signup_accepted()
    assert store.apply([increments(event), increments(event)]) == 1
    assert store.apply([increments(event), increments(signup_accepted())]) == 1
    assert store.counters("signups") == {"total": 2}


def test_a_signup_counts_once_whichever_fact_brings_it(store):
    """A web of the version before sent stats the whole signup.created; one left in the queue
    at an upgrade and the same signup's signup.accepted count once, under its signup id."""
    created = signup(fruit="pear")
    accepted = signup_accepted(fruit="pear", signup_id=created.id)
    assert store.apply([increments(created)]) == 1
    assert store.apply([increments(accepted)]) == 0
    assert store.counters("signups") == {"total": 1}
    assert store.counters("fruit") == {"pear": 1}


def test_a_request_batch_is_counted_whole_once_by_its_message_id(store):
    first, second = request_event("/", "curl"), request_event("/x", "curl", 500)
    batch = request_batch(first, second, request_event("/", "firefox"))
    assert store.apply([increments(batch)]) == 1
    assert store.apply([increments(batch)]) == 0  # redelivered: nothing more
    assert queries.summary(store)["requests"] == {"total": 3, "by_status_class": {"2xx": 2, "5xx": 1}}
    assert queries.top(store, "path", 10) == [("/", 2), ("/x", 1)]
    assert queries.top(store, "user_agent", 10) == [("curl", 2), ("firefox", 1)]
    # One dedupe mark for the message, not one per request.
    if isinstance(store, SqliteStatsStore):
        assert store.remembered() == 1


def test_minute_buckets_follow_the_event_time(store):
    event = request_event()
    minute = epoch_minute(event.occurred_at)
    store.apply([increments(event)])
    points = queries.timeseries(store, "requests", 3, now=minute * 60 + 30)
    assert [p["count"] for p in points] == [0, 0, 1]


class FakeClock:
    """The store's clock only: a 30-day TTL and an hourly prune cannot be waited out in a
    test. The database under it is a real SQLite file."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sqlite_forgets_event_ids_after_the_dedupe_ttl(tmp_path):
    clock = FakeClock()
    store = SqliteStatsStore(str(tmp_path / "stats.db"), dedupe_ttl=3 * PRUNE_INTERVAL_SECONDS, clock=clock)
    old, recent = signup_accepted(), signup_accepted()
    assert store.apply([increments(old)]) == 1
    clock.now += 2 * PRUNE_INTERVAL_SECONDS
    assert store.apply([increments(recent)]) == 1
    clock.now += 2 * PRUNE_INTERVAL_SECONDS  # `old` is now past the TTL, `recent` is not
    assert store.apply([increments(recent)]) == 0
    assert store.remembered() == 1
    # The documented limit: a redelivery later than the TTL counts again.
    assert store.apply([increments(old)]) == 1
    assert store.counters("signups") == {"total": 3}


def test_sqlite_prunes_at_most_once_per_interval(tmp_path):
    clock = FakeClock()
    store = SqliteStatsStore(str(tmp_path / "stats.db"), dedupe_ttl=60, clock=clock)
    store.apply([increments(signup_accepted())])
    clock.now += 120  # past the TTL, but the last prune was less than an interval ago
    store.apply([increments(signup_accepted())])
    assert store.remembered() == 2
    clock.now += PRUNE_INTERVAL_SECONDS
    store.apply([increments(signup_accepted())])
    assert store.remembered() == 1


def test_a_file_from_before_seen_at_keeps_its_ids_for_a_full_ttl(tmp_path):
    path = tmp_path / "stats.db"
    event = signup_accepted()
    item = increments(event)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE processed (event_id TEXT PRIMARY KEY)")
        db.execute("INSERT INTO processed VALUES (?)", (item.event_id,))
    clock = FakeClock()
    store = SqliteStatsStore(str(path), dedupe_ttl=2 * PRUNE_INTERVAL_SECONDS, clock=clock)
    assert store.apply([increments(event)]) == 0
    clock.now += PRUNE_INTERVAL_SECONDS
    assert store.apply([increments(event)]) == 0
    clock.now += 2 * PRUNE_INTERVAL_SECONDS
    assert store.apply([increments(event)]) == 1


def point(minute: int) -> Increments:
    return Increments(uuid.uuid4().hex, (), (("requests", minute, 1),))


def test_points_on_both_sides_of_a_day_boundary_are_read_together(store):
    """The Redis store keeps a hash per day: a window across midnight reads two of them."""
    midnight = int(time.time() // 60) // MINUTES_PER_DAY * MINUTES_PER_DAY  # today's, in minutes
    store.apply([point(midnight - 1), point(midnight)])
    assert store.series("requests", midnight - 2, midnight + 1) == {midnight - 1: 1, midnight: 1}


@pytest.mark.parametrize("retention", [SERIES_RETENTION_MINUTES, None])
def test_sqlite_drops_points_older_than_the_series_retention(tmp_path, monkeypatch, retention):
    """Control (retention None, i.e. practically unbounded): the old point stays."""
    if retention is None:
        monkeypatch.setattr(store_module, "SERIES_RETENTION_MINUTES", 10**9)
    clock = FakeClock()
    store = SqliteStatsStore(str(tmp_path / "stats.db"), clock=clock)
    now_minute = int(clock.now // 60)
    old, recent = now_minute - SERIES_RETENTION_MINUTES - 1, now_minute - SERIES_RETENTION_MINUTES + 60
    store.apply([point(old), point(recent)])
    clock.now += PRUNE_INTERVAL_SECONDS  # the next batch prunes
    store.apply([point(now_minute)])
    kept = store.series("requests", old, now_minute)
    assert kept == ({recent: 1, now_minute: 1} if retention else {old: 1, recent: 1, now_minute: 1})


def test_redis_day_hashes_expire_once_their_last_minute_leaves_the_retention(redis_url):
    import redis

    store = RedisStatsStore(redis_url, prefix=f"offload:test:{uuid.uuid4().hex}:")
    now_minute = int(time.time() // 60)
    store.apply([point(now_minute)])
    client = redis.Redis.from_url(redis_url)
    [key] = client.keys(f"{store._prefix}ts:*")
    day = now_minute // MINUTES_PER_DAY
    expected = ((day + 1) * MINUTES_PER_DAY + SERIES_RETENTION_MINUTES) * 60
    assert client.execute_command("EXPIRETIME", key) == expected
