"""The stats runner keeps counts exact across a broker restart (on a broker node of its own)."""

from __future__ import annotations

import pytest

from offload_stats import queries
from offload_testkit.amqp import ready_count, wait_for
from offload_testkit.messages import publish_all, signup_accepted
from offload_testkit.plugin import own_rabbitmq_broker

rabbitmq_broker = own_rabbitmq_broker()


@pytest.mark.slow
def test_broker_restart_mid_stream_keeps_counts_exact(
    stats_runner, stack_publisher, store, store_url, amqp_url, rabbitmq_broker
):
    first = [signup_accepted() for _ in range(500)]
    publish_all(stack_publisher, first)
    runner = stats_runner(store_url)
    try:
        wait_for(
            lambda: queries.summary(store)["signups"]["total"] > 0, timeout=20, what="counting under way"
        )
        rabbitmq_broker.restart()
        second = [signup_accepted(fruit="pear") for _ in range(200)]
        publish_all(stack_publisher, second)
        wait_for(
            lambda: queries.summary(store)["signups"]["total"] >= 700, timeout=60, what="700 signups counted"
        )
        wait_for(lambda: ready_count(amqp_url, "stats.activity") == 0, timeout=20, what="queue drained")
        assert queries.summary(store)["signups"] == {
            "total": 700,
            "by_fruit": {"kiwi": 500, "pear": 200},
            "by_lane": {"high": 700},
        }
    finally:
        runner.terminate()
