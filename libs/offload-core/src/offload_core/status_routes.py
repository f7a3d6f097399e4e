"""/healthz, /readyz and /metrics for a Flask service, written once.

Liveness is the process answering; metrics are every metric of the process; readiness is
the service's own question (is the publisher connected? does the store answer?), asked of
the `readiness` function the service passes. status_port.py keeps these paths off the
public port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify

from offload_core.metrics import render_latest

# The answer to /readyz: its JSON body and status code (200 ready, 503 not).
Readiness = Callable[[], tuple[dict[str, Any], int]]


def status_blueprint(readiness: Readiness) -> Blueprint:
    """The three status routes, readiness answered by `readiness`."""
    status = Blueprint("status", __name__)

    @status.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    @status.get("/readyz")
    def readyz() -> Any:
        body, code = readiness()
        return jsonify(body), code

    @status.get("/metrics")
    def metrics() -> Any:
        return Response(render_latest(), mimetype="text/plain; version=0.0.4")

    return status
