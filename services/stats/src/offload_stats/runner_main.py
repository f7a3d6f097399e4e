"""offload-stats-runner: counts events from stats.requests and stats.activity, one batch at a time."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

from prometheus_client import Counter

from offload_core import tracing
from offload_core.config import ConfigError, CoreConfig
from offload_core.logs import configure_logging
from offload_core.runner import BatchHandler, Message, Runner, hold_stop_signals
from offload_core.settings import from_env
from offload_core.status import serve_status
from offload_core.topology import STATS_ACTIVITY_QUEUE, STATS_REQUESTS_QUEUE, stack_topology
from offload_stats.config import StatsConfig
from offload_stats.counting import increments
from offload_stats.store import StatsStore, open_store

log = logging.getLogger("offload.stats")

QUEUES = (STATS_REQUESTS_QUEUE, STATS_ACTIVITY_QUEUE)
EVENTS_COUNTED = Counter(
    "offload_stats_events_total",
    "Messages applied to the counts (a request batch is one): new, or duplicate (already counted).",
    ["result"],
)


def make_batch_handler(store: StatsStore) -> BatchHandler:
    for result in ("new", "duplicate"):
        EVENTS_COUNTED.labels(result)  # at 0 from the start, so rate() sees the first of each

    def count(messages: list[Message]) -> dict[str, str]:
        batch, uncountable = [], {}
        for message in messages:
            try:
                batch.append(increments(message.envelope))
            except (ValueError, KeyError) as exc:
                # A type stats cannot count is a deployment error, not a transient one: park
                # that message, count the rest.
                uncountable[message.id] = f"cannot count: {exc}"
        new = store.apply(batch)
        EVENTS_COUNTED.labels("new").inc(new)
        EVENTS_COUNTED.labels("duplicate").inc(len(batch) - new)
        return uncountable

    return count


def main() -> None:
    hold_stop_signals()
    configure_logging("stats")
    try:
        core = CoreConfig.from_env(service_name="stats")
        config = from_env(StatsConfig)
        store = open_store(config.store_url)
        tracing.configure("stats")
    except (ConfigError, ValueError) as exc:
        log.error("invalid configuration: %s", exc)
        sys.exit(2)
    if "OFFLOAD_PREFETCH" not in os.environ:
        # Prefetch in the hundreds: a batch can only be as large as what the broker lets us hold.
        core = dataclasses.replace(core, prefetch=max(core.prefetch, 2 * config.batch_size))
    handler = make_batch_handler(store)
    runner = Runner(
        core,
        stack_topology(core.delay_tiers, core.delivery_limit),
        batch_handlers={queue: handler for queue in QUEUES},
        batch_size=config.batch_size,
        batch_wait=config.batch_wait,
    )
    status = serve_status(config.status_port, lambda: runner.ready)
    code = runner.run()
    status.shutdown()
    tracing.shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
