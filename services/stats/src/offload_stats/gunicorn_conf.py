"""gunicorn settings for the stats read API (same model as the web's)."""

from __future__ import annotations

import os

from offload_core.gunicorn_hooks import child_exit, on_starting  # noqa: F401 - gunicorn reads them

bind = os.environ.get("OFFLOAD_STATS_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("OFFLOAD_STATS_WORKERS", "2"))
threads = int(os.environ.get("OFFLOAD_STATS_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
