"""gunicorn settings for the stats read API (same model as the web's)."""

from __future__ import annotations

from offload_core.gunicorn_hooks import child_exit, on_starting  # noqa: F401 - gunicorn reads them
from offload_core.header_deadline import with_header_deadline
from offload_core.settings import from_env_or_exit
from offload_core.status_port import status_bind
from offload_stats.config import StatsServerConfig

_server = from_env_or_exit(StatsServerConfig)

bind = [_server.bind, status_bind(_server.bind, _server.status_port)]
workers = _server.workers
threads = _server.threads
worker_class = with_header_deadline(_server.header_timeout) if _server.header_timeout > 0 else "gthread"
timeout = 30
graceful_timeout = 20
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
