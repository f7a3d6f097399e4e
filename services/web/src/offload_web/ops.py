"""The web's readiness, for the core's status routes (offload_core.status_routes)."""

from __future__ import annotations

import os
from typing import Any

from flask import current_app

from offload_web.publishing import signups


def readiness() -> tuple[dict[str, Any], int]:
    """Ready when every worker of the pod has its publisher connected (readiness.py); a web
    outside gunicorn (tests, a single process) answers for its own publisher."""
    publisher = signups().publisher
    pod = current_app.extensions.get("offload_pod_readiness")
    if pod is not None:  # this worker's own state first, without waiting for its recorder
        pod.record(os.getpid(), publisher.ready)
    if pod is None and publisher.ready:
        return {"status": "ready"}, 200
    if pod is not None and pod.ready:
        return {"status": "ready", "workers": pod.workers}, 200
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
    return answer, 503
