"""gunicorn settings from environment variables, with multiprocess-safe metrics.

Each worker builds the app (and so its own publisher connection) after the fork:
no preload, because a pika connection must not cross a fork. On worker exit the collected
request reports and then the publisher's buffer are sent before the process goes.
"""

from __future__ import annotations

import os
from typing import Any

from offload_core.gunicorn_hooks import child_exit, on_starting  # noqa: F401 - gunicorn reads them

bind = os.environ.get("OFFLOAD_WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("OFFLOAD_WEB_WORKERS", "2"))
threads = int(os.environ.get("OFFLOAD_WEB_THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("OFFLOAD_WEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("OFFLOAD_WEB_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("OFFLOAD_WEB_KEEPALIVE", "5"))
# Request line and header limits (slow or oversize headers are cut by gunicorn itself).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = None
preload_app = False


def worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", {}) if app is not None else {}
    # The collected request reports first, into the publisher's buffer; then the publisher
    # sends its buffer and closes.
    reports = extensions.get("offload_analytics")
    if reports is not None:
        reports.close(timeout=2.0)
    publisher = extensions.get("offload_publisher")
    if publisher is not None:
        publisher.close(timeout=5.0)
