"""Web settings from environment variables (the core's settings come from CoreConfig)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import current_app

from offload_core.settings import from_env, setting


@dataclass(frozen=True)
class WebConfig:
    # Off only for benchmarks: measures the request path without the broker round trip.
    publish_signups: bool = setting("OFFLOAD_WEB_PUBLISH", True)
    analytics: bool = setting("OFFLOAD_WEB_ANALYTICS", True)
    # Each worker sends its collected request reports as one event this often (and on exit).
    analytics_interval: float = setting("OFFLOAD_WEB_ANALYTICS_INTERVAL", 0.25, minimum=0.01)
    batch_limit: int = setting("OFFLOAD_WEB_BATCH_LIMIT", 100, minimum=1)
    max_body_bytes: int = setting("OFFLOAD_WEB_MAX_BODY_BYTES", 64 * 1024, minimum=1)
    retry_after_seconds: int = setting("OFFLOAD_WEB_RETRY_AFTER", 5, minimum=1)
    # A client has this long to deliver a request body: a stalled upload must not hold one
    # of gunicorn's threads for as long as the client likes (slowloris).
    body_timeout_seconds: float = setting("OFFLOAD_WEB_BODY_TIMEOUT", 10.0, minimum=0.1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebConfig:
        return from_env(cls, env)


@dataclass(frozen=True)
class WebServerConfig:
    """gunicorn's settings for the web (gunicorn_conf.py)."""

    bind: str = setting("OFFLOAD_WEB_BIND", "127.0.0.1:8000")
    workers: int = setting("OFFLOAD_WEB_WORKERS", 2, minimum=1)
    # gthread: a thread per request; gevent: a greenlet per request, and the publisher's I/O
    # on the same event loop (a request waiting for its confirm is a switch, not a hand-off).
    worker_class: str = setting("OFFLOAD_WEB_WORKER_CLASS", "gthread", choices=("gthread", "gevent"))
    threads: int = setting("OFFLOAD_WEB_THREADS", 8, minimum=1)
    # gevent: requests served at once per worker (gthread: `threads`).
    worker_connections: int = setting("OFFLOAD_WEB_WORKER_CONNECTIONS", 1000, minimum=1)
    timeout: int = setting("OFFLOAD_WEB_TIMEOUT", 30, minimum=1)
    graceful_timeout: int = setting("OFFLOAD_WEB_GRACEFUL_TIMEOUT", 20, minimum=0)
    keepalive: int = setting("OFFLOAD_WEB_KEEPALIVE", 5, minimum=0)


def web_config() -> WebConfig:
    """The running app's settings (create_app keeps them in its extensions)."""
    config: WebConfig = current_app.extensions["offload_web_config"]
    return config
