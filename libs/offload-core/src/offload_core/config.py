"""Configuration of the messaging core, read from environment variables.

Every setting has a default that works on one machine (`make dev`), so a service
starts with no configuration at all; in a cluster the chart sets the variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from offload_core.brokers import split_urls


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


# Parsers for settings from the environment: every service reads its own settings with
# these, so a bad value is reported the same way everywhere, naming the variable.


def env_switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "on", "yes"):
        return True
    if raw in ("0", "false", "off", "no"):
        return False
    raise ConfigError(f"{name}={raw!r} must be on or off")


def env_text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def env_number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def env_integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _seconds_list(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        values = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be a comma-separated list of seconds") from None
    if not values or any(v <= 0 for v in values) or list(values) != sorted(values):
        raise ConfigError(f"{name}={raw!r} must list positive, increasing delays in seconds")
    return values


def _amqp_urls(env: Mapping[str, str], name: str, default: str) -> str:
    """One broker URL, or one per cluster node separated by `;` (offload_core.brokers)."""
    raw = env_text(env, name, default)
    try:
        split_urls(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    return raw


@dataclass(frozen=True)
class CoreConfig:
    """Settings shared by every service that talks to RabbitMQ."""

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    management_url: str = "http://guest:guest@127.0.0.1:15672"
    # Publisher: how long a caller waits for the broker's confirm before giving up.
    confirm_timeout: float = 5.0
    # Fire-and-forget buffer (analytics): messages held while unconfirmed or unsent.
    buffer_size: int = 10_000
    # Broker flow control (memory/disk alarm) longer than this closes the connection,
    # so callers fail fast instead of hanging on a blocked socket.
    blocked_connection_timeout: float = 10.0
    heartbeat: int = 30
    # Consumer runner.
    prefetch: int = 10
    worker_threads: int = 4
    grace_period: float = 25.0
    # Attempts through the delay tiers before a failing message is parked.
    max_attempts: int = 5
    # Broker-side guard for messages that crash the runner itself (quorum queues).
    delivery_limit: int = 10
    # Below RabbitMQ's consumer_timeout (30 min by default) so the runner, not the
    # broker, decides what happens to a stuck message.
    hard_time_limit: float = 300.0
    delay_tiers: tuple[float, ...] = (5.0, 30.0, 300.0)
    reconnect_max_delay: float = 10.0
    service_name: str = field(default="offload")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, service_name: str = "offload") -> CoreConfig:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            amqp_url=_amqp_urls(env, "OFFLOAD_AMQP_URL", d.amqp_url),
            management_url=env_text(env, "OFFLOAD_MANAGEMENT_URL", d.management_url),
            confirm_timeout=env_number(env, "OFFLOAD_CONFIRM_TIMEOUT", d.confirm_timeout, minimum=0.05),
            buffer_size=env_integer(env, "OFFLOAD_BUFFER_SIZE", d.buffer_size, minimum=1),
            blocked_connection_timeout=env_number(
                env, "OFFLOAD_BLOCKED_TIMEOUT", d.blocked_connection_timeout, minimum=0.1
            ),
            heartbeat=env_integer(env, "OFFLOAD_HEARTBEAT", d.heartbeat, minimum=0),
            prefetch=env_integer(env, "OFFLOAD_PREFETCH", d.prefetch, minimum=1),
            worker_threads=env_integer(env, "OFFLOAD_WORKER_THREADS", d.worker_threads, minimum=1),
            grace_period=env_number(env, "OFFLOAD_GRACE_PERIOD", d.grace_period, minimum=0),
            max_attempts=env_integer(env, "OFFLOAD_MAX_ATTEMPTS", d.max_attempts, minimum=1),
            delivery_limit=env_integer(env, "OFFLOAD_DELIVERY_LIMIT", d.delivery_limit, minimum=1),
            hard_time_limit=env_number(env, "OFFLOAD_HARD_TIME_LIMIT", d.hard_time_limit, minimum=0.1),
            delay_tiers=_seconds_list(env, "OFFLOAD_DELAY_TIERS", d.delay_tiers),
            reconnect_max_delay=env_number(
                env, "OFFLOAD_RECONNECT_MAX_DELAY", d.reconnect_max_delay, minimum=0.1
            ),
            service_name=env_text(env, "OFFLOAD_SERVICE_NAME", service_name),
        )
