"""Prometheus metrics of the messaging core, shared by every service.

Names follow Prometheus conventions (base units, `_total`, `_seconds`). They work in
prometheus-client's multiprocess mode (set PROMETHEUS_MULTIPROC_DIR under gunicorn):
gauges say how their per-process values combine.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# 1 ms up to 30 min: an idle runner answers in milliseconds, a backlog waits minutes.
QUEUE_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
)  # fmt: skip
HANDLER_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
CONFIRM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

TIME_ON_QUEUE = Histogram(
    "offload_message_time_on_queue_seconds",
    "Time from publish (header x-enqueued-at-ms) to the runner picking the message up.",
    ["queue", "lane"],
    buckets=QUEUE_BUCKETS,
)
HANDLER_DURATION = Histogram(
    "offload_handler_duration_seconds",
    "Time the handler spent on one message, whatever the outcome.",
    ["queue"],
    buckets=HANDLER_BUCKETS,
)
MESSAGES = Counter(
    "offload_messages_total",
    "Messages settled by runners, by outcome: acked, retried, parked, invalid, requeued.",
    ["queue", "outcome"],
)
IN_FLIGHT = Gauge(
    "offload_messages_in_flight",
    "Messages delivered to this runner and not yet settled.",
    ["queue"],
    multiprocess_mode="livesum",
)
PUBLISH_CONFIRM = Histogram(
    "offload_publish_confirm_seconds",
    "Time from handing a message to the publisher to the broker's confirm.",
    ["exchange"],
    buckets=CONFIRM_BUCKETS,
)
PUBLISHED = Counter(
    "offload_published_total",
    "Publish attempts by result: confirmed, nacked, unroutable, timeout.",
    ["exchange", "result"],
)
DROP_REASONS = ("buffer_full", "nacked", "unroutable", "shutdown")
PUBLISHER_DROPPED = Counter(
    "offload_publisher_dropped_total",
    "Fire-and-forget messages dropped: buffer_full, nacked, unroutable, shutdown.",
    ["reason"],
)
PUBLISHER_CONNECTED = Gauge(
    "offload_publisher_connected",
    "1 while the publisher holds an open channel with the topology declared.",
    multiprocess_mode="livemin",
)
RUNNER_ABANDONED = Counter(
    "offload_runner_abandoned_handlers_total",
    "Handlers that outlived the hard time limit; their message was settled without them.",
    ["queue"],
)


def registry_for_scrape() -> CollectorRegistry:
    """The registry to expose: a multiprocess collector under gunicorn, else the default."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


def render_latest() -> bytes:
    return generate_latest(registry_for_scrape())
