"""The stats runner as a real process: exact counts after duplicates, kill -9 and a broker restart."""

from __future__ import annotations

import pytest

from offload_core.topology import delay_queue_name
from offload_stats import queries
from offload_testkit.amqp import ready_count, wait_for
from offload_testkit.messages import publish_all, request_event, signup_accepted


def test_counts_equal_events_published_and_duplicates_count_once(
    stats_runner, stack_publisher, store, store_url, amqp_url
):
    requests_ = [request_event(f"/p{i % 5}", f"agent-{i % 3}") for i in range(300)]
    signups = [signup_accepted(fruit=("kiwi", "mango")[i % 2]) for i in range(50)]
    publish_all(stack_publisher, requests_ + signups)
    publish_all(stack_publisher, requests_[:40] + signups[:10])  # redelivered copies
    runner = stats_runner(store_url)

    def counted() -> tuple[int, dict[str, int]]:
        summary = queries.summary(store)
        return summary["requests"]["total"], summary["signups"]["by_fruit"]

    expected = (300, {"kiwi": 25, "mango": 25})
    try:
        wait_for(lambda: counted() == expected, timeout=30, what=f"every event counted once: {expected}")
    finally:
        # A graceful stop settles what the runner holds (an empty ready count alone can leave
        # a batch in flight); after it, nothing is left and the counts did not move past.
        assert runner.terminate() == 0
    assert counted() == expected
    assert all(ready_count(amqp_url, q) == 0 for q in ("stats.requests", "stats.activity"))
    assert sum(v for _, v in queries.top(store, "path", 100)) == 300


@pytest.mark.slow
def test_kill_9_mid_batch_then_restart_loses_nothing_and_counts_nothing_twice(
    stats_runner, stack_publisher, store, store_url, amqp_url, amqp_vhost, core_config, rabbitmq_broker
):
    events = [request_event(f"/k{i % 7}") for i in range(3000)]
    publish_all(stack_publisher, events)
    killed = stats_runner(store_url, OFFLOAD_STATS_BATCH_SIZE="100")
    wait_for(lambda: queries.summary(store)["requests"]["total"] > 300, timeout=30, what="counting under way")
    killed.kill()
    counted_at_kill = queries.summary(store)["requests"]["total"]
    assert counted_at_kill < 3000, "the kill came too late to test anything"
    runner = stats_runner(store_url, name="stats-2")
    try:
        try:
            wait_for(
                lambda: queries.summary(store)["requests"]["total"] >= 3000, timeout=60, what="all counted"
            )
        except AssertionError as exc:
            # Every queue an event can wait in (the retry delay queues too), ready and
            # unacknowledged, and what either runner warned of.
            queues = ["stats.requests", "stats.requests.parked"]
            queues += [delay_queue_name("stats.requests", delay) for delay in core_config.delay_tiers]
            counts = ("messages_ready", "messages_unacknowledged")
            where = {q: {k: rabbitmq_broker.queue(amqp_vhost, q).get(k) for k in counts} for q in queues}
            total = queries.summary(store)["requests"]["total"]
            warnings = [
                line
                for process in (killed, runner)
                for line in process.logs().splitlines()
                if " WARNING " in line or " ERROR " in line
            ]
            raise AssertionError(
                f"{exc}: {total} counted ({counted_at_kill} at the kill), {where}\n"
                + "\n".join(warnings)[-4000:]
            ) from None
        wait_for(lambda: ready_count(amqp_url, "stats.requests") == 0, timeout=10, what="queue drained")
        assert queries.summary(store)["requests"]["total"] == 3000
    finally:
        runner.terminate()
