"""gunicorn settings for the stats read API (same model as the web's)."""

from __future__ import annotations

import sys

from offload_core.gunicorn_hooks import child_exit, on_starting  # noqa: F401 - gunicorn reads them
from offload_core.settings import ConfigError, from_env
from offload_stats.config import StatsServerConfig

try:
    _server = from_env(StatsServerConfig)
except ConfigError as exc:
    sys.exit(f"invalid configuration: {exc}")  # one line, not gunicorn's traceback

bind = _server.bind
workers = _server.workers
threads = _server.threads
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
