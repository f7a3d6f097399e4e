"""Web settings from environment variables (the core's settings come from CoreConfig)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import current_app
from limits import parse_many

from offload_core.settings import from_env, setting


def _rate_limit(raw: str) -> str | None:
    """limits' notation, `10/minute;50/hour`, or off"""
    if raw.lower() in ("off", "0", "none"):
        return None
    try:
        parse_many(raw)
    except ValueError:
        raise ValueError("must be like 10/minute;50/hour, or off") from None
    return raw


def _limit_storage(raw: str) -> str:
    """memory:// or redis://[user:password@]host:port/db"""
    if not raw.startswith(("memory://", "redis://", "rediss://")):
        raise ValueError("must start with memory:// or redis://")
    return raw


def _long_secret(raw: str) -> str:
    """at least 32 characters"""
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters (a random secret, e.g. openssl rand -hex 32)")
    return raw


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
    # Signups one client may make (form and API; every attempt counts). A person signs up
    # once; ten a minute leaves room for typos and a shared address (an office behind NAT).
    client_limit: str | None = setting(
        "OFFLOAD_WEB_SIGNUP_LIMIT_PER_CLIENT", "10/minute;60/hour", parse=_rate_limit
    )
    # Accepted signups per recipient domain: what one domain's postmaster sees from us.
    # Raise it for a service whose users are mostly on one large provider.
    domain_limit: str | None = setting(
        "OFFLOAD_WEB_SIGNUP_LIMIT_PER_DOMAIN", "60/minute;600/hour", parse=_rate_limit
    )
    # Where the counters live: memory:// (each worker its own; one process only) or Redis,
    # shared by every worker of every replica.
    rate_limit_storage: str = setting(
        "OFFLOAD_WEB_RATE_LIMIT_STORAGE", "memory://", parse=_limit_storage, secret=True
    )
    # Proxies in front of the web that append to X-Forwarded-For (an Ingress controller: 1).
    # 0: the client is the peer address, and X-Forwarded-For is ignored (anyone can send it).
    trusted_proxies: int = setting("OFFLOAD_WEB_TRUSTED_PROXIES", 0, minimum=0)
    # Signs the form's session cookie and CSRF token: the same in every worker and replica.
    # Unset, gunicorn's master makes one for its workers (gunicorn_conf.py): right for one
    # replica only, and forms open across a restart are refused once.
    secret_key: str | None = setting("OFFLOAD_WEB_SECRET_KEY", None, parse=_long_secret, secret=True)
    # Bearer token for POST /api/v1/signups:batch, an import tool; unset: the endpoint is off.
    batch_token: str | None = setting("OFFLOAD_WEB_BATCH_TOKEN", None, parse=_long_secret, secret=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebConfig:
        return from_env(cls, env)


@dataclass(frozen=True)
class WebServerConfig:
    """gunicorn's settings for the web (gunicorn_conf.py)."""

    bind: str = setting("OFFLOAD_WEB_BIND", "127.0.0.1:8000")
    # /metrics, /healthz and /readyz, on the public bind's host (offload_core.status_port).
    status_port: int = setting("OFFLOAD_WEB_STATUS_PORT", 9100, minimum=1)
    workers: int = setting("OFFLOAD_WEB_WORKERS", 2, minimum=1)
    # gthread: a thread per request; gevent: a greenlet per request, and the publisher's I/O
    # on the same event loop (a request waiting for its confirm is a switch, not a hand-off).
    worker_class: str = setting("OFFLOAD_WEB_WORKER_CLASS", "gthread", choices=("gthread", "gevent"))
    threads: int = setting("OFFLOAD_WEB_THREADS", 8, minimum=1)
    # gevent: requests served at once per worker (gthread: `threads`). gthread: connections
    # a worker holds in threads and kept alive, and separately, at most this many waiting for
    # their headers.
    worker_connections: int = setting("OFFLOAD_WEB_WORKER_CONNECTIONS", 1000, minimum=1)
    timeout: int = setting("OFFLOAD_WEB_TIMEOUT", 30, minimum=1)
    graceful_timeout: int = setting("OFFLOAD_WEB_GRACEFUL_TIMEOUT", 20, minimum=0)
    keepalive: int = setting("OFFLOAD_WEB_KEEPALIVE", 5, minimum=0)
    # gthread: a request's header block must be in this long after its first byte, or the
    # connection is cut (offload_core.header_deadline); 0: gunicorn's own gthread worker, which waits
    # for as long as a client likes. Browsers send their headers in one packet; ten seconds
    # leaves room for a slow mobile link. gevent has no header deadline.
    header_timeout: float = setting("OFFLOAD_WEB_HEADER_TIMEOUT", 10.0, minimum=0)


def web_config() -> WebConfig:
    """The running app's settings (create_app keeps them in its extensions)."""
    config: WebConfig = current_app.extensions["offload_web_config"]
    return config
