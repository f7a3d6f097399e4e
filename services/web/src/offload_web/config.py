"""Web settings from environment variables (the core's settings come from CoreConfig)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from offload_core.config import env_integer, env_number, env_switch


@dataclass(frozen=True)
class WebConfig:
    # Off only for benchmarks: measures the request path without the broker round trip.
    publish_signups: bool = True
    analytics: bool = True
    batch_limit: int = 100
    max_body_bytes: int = 64 * 1024
    retry_after_seconds: int = 5
    # A client has this long to deliver a request body: a stalled upload must not hold one
    # of gunicorn's threads for as long as the client likes (slowloris).
    body_timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebConfig:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            publish_signups=env_switch(env, "OFFLOAD_WEB_PUBLISH", d.publish_signups),
            analytics=env_switch(env, "OFFLOAD_WEB_ANALYTICS", d.analytics),
            batch_limit=env_integer(env, "OFFLOAD_WEB_BATCH_LIMIT", d.batch_limit, minimum=1),
            max_body_bytes=env_integer(env, "OFFLOAD_WEB_MAX_BODY_BYTES", d.max_body_bytes, minimum=1),
            retry_after_seconds=env_integer(env, "OFFLOAD_WEB_RETRY_AFTER", d.retry_after_seconds, minimum=1),
            body_timeout_seconds=env_number(
                env, "OFFLOAD_WEB_BODY_TIMEOUT", d.body_timeout_seconds, minimum=0.1
            ),
        )
