"""The chaos scenarios of `make chaos`, with small workloads, against real parts."""

from __future__ import annotations

import pytest

from offload_testkit.chaos import SCENARIOS, run_scenario
from offload_testkit.plugin import own_rabbitmq_broker

# A scenario allows 120 s for the queues to drain after its fault, on top of starting the
# stack and sending: the per-test limit has to be above that.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
# These tests restart or reconfigure the broker: a node of their own.
rabbitmq_broker = own_rabbitmq_broker()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_loses_nothing_and_counts_exactly(scenario, rabbitmq_broker, redis_url, tmp_path):
    result = run_scenario(scenario, rabbitmq_broker, redis_url, tmp_path, signups=60)
    print(result.line())
    assert result.accepted > 0, result.line()
    assert result.lost == 0, result.line()
    assert result.duplicates <= result.window, result.line()
    assert result.stats_exact, result.line()
    assert result.false_202 == 0, result.line()
    assert not result.problems, result.line()
    assert result.passed  # what `make chaos` counts as a pass is exactly the checks above
