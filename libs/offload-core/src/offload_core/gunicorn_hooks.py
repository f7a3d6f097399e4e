"""gunicorn hooks for prometheus-client's multiprocess mode, shared by every gunicorn service.

Import into a gunicorn config: `from offload_core.gunicorn_hooks import child_exit, on_starting`.
Importing this module also sets PROMETHEUS_MULTIPROC_DIR (if unset) before any worker
imports prometheus_client, which must see it at import time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="offload-metrics-")


def on_starting(server: Any) -> None:
    # Samples left by an earlier run would be merged into this one's.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
