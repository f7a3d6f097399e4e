"""The request-report collector against a real broker: batching, the flush on close, drops."""

from __future__ import annotations

from prometheus_client import REGISTRY

from offload_core.contracts import default_contracts
from offload_testkit.amqp import take
from offload_web.analytics import MAX_BATCH, RequestReports


def report(n: int) -> dict:
    return {
        "occurred_at": "2026-01-01T00:00:00.000Z",
        "method": "GET",
        "path": f"/p{n}",
        "status": 200,
        "duration_ms": 0.5,
        "user_agent": "test",
        "headers": {},
    }


def dropped() -> float:
    return REGISTRY.get_sample_value("offload_web_analytics_dropped_total") or 0.0


def test_reports_leave_as_batches_of_at_most_the_contract_size(stack_publisher, amqp_url):
    # A long interval: only the size trigger and the close send anything.
    reports = RequestReports(stack_publisher, interval=60).start()
    for n in range(MAX_BATCH + 10):
        reports.add(report(n))
    first = take(amqp_url, "stats.requests", expect=1)  # the full batch, sent without waiting
    reports.close()
    events = first + take(amqp_url, "stats.requests", expect=1)
    sizes = [len(e.json()["data"]["requests"]) for e in events]
    assert sizes == [MAX_BATCH, 10]
    paths = [r["path"] for e in events for r in e.json()["data"]["requests"]]
    assert paths == [f"/p{n}" for n in range(MAX_BATCH + 10)]  # each once, in order
    ids = [r["id"] for e in events for r in e.json()["data"]["requests"]]
    assert len(set(ids)) == MAX_BATCH + 10  # every report has an id of its own
    for event in events:
        default_contracts().check_envelope(event.json())


def test_the_interval_sends_what_was_collected(stack_publisher, amqp_url):
    reports = RequestReports(stack_publisher, interval=0.1).start()
    try:
        reports.add(report(1))
        reports.add(report(2))
        [event] = take(amqp_url, "stats.requests", expect=1)
        assert [r["path"] for r in event.json()["data"]["requests"]] == ["/p1", "/p2"]
    finally:
        reports.close()


def test_reports_the_publisher_refuses_are_counted_as_dropped(stack_publisher, amqp_url):
    reports = RequestReports(stack_publisher, interval=60).start()
    stack_publisher.close()  # a closing publisher takes nothing more
    before = dropped()
    for n in range(3):
        reports.add(report(n))
    reports.close()
    assert dropped() - before == 3
    assert take(amqp_url, "stats.requests") == []
