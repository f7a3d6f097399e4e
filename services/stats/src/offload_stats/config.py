"""Stats settings from environment variables (the core's settings come from CoreConfig)."""

from __future__ import annotations

from dataclasses import dataclass

from offload_core.settings import parse_store_url, setting


@dataclass(frozen=True)
class StatsConfig:
    store_url: str = setting("OFFLOAD_STATS_STORE_URL", "sqlite:///.state/stats.db", parse=parse_store_url)
    # Events per store transaction, and how long to wait to fill a batch.
    batch_size: int = setting("OFFLOAD_STATS_BATCH_SIZE", 200, minimum=1)
    batch_wait: float = setting("OFFLOAD_STATS_BATCH_WAIT", 0.05, minimum=0)
    status_port: int = setting("OFFLOAD_STATS_STATUS_PORT", 9102, minimum=0)  # 0: any free port


@dataclass(frozen=True)
class StatsServerConfig:
    """gunicorn's settings for the read API (gunicorn_conf.py)."""

    bind: str = setting("OFFLOAD_STATS_BIND", "127.0.0.1:8001")
    # /metrics, /healthz and /readyz, on the public bind's host (offload_core.status_port).
    status_port: int = setting("OFFLOAD_STATS_API_STATUS_PORT", 9104, minimum=1)
    workers: int = setting("OFFLOAD_STATS_WORKERS", 2, minimum=1)
    threads: int = setting("OFFLOAD_STATS_THREADS", 4, minimum=1)
    # A request's header block must be in this long after its first byte, or the connection
    # is cut (offload_core.header_deadline); 0: gunicorn's own gthread worker, no deadline.
    header_timeout: float = setting("OFFLOAD_STATS_HEADER_TIMEOUT", 10.0, minimum=0)
