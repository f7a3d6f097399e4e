"""gunicorn settings from environment variables, with multiprocess-safe metrics.

Each worker builds the app (and so its own publisher connection) after the fork:
no preload, because a pika connection must not cross a fork. On worker exit the collected
request reports and then the publisher's buffer are sent before the process goes.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from offload_core import tracing
from offload_core.gunicorn_hooks import child_exit as _metrics_child_exit
from offload_core.gunicorn_hooks import on_starting  # noqa: F401 - gunicorn reads it
from offload_core.header_deadline import with_header_deadline
from offload_core.settings import from_env_or_exit
from offload_core.status_port import status_bind
from offload_web import readiness
from offload_web.config import WebServerConfig

_server = from_env_or_exit(WebServerConfig)
# Readiness answers for every worker (readiness.py): the master makes the shared directory
# here, before the fork, and the workers find it through the environment.
_readiness = readiness.PodReadiness.create(
    Path(os.environ.get(readiness.READINESS_DIR_VARIABLE) or tempfile.mkdtemp(prefix="offload-web-ready-")),
    _server.workers,
)
os.environ[readiness.READINESS_DIR_VARIABLE] = str(_readiness.directory)
# Every worker signs forms with one key: made here, before the fork, when none is set.
if not (os.environ.get("OFFLOAD_WEB_SECRET_KEY") or os.environ.get("OFFLOAD_WEB_SECRET_KEY_FILE")):
    os.environ["OFFLOAD_WEB_SECRET_KEY"] = secrets.token_urlsafe(48)
from_env_or_exit(tracing.TracingSettings)  # a bad OTEL_* value stops the master, not each worker

bind = [_server.bind, status_bind(_server.bind, _server.status_port)]
workers = _server.workers
threads = _server.threads
worker_class = (
    with_header_deadline(_server.header_timeout)
    if _server.worker_class == "gthread" and _server.header_timeout > 0
    else _server.worker_class
)
worker_connections = _server.worker_connections
timeout = _server.timeout
graceful_timeout = _server.graceful_timeout
keepalive = _server.keepalive
# Request line and header limits (oversize headers are refused by gunicorn; slow ones are
# cut by offload_core.header_deadline).
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
    tracing.shutdown()


def child_exit(server: Any, worker: Any) -> None:
    _metrics_child_exit(server, worker)
    _readiness.forget(worker.pid)
