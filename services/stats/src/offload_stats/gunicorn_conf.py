"""gunicorn settings for the stats read API (same model as the web's)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

bind = os.environ.get("OFFLOAD_STATS_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("OFFLOAD_STATS_WORKERS", "2"))
threads = int(os.environ.get("OFFLOAD_STATS_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="offload-stats-metrics-")


def on_starting(server: Any) -> None:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
