"""Both stores (SQLite file, real Redis): exact counts, one count per event id."""

from __future__ import annotations

from stats_support import request_batch, request_event, signup_event

from offload_core.envelope import Envelope
from offload_stats import queries
from offload_stats.counting import epoch_minute, increments


def test_counts_equal_the_events_applied(store):
    events = [request_event("/", "a"), request_event("/x", "a"), request_event("/", "b", 404)]
    events += [signup_event("kiwi"), signup_event("kiwi", "low"), signup_event("mango")]
    events += [Envelope("mail.sent", {"signup_id": "s1", "fruit": "kiwi"})]
    events += [Envelope("mail.failed", {"signup_id": "s2", "reason": "550"})]
    assert store.apply([i for e in events for i in increments(e)]) == 8
    summary = queries.summary(store)
    assert summary == {
        "requests": {"total": 3, "by_status_class": {"2xx": 2, "4xx": 1}},
        "signups": {"total": 3, "by_fruit": {"kiwi": 2, "mango": 1}, "by_lane": {"high": 2, "low": 1}},
        "mails": {"sent": 1, "failed": 1},
    }
    assert queries.top(store, "user_agent", 10) == [("a", 2), ("b", 1)]
    assert queries.top(store, "path", 1) == [("/", 2)]


def test_the_same_event_twice_counts_once_within_and_across_batches(store):
    event = signup_event()
    assert store.apply([*increments(event), *increments(event)]) == 1
    assert store.apply([*increments(event), *increments(signup_event())]) == 1
    assert store.counters("signups") == {"total": 2}


def test_a_request_batch_counts_each_request_once_by_its_own_id(store):
    first, second, third = request_event("/", "a"), request_event("/x", "b", 500), request_event("/", "a")
    assert store.apply(increments(request_batch(first, second))) == 2
    # A redelivered batch, and a batch overlapping it: only the request not yet seen counts.
    assert store.apply(increments(request_batch(first, second))) == 0
    assert store.apply(increments(request_batch(second, third))) == 1
    assert queries.summary(store)["requests"] == {"total": 3, "by_status_class": {"2xx": 2, "5xx": 1}}
    assert queries.top(store, "path", 10) == [("/", 2), ("/x", 1)]


def test_minute_buckets_follow_the_event_time(store):
    event = request_event()
    minute = epoch_minute(event.occurred_at)
    store.apply(increments(event))
    points = queries.timeseries(store, "requests", 3, now=minute * 60 + 30)
    assert [p["count"] for p in points] == [0, 0, 1]
