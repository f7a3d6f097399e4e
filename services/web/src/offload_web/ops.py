"""What operators and Kubernetes ask of the web: liveness, readiness, metrics."""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from offload_core.metrics import render_latest
from offload_web.publishing import signups

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@ops.get("/readyz")
def readyz() -> Any:
    """Ready when every worker of the pod has its publisher connected (readiness.py); a web
    outside gunicorn (tests, a single process) answers for its own publisher."""
    publisher = signups().publisher
    pod = current_app.extensions.get("offload_pod_readiness")
    if pod is not None:  # this worker's own state first, without waiting for its recorder
        pod.record(os.getpid(), publisher.ready)
    if pod is None and publisher.ready:
        return jsonify({"status": "ready"})
    if pod is not None and pod.ready:
        return jsonify({"status": "ready", "workers": pod.workers})
    # The broker's error text (host names, ports, credentials' user) stays in the logs: this
    # port is the public one.
    answer: dict[str, Any] = {
        "status": "not ready",
        "broker": "unreachable" if publisher.last_error else "connecting",
    }
    if pod is not None:
        answer.update(workers=pod.workers, ready_workers=pod.ready_workers())
        if publisher.ready:
            answer["broker"] = "this worker is connected; others are not yet"
    return jsonify(answer), 503


@ops.get("/metrics")
def metrics() -> Any:
    return Response(render_latest(), mimetype="text/plain; version=0.0.4")
