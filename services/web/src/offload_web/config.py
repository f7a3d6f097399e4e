"""Web settings from environment variables (the core's settings come from CoreConfig)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from offload_core.config import ConfigError


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "on", "yes"):
        return True
    if raw in ("0", "false", "off", "no"):
        return False
    raise ConfigError(f"{name}={raw!r} must be on or off")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ConfigError(f"{name}={raw!r} must be at least 1")
    return value


@dataclass(frozen=True)
class WebConfig:
    # Off only for benchmarks: measures the request path without the broker round trip.
    publish_signups: bool = True
    analytics: bool = True
    batch_limit: int = 100
    max_body_bytes: int = 64 * 1024
    retry_after_seconds: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebConfig:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            publish_signups=_switch(env, "OFFLOAD_WEB_PUBLISH", d.publish_signups),
            analytics=_switch(env, "OFFLOAD_WEB_ANALYTICS", d.analytics),
            batch_limit=_int(env, "OFFLOAD_WEB_BATCH_LIMIT", d.batch_limit),
            max_body_bytes=_int(env, "OFFLOAD_WEB_MAX_BODY_BYTES", d.max_body_bytes),
            retry_after_seconds=_int(env, "OFFLOAD_WEB_RETRY_AFTER", d.retry_after_seconds),
        )
