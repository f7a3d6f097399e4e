"""What operators and Kubernetes ask of the web: liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from offload_core.metrics import render_latest
from offload_web.publishing import signups

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@ops.get("/readyz")
def readyz() -> Any:
    publisher = signups().publisher
    if publisher.ready:
        return jsonify({"status": "ready"})
    return jsonify({"status": "not ready", "broker": publisher.last_error or "connecting"}), 503


@ops.get("/metrics")
def metrics() -> Any:
    return Response(render_latest(), mimetype="text/plain; version=0.0.4")
