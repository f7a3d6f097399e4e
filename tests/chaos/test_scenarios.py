"""The chaos scenarios of `make chaos`, with small workloads, against real parts; and their
negative controls: the same scenarios with the mechanism under test switched off must fail."""

from __future__ import annotations

import pytest

from offload_testkit.plugin import own_rabbitmq_broker
from tests.chaos.scenarios import SCENARIOS, run_scenario

# A scenario allows FINISH_SECONDS (120 s) to settle after its load, on top of starting the
# stack and sending: the per-test limit has to be above that.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
# These tests restart or reconfigure the broker: a node of their own.
rabbitmq_broker = own_rabbitmq_broker()
SIGNUPS = 60


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_loses_nothing_duplicates_nothing_outside_the_window_and_counts_exactly(
    scenario, rabbitmq_broker, redis_url, tmp_path
):
    result = run_scenario(scenario, rabbitmq_broker, redis_url, tmp_path, signups=SIGNUPS)
    print(result.line())
    assert result.passed, result.line()  # the verdict `make chaos` prints, problem by problem
    assert result.accepted == SIGNUPS
    assert all(fault.in_flight > 0 for fault in result.faults), result.line()


def test_without_the_sent_store_a_mailer_kill_duplicates_outside_the_window(
    rabbitmq_broker, redis_url, tmp_path
):
    """Negative control: the mailer's sent-store records sends but is never consulted."""
    result = run_scenario(
        "mailer_kill9", rabbitmq_broker, redis_url, tmp_path, SIGNUPS, mailer_variant="mailer-without-dedupe"
    )
    print(result.line())
    assert not result.passed
    assert any("outside the duplicate window" in problem for problem in result.problems), result.line()
    assert all(fault.in_flight > 0 for fault in result.faults), result.line()


def test_without_the_address_claim_one_address_signed_up_twenty_times_is_mailed_twenty_times(
    rabbitmq_broker, redis_url, tmp_path
):
    """Negative control: the mailer's address claim never refuses (each signup is welcomed)."""
    result = run_scenario(
        "same_address_kill9",
        rabbitmq_broker,
        redis_url,
        tmp_path,
        SIGNUPS,
        mailer_variant="mailer-welcoming-every-signup",
    )
    print(result.line())
    assert not result.passed
    assert any("outside the duplicate window" in problem for problem in result.problems), result.line()
    assert not result.stats_exact, result.line()  # no suppressed signups counted


def test_without_dedupe_a_stats_kill_makes_the_counts_wrong(rabbitmq_broker, redis_url, tmp_path):
    """Negative control: stats counts every delivery of an event."""
    result = run_scenario(
        "stats_kill9", rabbitmq_broker, redis_url, tmp_path, SIGNUPS, stats_variant="stats-without-dedupe"
    )
    print(result.line())
    assert not result.stats_exact, result.line()
    assert result.faults[0].in_flight > 0, result.line()


def test_without_replicas_a_node_kill_stops_the_stack_from_accepting_signups(
    rabbitmq_broker, redis_url, tmp_path
):
    """Negative control: the mailer queue keeps only its leader, the node that is killed; with
    no replica to take over, signups routed to it are never confirmed again. The replicated
    run above gets its first 202 within a second or two of the kill: 20 s of client patience
    and 30 s to settle are plenty there, and keep this run short."""
    result = run_scenario(
        "broker_node_kill9",
        rabbitmq_broker,
        redis_url,
        tmp_path,
        SIGNUPS,
        replicated=False,
        patience=20,
        finish_seconds=30,
    )
    print(result.line())
    assert not result.passed
    [fault] = result.faults
    assert fault.in_flight > 0 and "1 members" in fault.detail and "leader lost" in fault.detail, (
        result.line()
    )
    assert result.accepted < SIGNUPS, result.line()
    assert any("still refused after the broker recovered" in p for p in result.problems), result.line()
