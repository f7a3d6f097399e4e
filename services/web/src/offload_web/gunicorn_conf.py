"""gunicorn settings from environment variables, with multiprocess-safe metrics.

Each worker builds the app (and so its own publisher connection) after the fork:
no preload, because a pika connection must not cross a fork. On worker exit the
publisher flushes the analytics buffer before the process goes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

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

# prometheus-client's multiprocess mode: every worker writes its samples to this folder.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="offload-web-metrics-")


def on_starting(server: Any) -> None:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    publisher = getattr(app, "extensions", {}).get("offload_publisher") if app is not None else None
    if publisher is not None:
        publisher.close(timeout=5.0)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
