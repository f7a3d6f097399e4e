"""Configuration of the messaging core, read from environment variables.

Every setting has a default that works on one machine (`make dev`), so a service
starts with no configuration at all; in a cluster the chart sets the variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from offload_core.brokers import split_urls
from offload_core.settings import ConfigError, from_env, setting
from offload_core.topology import Topology

__all__ = ["ConfigError", "CoreConfig"]


def _delay_tiers(raw: str) -> tuple[float, ...]:
    """increasing delays in seconds, comma-separated"""
    try:
        values = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError("must be a comma-separated list of seconds") from None
    if not values or any(v <= 0 for v in values) or list(values) != sorted(values):
        raise ValueError("must list positive, increasing delays in seconds")
    return values


def _amqp_urls(raw: str) -> str:
    """an amqp:// or amqps:// URL, or one per cluster node separated by `;`"""
    split_urls(raw)
    return raw


@dataclass(frozen=True)
class CoreConfig:
    """Settings shared by every service that talks to RabbitMQ."""

    amqp_url: str = setting(
        "OFFLOAD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F", parse=_amqp_urls, secret=True
    )
    # Publisher: how long a caller waits for the broker's confirm before giving up.
    confirm_timeout: float = setting("OFFLOAD_CONFIRM_TIMEOUT", 5.0, minimum=0.05)
    # Fire-and-forget buffer (analytics): messages held while unconfirmed or unsent.
    buffer_size: int = setting("OFFLOAD_BUFFER_SIZE", 10_000, minimum=1)
    # Broker flow control (memory/disk alarm) longer than this closes the connection,
    # so callers fail fast instead of hanging on a blocked socket.
    blocked_connection_timeout: float = setting("OFFLOAD_BLOCKED_TIMEOUT", 10.0, minimum=0.1)
    heartbeat: int = setting("OFFLOAD_HEARTBEAT", 30, minimum=0)
    # Consumer runner.
    prefetch: int = setting("OFFLOAD_PREFETCH", 10, minimum=1)
    worker_threads: int = setting("OFFLOAD_WORKER_THREADS", 4, minimum=1)
    grace_period: float = setting("OFFLOAD_GRACE_PERIOD", 25.0, minimum=0)
    # Attempts through the delay tiers before a failing message is parked.
    max_attempts: int = setting("OFFLOAD_MAX_ATTEMPTS", 5, minimum=1)
    # Broker-side guard for messages that crash the runner itself (quorum queues).
    delivery_limit: int = setting("OFFLOAD_DELIVERY_LIMIT", 10, minimum=1)
    # Below RabbitMQ's consumer_timeout (30 min by default) so the runner, not the
    # broker, decides what happens to a stuck message.
    hard_time_limit: float = setting("OFFLOAD_HARD_TIME_LIMIT", 300.0, minimum=0.1)
    delay_tiers: tuple[float, ...] = setting("OFFLOAD_DELAY_TIERS", (5.0, 30.0, 300.0), parse=_delay_tiers)
    reconnect_max_delay: float = setting("OFFLOAD_RECONNECT_MAX_DELAY", 10.0, minimum=0.1)
    service_name: str = setting("OFFLOAD_SERVICE_NAME", "offload")
    # Off where the topology step (offload-topology, run as the broker's administrator)
    # declares everything and this service's broker user may configure nothing (grants.py).
    declare_topology: bool = setting("OFFLOAD_DECLARE_TOPOLOGY", True)
    # Opt-in, process-wide: joined socket writes and block-read ids (fewer_syscalls.py),
    # which pay only where a system call is dear (docs/benchmarks.md).
    fewer_syscalls: bool = setting("OFFLOAD_FEWER_SYSCALLS", False)

    def topology_to_declare(self, topology: Topology) -> Topology | None:
        """What a session declares before it is ready: `topology`, or nothing when another
        step declares it."""
        return topology if self.declare_topology else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, service_name: str = "offload") -> CoreConfig:
        """`service_name` names this process's connections unless OFFLOAD_SERVICE_NAME does."""
        env = os.environ if env is None else env
        config = from_env(cls, env)
        return (
            config
            if env.get("OFFLOAD_SERVICE_NAME", "").strip()
            else replace(config, service_name=service_name)
        )
